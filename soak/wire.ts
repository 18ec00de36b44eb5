// A WebSocket client spoken by hand over TCP, so the soak can drop a connection in the middle of a frame
// (which no WebSocket API allows) and see exactly what the server wrote before it went away.
import { connect, type Socket } from "node:net";

export interface WireEvents {
	text(data: string): void;
	/** The connection is gone: `code` from the server's close frame, 1006 when none came. */
	closed(code: number, reason: string): void;
}

/** One client connection: text frames in and out, answers the server's pings, nothing else. */
export class Wire {
	private buffer: Buffer = Buffer.alloc(0);
	private fragments: Buffer[] = [];
	private upgraded = false;
	private done = false;

	private constructor(
		private readonly socket: Socket,
		private readonly events: WireEvents,
	) {}

	/**
	 * Opens a WebSocket to `ws://127.0.0.1:port/ws` (with `cookie`, a session under --auth accounts, sent as
	 * the page's browser would, with its Origin); rejects when the upgrade is not answered within `ms`.
	 */
	static open(port: number, events: WireEvents, ms: number, cookie?: string): Promise<Wire> {
		return new Promise((resolve, reject) => {
			const socket = connect(port, "127.0.0.1");
			const wire = new Wire(socket, events);
			const timer = setTimeout(() => {
				socket.destroy();
				reject(new Error(`no upgrade from port ${port} within ${ms} ms`));
			}, ms);
			socket.on("connect", () => {
				const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
				socket.write(
					`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
						`Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
						(cookie ? `Origin: http://127.0.0.1:${port}\r\nCookie: ${cookie}\r\n` : "") +
						"\r\n",
				);
			});
			socket.on("data", (chunk: Buffer) => {
				wire.buffer = wire.buffer.length === 0 ? chunk : Buffer.concat([wire.buffer, chunk]);
				if (!wire.upgraded) {
					const end = wire.buffer.indexOf("\r\n\r\n");
					if (end < 0) return;
					const head = wire.buffer.subarray(0, end).toString("latin1");
					wire.buffer = wire.buffer.subarray(end + 4);
					clearTimeout(timer);
					if (!head.startsWith("HTTP/1.1 101")) {
						socket.destroy();
						reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
						return;
					}
					wire.upgraded = true;
					resolve(wire);
					// Frames that came with the upgrade (under --auth accounts `welcome` comes unasked) are
					// handed on after whoever awaited the upgrade has taken the wire.
					queueMicrotask(() => wire.parse());
					return;
				}
				wire.parse();
			});
			socket.on("error", () => {});
			socket.on("close", () => {
				clearTimeout(timer);
				reject(new Error(`connection to port ${port} closed before the upgrade`));
				wire.finish(1006, "");
			});
		});
	}

	get open(): boolean {
		return !this.done;
	}

	send(text: string): void {
		if (!this.done) this.socket.write(frame(0x1, Buffer.from(text)));
	}

	/** Writes the first part of a text frame and tears the connection down, as a client that vanishes mid-send. */
	sendHalfAndDrop(text: string): void {
		if (this.done) return;
		const whole = frame(0x1, Buffer.from(text));
		this.socket.write(whole.subarray(0, Math.max(3, whole.length >> 1)));
		this.drop();
	}

	/** A clean close with a close frame. */
	close(code = 1000): void {
		if (this.done) return;
		const payload = Buffer.alloc(2);
		payload.writeUInt16BE(code);
		this.socket.write(frame(0x8, payload));
		this.socket.end();
		this.finish(code, "closed by client");
	}

	/** Gone without a word: no close frame, the TCP connection reset. */
	drop(): void {
		this.socket.resetAndDestroy();
		this.finish(1006, "dropped by client");
	}

	private finish(code: number, reason: string): void {
		if (this.done || !this.upgraded) {
			this.done = true;
			return;
		}
		this.done = true;
		this.events.closed(code, reason);
	}

	private parse(): void {
		for (;;) {
			const b = this.buffer;
			if (b.length < 2) return;
			const fin = ((b[0] as number) & 0x80) !== 0;
			const opcode = (b[0] as number) & 0x0f;
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
			if (opcode === 0x9) {
				this.socket.write(frame(0xa, payload));
			} else if (opcode === 0x8) {
				const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
				const reason = payload.subarray(2).toString("utf8");
				this.socket.write(frame(0x8, payload.subarray(0, 2)));
				this.socket.end();
				this.finish(code, reason);
				return;
			} else if (opcode === 0x1 || opcode === 0x0) {
				this.fragments.push(Buffer.from(payload));
				if (fin) {
					const text = Buffer.concat(this.fragments).toString("utf8");
					this.fragments = [];
					if (!this.done) this.events.text(text);
				}
			}
		}
	}
}

/** One masked frame, as a client must send it. */
function frame(opcode: number, payload: Buffer): Buffer {
	const len = payload.length;
	const head =
		len < 126
			? Buffer.from([0x80 | opcode, 0x80 | len])
			: len < 65536
				? Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff])
				: (() => {
						const h = Buffer.alloc(10);
						h[0] = 0x80 | opcode;
						h[1] = 0x80 | 127;
						h.writeBigUInt64BE(BigInt(len), 2);
						return h;
					})();
	const mask = crypto.getRandomValues(new Uint8Array(4));
	const masked = Buffer.alloc(len);
	for (let i = 0; i < len; i++) masked[i] = (payload[i] as number) ^ (mask[i % 4] as number);
	return Buffer.concat([head, mask, masked]);
}
