// A hostile client run as its own process (so the test's calm client shares no event loop with it):
// `bun tests/abuse-attacker.ts WS_URL MODE SECONDS`, MODE "flap" (join/leave as fast as it can) or
// "history" (join a room, then history limit:200 at 50 a second). It reconnects whenever it is
// closed, as a real attacker would, and prints one JSON line: connections, refused upgrades, close codes, frames sent.
export {};

const [url, mode, seconds] = process.argv.slice(2);
if (!url || (mode !== "flap" && mode !== "history")) {
	process.stderr.write("usage: abuse-attacker.ts WS_URL flap|history SECONDS\n");
	process.exit(2);
}
const deadline = performance.now() + Number(seconds ?? 5) * 1000;
const closes: number[] = [];
let connections = 0;
let sent = 0;
let received = 0;
let refused = 0;

async function once(): Promise<void> {
	const ws = new WebSocket(url as string);
	let welcomed = false;
	let opened = false;
	const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
	ws.addEventListener("message", (e) => {
		const data = String(e.data);
		received += data.length;
		if (data.startsWith('{"type":"welcome"')) welcomed = true;
	});
	ws.addEventListener("open", () => {
		opened = true;
		ws.send(JSON.stringify({ type: "hello", name: `attacker${connections}` }));
	});
	const send = (frame: object) => {
		if (ws.readyState !== WebSocket.OPEN) return;
		ws.send(JSON.stringify(frame));
		sent++;
	};
	while (!welcomed && ws.readyState <= WebSocket.OPEN && performance.now() < deadline) await Bun.sleep(5);
	if (mode === "history") send({ type: "join", room: "big" });
	while (ws.readyState === WebSocket.OPEN && performance.now() < deadline) {
		if (mode === "flap") {
			// As fast as it can, but without piling up an unbounded send buffer on this side.
			if (ws.bufferedAmount < 256 * 1024) {
				for (let i = 0; i < 100; i++) {
					send({ type: "join", room: "general" });
					send({ type: "leave", room: "general" });
				}
			}
			await Bun.sleep(1);
		} else {
			send({ type: "history", room: "big", limit: 200 });
			await Bun.sleep(20);
		}
	}
	if (ws.readyState === WebSocket.OPEN) {
		ws.close();
		return;
	}
	const code = await closed;
	if (opened) {
		connections++;
		closes.push(code);
	} else {
		// The upgrade was refused (429 while the address is banned): try again soon.
		refused++;
		await Bun.sleep(50);
	}
}

while (performance.now() < deadline) await once();
process.stdout.write(`${JSON.stringify({ connections, refused, closes, sent, received })}\n`);
process.exit(0);
