// Test helpers: real servers on port 0 with temp databases, and real WebSocket clients that await frames.
import type { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../bench/net.ts";
import { type Config, defaultConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { migrateSearchFile } from "../lib/search-sqlite.ts";
import { parseServerFrame, type ServerFrame, type ServerFrameOf } from "../protocol.ts";
import { type Running, type StartOptions, start } from "../server.ts";

export const ROOT = join(import.meta.dir, "..");

// Accounts are the default (--auth accounts); the protocol-v1 tests speak to guest mode. Every server
// these helpers start runs with --auth none unless a test asks for accounts with a flag or config
// (tests/accounts-helpers.ts does): startServer passes it, fromSource adds the flag, and spawnServer
// hands its environment on. A bare Bun.spawn does not see this variable (Bun passes the environment
// the process started with): pass --auth none there.
process.env.HUBBUB_AUTH ??= "none";
export const BINARY = join(ROOT, "dist", "hubbub");

/** The command that runs hubbub from source on a free loopback port, `flags` after. */
export function fromSource(...flags: string[]): string[] {
	// Guest mode unless `flags` say otherwise (the last --auth wins).
	return [
		process.execPath,
		join(ROOT, "server.ts"),
		"--port",
		"0",
		"--host",
		"127.0.0.1",
		"--auth",
		"none",
		...flags,
	];
}

/**
 * Two hubbub processes (`program`: the binary, or Bun and server.ts) on one
 * free port with --reuse-port, sharing the SQLite file `db`, joined by Redis.
 */
export async function twoOnOnePort(program: string[], db: string, redisUrl: string, ...flags: string[]) {
	const port = await freePort();
	const args = [
		"--port",
		String(port),
		"--reuse-port",
		"--host",
		"127.0.0.1",
		"--db",
		db,
		"--redis",
		redisUrl,
	];
	const servers = await Promise.all([0, 1].map(() => spawnServer([...program, ...args, ...flags])));
	return { port, url: `http://127.0.0.1:${port}`, servers };
}

let built: Promise<void> | undefined;
/** Builds dist/hubbub with the same command users run, once per test process. */
export function buildBinary(): Promise<void> {
	built ??= (async () => {
		const build = Bun.spawn(["npm", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
		if ((await build.exited) !== 0)
			throw new Error(`npm run build failed: ${await new Response(build.stderr).text()}`);
	})();
	return built;
}

/**
 * Makes a SQLite database of this hubbub the schema 7 that came before schemas 8 and 9 (a message's id
 * for search given by an insert trigger in search_docs, found through its unique index of (room, seq),
 * not in the message's row): the start of the tests that downgrade further.
 */
export function downgradeToSchema7(db: Database): void {
	// Schema 8: search_docs again, ids and counter as schema 9 kept them, filled by the insert trigger.
	db.run("DROP TRIGGER IF EXISTS messages_search_number");
	db.run("DROP INDEX messages_doc");
	db.run(
		"CREATE TABLE search_docs (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, seq INTEGER NOT NULL)",
	);
	db.run("INSERT INTO search_docs (id, room, seq) SELECT doc, room, seq FROM messages ORDER BY doc");
	db.run("DELETE FROM sqlite_sequence WHERE name = 'search_docs'");
	db.run(
		"INSERT INTO sqlite_sequence (name, seq) SELECT 'search_docs', CAST(value AS INTEGER) FROM meta WHERE key = 'docs'",
	);
	db.run("DELETE FROM meta WHERE key = 'docs'");
	// Schema 7.
	for (const t of ["delete", "update"]) db.run(`DROP TRIGGER messages_search_${t}`);
	db.run("ALTER TABLE messages DROP COLUMN doc");
	db.run("CREATE UNIQUE INDEX search_docs_room_seq ON search_docs (room, seq)");
	db.run(`CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
		INSERT INTO search_docs (room, seq) VALUES (new.room, new.seq);
	END`);
	migrateSearchFile(db);
	db.run("UPDATE meta SET value = '7' WHERE key = 'schema'");
}

export function tempDir(prefix = "hubbub-test-"): { path: string; [Symbol.dispose](): void } {
	const path = mkdtempSync(join(tmpdir(), prefix));
	return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

export interface TestServer extends Running {
	ws: string;
	dbPath: string;
	[Symbol.asyncDispose](): Promise<void>;
}

/** An in-process server on a free port with its own database file. */
export function startServer(
	options: StartOptions & { config?: Partial<Config>; dbPath?: string } = {},
): TestServer {
	const dir = options.dbPath ? undefined : tempDir();
	const dbPath = options.dbPath ?? join((dir as { path: string }).path, "hubbub.db");
	const running = start(
		defaultConfig({ port: 0, host: "127.0.0.1", db: dbPath, auth: "none", ...options.config }),
		{
			log: createLogger("error", () => {}),
			...options,
		},
	);
	return {
		...running,
		ws: `${running.url.replace("http", "ws")}/ws`,
		dbPath,
		async [Symbol.asyncDispose]() {
			await running.stop();
			dir?.[Symbol.dispose]();
		},
	};
}

type Pred = (f: ServerFrame) => boolean;

export interface ClientOptions {
	headers?: Record<string, string>;
	/** PEM of a certificate authority to trust, for wss to a test certificate. */
	ca?: string;
}

/** A WebSocket client that keeps every frame it receives and lets a test await the next one it wants. */
export class Client {
	readonly frames: ServerFrame[] = [];
	readonly opened: Promise<void>;
	readonly closed: Promise<{ code: number; reason: string }>;
	private readonly ws: WebSocket;
	private cursor = 0;
	private waiters: (() => void)[] = [];

	constructor(url: string, options?: ClientOptions) {
		// Bun's WebSocket takes headers and TLS options (the DOM typings we also load do not know them).
		const init = options?.ca ? { headers: options.headers, tls: { ca: options.ca } } : options;
		this.ws = new WebSocket(url, init as unknown as string[]);
		this.opened = new Promise((resolve, reject) => {
			this.ws.addEventListener("open", () => resolve(), { once: true });
			this.ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), { once: true });
		});
		// Awaited by whoever cares; a refused connection must not surface as an unhandled rejection elsewhere.
		this.opened.catch(() => {});
		this.closed = new Promise((resolve) => {
			this.ws.addEventListener("close", (e) => {
				resolve({ code: e.code, reason: e.reason });
				this.wake();
			});
		});
		this.ws.addEventListener("message", (e) => {
			const frame = typeof e.data === "string" ? parseServerFrame(e.data) : undefined;
			if (!frame)
				throw new Error(`server sent a frame outside the protocol: ${String(e.data).slice(0, 200)}`);
			this.frames.push(frame);
			this.wake();
		});
	}

	static async connect(url: string, options?: ClientOptions): Promise<Client> {
		const c = new Client(url, options);
		await c.opened;
		return c;
	}

	private wake(): void {
		const waiters = this.waiters;
		this.waiters = [];
		for (const w of waiters) w();
	}

	get isOpen(): boolean {
		return this.ws.readyState === WebSocket.OPEN;
	}

	send(frame: unknown): void {
		this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
	}

	sendRaw(data: string | Uint8Array<ArrayBuffer>): void {
		this.ws.send(data);
	}

	/**
	 * The next frame after those already taken that matches, skipping (and
	 * consuming) others only when `skip` is set; fails after `ms`.
	 */
	async next(pred: Pred = () => true, ms = 5000, skip = false): Promise<ServerFrame> {
		const deadline = Date.now() + ms;
		for (;;) {
			while (this.cursor < this.frames.length) {
				const f = this.frames[this.cursor++] as ServerFrame;
				if (pred(f)) return f;
				if (!skip) throw new Error(`unexpected frame ${JSON.stringify(f)}`);
			}
			if (this.ws.readyState === WebSocket.CLOSED)
				throw new Error("connection closed while waiting for a frame");
			const left = deadline - Date.now();
			if (left <= 0) throw new Error(`no matching frame within ${ms} ms`);
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, left);
				this.waiters.push(() => {
					clearTimeout(timer);
					resolve();
				});
			});
		}
	}

	/** The next frame of a type, skipping frames of other types. */
	async expect<T extends ServerFrame["type"]>(
		type: T,
		pred: (f: ServerFrameOf<T>) => boolean = () => true,
		ms = 5000,
	): Promise<ServerFrameOf<T>> {
		return (await this.next(
			(f) => f.type === type && pred(f as ServerFrameOf<T>),
			ms,
			true,
		)) as ServerFrameOf<T>;
	}

	/** Frames received and not yet taken. */
	pending(): ServerFrame[] {
		return this.frames.slice(this.cursor);
	}

	async hello(name: string): Promise<ServerFrameOf<"welcome">> {
		this.send({ type: "hello", name });
		return (await this.next()) as ServerFrameOf<"welcome">;
	}

	async join(room: string, since?: number): Promise<ServerFrameOf<"joined">> {
		this.send(since === undefined ? { type: "join", room } : { type: "join", room, since });
		return this.expect("joined", (f) => f.room === room);
	}

	close(code = 1000): void {
		this.ws.close(code);
	}
}

/** A connected client that has said hello and, if given, joined `room`. */
export async function chatter(url: string, name: string, room?: string): Promise<Client> {
	const c = await Client.connect(url);
	const welcome = await c.hello(name);
	if (welcome.type !== "welcome") throw new Error(`hello as ${name} got ${JSON.stringify(welcome)}`);
	if (room) await c.join(room);
	return c;
}

export interface Spawned {
	proc: ReturnType<typeof Bun.spawn>;
	url: string;
	port: number;
	/** Lines the server wrote to stdout, parsed as JSON where they are. */
	logs: Record<string, unknown>[];
	stderr(): Promise<string>;
}

/** Starts hubbub as its own process (source or binary) and waits for its `listening` line. */
export async function spawnServer(
	cmd: string[],
	options: { cwd?: string; env?: Record<string, string> } = {},
) {
	const proc = Bun.spawn(cmd, {
		cwd: options.cwd ?? ROOT,
		env: { ...process.env, ...options.env },
		stdout: "pipe",
		stderr: "pipe",
	});
	const logs: Record<string, unknown>[] = [];
	const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
	let buffer = "";
	let port: number | undefined;
	const deadline = Date.now() + 15_000;
	while (port === undefined) {
		if (Date.now() > deadline) throw new Error("server did not start within 15 s");
		const { value, done } = await reader.read();
		if (done) {
			throw new Error(`server exited (${await proc.exited}): ${await new Response(proc.stderr).text()}`);
		}
		buffer += value;
		let nl = buffer.indexOf("\n");
		while (nl >= 0) {
			const line = buffer.slice(0, nl);
			buffer = buffer.slice(nl + 1);
			try {
				const entry = JSON.parse(line) as Record<string, unknown>;
				logs.push(entry);
				if (entry.event === "listening") port = entry.port as number;
			} catch {
				// not a log line
			}
			nl = buffer.indexOf("\n");
		}
	}
	// Keep draining stdout so the server never blocks on a full pipe.
	void (async () => {
		for (;;) {
			const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
			if (done) return;
			buffer += value;
			let nl = buffer.indexOf("\n");
			while (nl >= 0) {
				try {
					logs.push(JSON.parse(buffer.slice(0, nl)));
				} catch {}
				buffer = buffer.slice(nl + 1);
				nl = buffer.indexOf("\n");
			}
		}
	})();
	return {
		proc,
		port,
		url: `http://127.0.0.1:${port}`,
		logs,
		stderr: () => new Response(proc.stderr).text(),
	} satisfies Spawned;
}

/**
 * A WebSocket spoken by hand over TCP, so a test can stop reading (and so stop
 * answering pings) the way a vanished or overwhelmed peer does.
 */
export class RawSocket {
	private constructor(
		private readonly socket: import("node:net").Socket,
		readonly received: { bytes: number },
	) {}

	static async connect(port: number): Promise<RawSocket> {
		const net = await import("node:net");
		const socket = net.connect(port, "127.0.0.1");
		await new Promise<void>((resolve, reject) => {
			socket.once("connect", () => resolve());
			socket.once("error", reject);
		});
		const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
		socket.write(
			`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
				`Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
		);
		const head = await new Promise<string>((resolve) =>
			socket.once("data", (d) => resolve(d.toString("latin1"))),
		);
		if (!head.startsWith("HTTP/1.1 101")) throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
		const received = { bytes: 0 };
		socket.on("data", (d) => {
			received.bytes += d.length;
		});
		socket.on("error", () => {});
		return new RawSocket(socket, received);
	}

	/** Sends one masked text frame, as clients must. */
	sendText(text: string): void {
		const payload = Buffer.from(text);
		const mask = crypto.getRandomValues(new Uint8Array(4));
		const len = payload.length;
		const header =
			len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
		for (let i = 0; i < len; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
		this.socket.write(Buffer.concat([header, mask, payload]));
	}

	/** Stops reading: the kernel buffers fill, no pong is ever sent again. */
	stopReading(): void {
		this.socket.pause();
	}

	destroy(): void {
		this.socket.destroy();
	}
}
