// What a sign-in costs under --auth accounts, and what 20 at once do to everyone else's latency:
// a server process of its own, 16 connected sockets pinging twice a second, idle and then while
// 20 sign-ins run together. Run: bun bench/signin.ts (about 20 s).
import { join } from "node:path";
import { fromSource, spawnServer, tempDir } from "../tests/helpers.ts";

const PASSWORD = "correct horse battery";
// Each of the 20 signs in to an account of its own from an address of its own (the loopback proxy is
// trusted): sign-ins being checked count against the per-address and per-account limits of 10.
using dir = tempDir("hubbub-signin-");
const server = await spawnServer(
	fromSource(
		"--db",
		join(dir.path, "h.db"),
		"--auth",
		"accounts",
		"--signup",
		"open",
		"--trust-proxy",
		"127.0.0.1",
	),
);
const base = server.url;
const headers = { origin: base, "content-type": "application/json" };

async function post(path: string, body: unknown, from = "192.0.2.1"): Promise<Response> {
	return fetch(`${base}${path}`, {
		method: "POST",
		headers: { ...headers, "x-forwarded-for": from },
		body: JSON.stringify(body),
	});
}

const setup = await post("/api/auth/setup", { name: "alice", password: PASSWORD });
const cookie = (setup.headers.get("set-cookie") ?? "").split(";")[0] as string;
for (let i = 0; i < 20; i++) {
	const r = await post("/api/auth/signup", { name: `user${i}`, password: PASSWORD }, `198.51.100.${i + 1}`);
	if (r.status !== 201) throw new Error(`sign-up answered ${r.status}`);
}

async function signin(name = "alice", from = "192.0.2.1"): Promise<number> {
	const t0 = performance.now();
	const r = await post("/api/auth/signin", { name, password: PASSWORD }, from);
	if (r.status !== 200) throw new Error(`sign-in answered ${r.status}`);
	await r.arrayBuffer();
	return performance.now() - t0;
}

const pct = (xs: number[], p: number) => {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const fmt = (xs: number[]) =>
	`p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (${xs.length} pings)`;

// One sign-in at a time (hash + two queries + one insert, over HTTP).
const single: number[] = [];
for (let i = 0; i < 5; i++) single.push(await signin());

// Sixteen sockets of "everyone else" measure ping → pong round trips (each within the ping rate of 2 a second).
const sockets = await Promise.all(
	Array.from({ length: 16 }, async () => {
		const ws = new WebSocket(`${base.replace("http", "ws")}/ws`, {
			headers: { origin: base, cookie },
		} as unknown as string[]);
		await new Promise<void>((resolve, reject) => {
			ws.addEventListener("message", () => resolve(), { once: true }); // welcome
			ws.addEventListener("error", () => reject(new Error("socket failed")), { once: true });
		});
		return ws;
	}),
);

async function pingFor(ms: number): Promise<number[]> {
	const rtts: number[] = [];
	const end = performance.now() + ms;
	await Promise.all(
		sockets.map(async (ws) => {
			while (performance.now() < end) {
				const t0 = performance.now();
				await new Promise<void>((resolve) => {
					ws.addEventListener("message", () => resolve(), { once: true });
					ws.send('{"type":"ping"}');
				});
				rtts.push(performance.now() - t0);
				await Bun.sleep(500);
			}
		}),
	);
	return rtts;
}

const idle = await pingFor(3000);
const burstStart = performance.now();
let burstEnd = 0;
const during = pingFor(4000);
const burst = await Promise.all(
	Array.from({ length: 20 }, (_, i) => signin(`user${i}`, `203.0.113.${i + 1}`)),
);
burstEnd = performance.now();
const busy = await during;

console.log(
	`one sign-in over HTTP (argon2id m=19 MiB t=2): ${single.map((x) => x.toFixed(0)).join(", ")} ms`,
);
console.log(
	`20 sign-ins at once: all done in ${(burstEnd - burstStart).toFixed(0)} ms; each took p50 ${pct(burst, 50).toFixed(0)} ms, max ${Math.max(...burst).toFixed(0)} ms`,
);
console.log(`everyone else's ping, idle:            ${fmt(idle)}`);
console.log(`everyone else's ping, during the burst: ${fmt(busy)}`);
for (const ws of sockets) ws.close();
server.proc.kill();
await server.proc.exited;
