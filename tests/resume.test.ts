// A slow reader resuming into a busy room of long messages: every reply fits what it may hold, so it catches up instead of being dropped.
import { describe, expect, test } from "bun:test";
import type { Socket } from "node:net";
import { parseServerFrame, type ServerFrame } from "../protocol.ts";
import { chatter, startServer } from "./helpers.ts";

/**
 * A WebSocket client spoken by hand over TCP that reads at most `bytesPerSecond`:
 * it pauses the socket whenever it is ahead of that pace, as a phone on a slow
 * link does, so the server's buffer for it fills the way it would in the field.
 */
class SlowReader {
	readonly frames: ServerFrame[] = [];
	closed = false;
	private buffer = Buffer.alloc(0);
	private fragments: Buffer[] = [];
	private received = 0;
	private readonly started = performance.now();
	private wake?: () => void;

	private constructor(
		private readonly socket: Socket,
		private readonly bytesPerSecond: number,
	) {}

	static async connect(port: number, bytesPerSecond: number): Promise<SlowReader> {
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
		const reader = new SlowReader(socket, bytesPerSecond);
		let head = "";
		await new Promise<void>((resolve, reject) => {
			const onData = (d: Buffer) => {
				const text = d.toString("latin1");
				const end = text.indexOf("\r\n\r\n");
				if (end < 0) {
					head += text;
					return;
				}
				head += text.slice(0, end);
				socket.off("data", onData);
				if (!head.startsWith("HTTP/1.1 101")) reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
				reader.take(d.subarray(end + 4));
				socket.on("data", (chunk: Buffer) => reader.take(chunk));
				resolve();
			};
			socket.on("data", onData);
		});
		socket.on("close", () => {
			reader.closed = true;
			reader.wake?.();
		});
		socket.on("error", () => {});
		return reader;
	}

	private take(chunk: Buffer): void {
		this.received += chunk.length;
		this.buffer = Buffer.concat([this.buffer, chunk]);
		this.parse();
		// Ahead of the allowed pace: stop reading until the clock catches up.
		const dueMs = (this.received / this.bytesPerSecond) * 1000 - (performance.now() - this.started);
		if (dueMs > 5) {
			this.socket.pause();
			setTimeout(() => this.socket.resume(), dueMs);
		}
	}

	private parse(): void {
		for (;;) {
			const b = this.buffer;
			if (b.length < 2) return;
			const opcode = (b[0] as number) & 0x0f;
			const fin = ((b[0] as number) & 0x80) !== 0;
			let len = (b[1] as number) & 0x7f;
			let at = 2;
			if (len === 126) {
				if (b.length < 4) return;
				len = b.readUInt16BE(2);
				at = 4;
			} else if (len === 127) {
				if (b.length < 10) return;
				len = Number(b.readBigUInt64BE(2));
				at = 10;
			}
			if (b.length < at + len) return;
			const payload = b.subarray(at, at + len);
			this.buffer = b.subarray(at + len);
			if (opcode === 0x9) this.write(0xa, payload);
			else if (opcode === 0x8) this.closed = true;
			else if (opcode === 0x1 || opcode === 0x0) {
				this.fragments.push(Buffer.from(payload));
				if (fin) {
					const text = Buffer.concat(this.fragments).toString("utf8");
					this.fragments = [];
					const frame = parseServerFrame(text);
					if (!frame) throw new Error(`not a protocol frame: ${text.slice(0, 100)}`);
					this.frames.push(frame);
				}
			}
			this.wake?.();
		}
	}

	/** One masked frame, as clients must send. */
	private write(opcode: number, data: Buffer): void {
		const mask = crypto.getRandomValues(new Uint8Array(4));
		const len = data.length;
		const header =
			len < 126
				? Buffer.from([0x80 | opcode, 0x80 | len])
				: Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
		const body = Buffer.from(data);
		for (let i = 0; i < len; i++) body[i] = (body[i] as number) ^ (mask[i % 4] as number);
		this.socket.write(Buffer.concat([header, mask, body]));
	}

	send(frame: unknown): void {
		this.write(0x1, Buffer.from(JSON.stringify(frame)));
	}

	/** Waits until `check` holds; fails if the connection closes first. */
	async until(check: () => boolean, ms: number): Promise<void> {
		const deadline = Date.now() + ms;
		while (!check()) {
			if (this.closed) throw new Error("the server closed the slow reader's connection");
			if (Date.now() > deadline) throw new Error("the slow reader did not catch up in time");
			await new Promise<void>((resolve) => {
				this.wake = resolve;
				setTimeout(resolve, 100);
			});
		}
	}

	destroy(): void {
		this.socket.destroy();
	}
}

describe("resume in pieces", () => {
	test("a 500 KB/s reader resuming into a busy room of long messages gets every reply, catches up and misses nothing", async () => {
		const maxBuffer = 256 * 1024;
		await using s = startServer({ config: { sendBurst: 100_000, sendRate: 100_000, maxBuffer } });
		const writer = await chatter(s.ws, "writer", "busy");
		// 4000 emoji: 16 KB of UTF-8 in each message; 300 of them, about 4.8 MB.
		const text = "🙂".repeat(4000);
		const stored = 300;
		for (let i = 0; i < stored; i += 50) {
			for (let j = i; j < i + 50; j++) writer.send({ type: "send", room: "busy", id: `w${j}`, text });
			await writer.expect("message", (m) => m.id === `w${i + 49}`, 20_000);
		}
		const reader = await SlowReader.connect(s.server.port as number, 500_000);
		try {
			reader.send({ type: "hello", name: "reader" });
			reader.send({ type: "join", room: "busy", since: 0 });
			// The room stays busy: one long message a second while the reader resumes.
			let live = 0;
			const talking = setInterval(
				() => writer.send({ type: "send", room: "busy", id: `l${live++}`, text }),
				1000,
			);
			const seqs = new Set<number>();
			let lowest = Number.POSITIVE_INFINITY;
			let asked = 0;
			let replies = 0;
			let largest = 0;
			const step = () => {
				for (; replies < reader.frames.length; replies++) {
					const f = reader.frames[replies] as ServerFrame;
					if (f.type === "joined" || f.type === "history" || f.type === "message") {
						largest = Math.max(largest, Buffer.byteLength(JSON.stringify(f)));
						const got = f.type === "message" ? [f] : f.messages;
						for (const m of got) {
							expect(seqs.has(m.seq)).toBe(false);
							seqs.add(m.seq);
							lowest = Math.min(lowest, m.seq);
						}
					}
					// Older messages still missing: ask for the next piece, as the page does on scroll.
					if ((f.type === "joined" || f.type === "history") && f.more && lowest > 1) {
						reader.send({ type: "history", room: "busy", before: lowest, limit: 200 });
						asked++;
					}
				}
				return lowest === 1 && live >= 3;
			};
			try {
				await reader.until(step, 60_000);
			} finally {
				clearInterval(talking);
			}
			// The last live message the writer saw acknowledged: the reader gets it too.
			const last = await writer.expect("message", (m) => m.id === `l${live - 1}`, 20_000);
			await reader.until(() => {
				step();
				return seqs.has(last.seq);
			}, 30_000);
			// No reply was larger than half of what may wait for a slow reader; the connection stayed open.
			expect(largest).toBeLessThanOrEqual(maxBuffer / 2);
			expect(reader.closed).toBe(false);
			const top = Math.max(...seqs);
			expect(top).toBe(last.seq);
			expect(top).toBeGreaterThanOrEqual(stored + 3);
			expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: top }, (_, i) => i + 1));
			expect(asked).toBeGreaterThan(3);
		} finally {
			reader.destroy();
		}
	}, 90_000);
});
