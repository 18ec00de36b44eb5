// Benchmark clients: one small adapter per server's wire protocol, all on Bun's own WebSocket client.

export type Kind = "hubbub" | "raw-bun" | "node-ws" | "socket.io";
export const KINDS: Kind[] = ["hubbub", "raw-bun", "node-ws", "socket.io"];

export interface BenchClient {
	/** Resolves when the client is in its room (for hubbub: `joined` received). */
	ready: Promise<void>;
	/** Messages in hubbub's `joined` frame. */
	joinedMessages: number;
	/** Error frames received (hubbub: e.g. rate_limited). */
	errors: number;
	open: boolean;
	send(text: string): void;
	close(): void;
	closed: Promise<void>;
}

export interface ConnectOptions {
	kind: Kind;
	port: number;
	room: string;
	name: string;
	since?: number;
	/** hubbub under --auth accounts: the session cookie to connect with (welcome comes unasked; no hello). */
	cookie?: string;
	/** Called with every delivered chat frame's raw text. */
	onDeliver: (data: string) => void;
}

const MESSAGE = '{"type":"message"';

export function connect(o: ConnectOptions): BenchClient {
	const query = `room=${encodeURIComponent(o.room)}`;
	const url =
		o.kind === "hubbub"
			? `ws://127.0.0.1:${o.port}/ws`
			: o.kind === "socket.io"
				? `ws://127.0.0.1:${o.port}/socket.io/?EIO=4&transport=websocket&${query}`
				: `ws://127.0.0.1:${o.port}/?${query}`;
	// Bun's WebSocket takes headers (the DOM typings do not know them).
	const ws = o.cookie
		? new WebSocket(url, { headers: { cookie: o.cookie } } as unknown as string[])
		: new WebSocket(url);
	let resolveReady: () => void = () => {};
	let rejectReady: (e: Error) => void = () => {};
	const client: BenchClient = {
		ready: new Promise<void>((resolve, reject) => {
			resolveReady = resolve;
			rejectReady = reject;
		}),
		joinedMessages: 0,
		errors: 0,
		open: false,
		send: (text) => {
			if (o.kind === "hubbub")
				ws.send(`{"type":"send","room":${JSON.stringify(o.room)},"text":${JSON.stringify(text)}}`);
			else if (o.kind === "socket.io") ws.send(`42["m",${JSON.stringify(text)}]`);
			else ws.send(text);
		},
		close: () => ws.close(),
		closed: new Promise<void>((resolve) => ws.addEventListener("close", () => resolve())),
	};
	client.ready.catch(() => {});
	ws.addEventListener("open", () => {
		client.open = true;
		if (o.kind === "hubbub") {
			if (!o.cookie) ws.send(JSON.stringify({ type: "hello", name: o.name }));
		} else if (o.kind !== "socket.io") resolveReady();
	});
	ws.addEventListener("close", () => {
		client.open = false;
		rejectReady(new Error(`connection closed before ready (${o.kind})`));
	});
	ws.addEventListener("error", () => rejectReady(new Error(`cannot connect (${o.kind})`)));
	ws.addEventListener("message", (e) => {
		const data = e.data as string;
		switch (o.kind) {
			case "hubbub":
				if (data.startsWith(MESSAGE)) o.onDeliver(data);
				else if (data.startsWith('{"type":"welcome"')) {
					ws.send(
						JSON.stringify(
							o.since === undefined
								? { type: "join", room: o.room }
								: { type: "join", room: o.room, since: o.since },
						),
					);
				} else if (data.startsWith('{"type":"joined"')) {
					client.joinedMessages = (JSON.parse(data) as { messages: unknown[] }).messages.length;
					resolveReady();
				} else if (data.startsWith('{"type":"error"')) {
					client.errors++;
					// Refused before it got in (a name taken): fail rather than wait forever.
					if (data.includes('"name_taken"') || data.includes('"invalid_name"')) rejectReady(new Error(data));
				}
				return;
			case "socket.io":
				// Engine.IO 4: "0" open, "40" namespace connected, "2" ping (answer "3"), "42[...]" event.
				if (data.startsWith("42")) o.onDeliver(data);
				else if (data === "2") ws.send("3");
				else if (data.startsWith("40")) resolveReady();
				else if (data.startsWith("0")) ws.send("40");
				return;
			default:
				o.onDeliver(data);
		}
	});
	return client;
}

/** Connects `count` clients with at most `inFlight` handshakes at once. */
export async function connectMany(
	count: number,
	make: (i: number) => BenchClient,
	inFlight = 200,
): Promise<BenchClient[]> {
	const clients: BenchClient[] = new Array(count);
	let next = 0;
	async function worker(): Promise<void> {
		while (next < count) {
			const i = next++;
			const c = make(i);
			clients[i] = c;
			await c.ready;
		}
	}
	await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
	return clients;
}

/** The send time and step tag a benchmark payload carries: `~t:<ms>~s:<step>~`. */
export function payload(step: number): string {
	return `~t:${performance.now().toFixed(3)}~s:${step}~`;
}

export function parsePayload(data: string): { t: number; step: number } | undefined {
	const i = data.indexOf("~t:");
	if (i < 0) return undefined;
	const j = data.indexOf("~s:", i);
	const k = data.indexOf("~", j + 3);
	return { t: Number(data.slice(i + 3, j)), step: Number(data.slice(j + 3, k)) };
}
