// The per-connection protocol: turns each frame a socket sends into a hub call or an `error`.
import type { WebSocketHandler } from "bun";
import { type Conn, encode, type Hub, type Socket } from "../hub.ts";
import {
	CLOSE,
	type ClientFrame,
	type ErrorCode,
	PROTOCOL_VERSION,
	parseClientFrame,
	parseName,
} from "../protocol.ts";
import type { Logger } from "./log.ts";
import { TokenBucket } from "./rate-limit.ts";

export interface SessionLimits {
	maxPayload: number;
	idleTimeoutSec: number;
	sendRate: number;
	sendBurst: number;
	typingRate: number;
	typingBurst: number;
	/** Rate-limited frames a connection may send before it is closed with 1008. */
	maxStrikes: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
	maxPayload: 64 * 1024,
	idleTimeoutSec: 120,
	sendRate: 10,
	sendBurst: 20,
	typingRate: 1,
	typingBurst: 1,
	maxStrikes: 100,
};

let nextId = 1;

/** The `ws.data` a new upgrade starts with. */
export function newConn(address: string, limits: SessionLimits): Conn {
	return {
		id: nextId++,
		address,
		rooms: new Set(),
		joins: new Map(),
		sendBucket: new TokenBucket(limits.sendRate, limits.sendBurst),
		typingBucket: new TokenBucket(limits.typingRate, limits.typingBurst),
		strikes: 0,
		closed: false,
	};
}

function sendError(ws: Socket, code: ErrorCode, message: string, ref?: string): void {
	if (ws.data.closed) return;
	ws.send(
		encode(ref === undefined ? { type: "error", code, message } : { type: "error", code, message, ref }),
	);
}

export function websocketHandler(hub: Hub, limits: SessionLimits, log: Logger): WebSocketHandler<Conn> {
	function limited(ws: Socket, bucket: TokenBucket, ref?: string): boolean {
		if (bucket.take()) return false;
		ws.data.strikes++;
		if (ws.data.strikes > limits.maxStrikes) {
			ws.close(CLOSE.policyViolation, "rate limit exceeded");
		} else {
			sendError(ws, "rate_limited", "too many frames; slow down", ref);
		}
		return true;
	}

	function handle(ws: Socket, frame: ClientFrame): void {
		const conn = ws.data;
		if (frame.type === "hello") {
			if (conn.name !== undefined) {
				sendError(ws, "already_identified", `this connection is already known as ${conn.name}`);
				return;
			}
			const parsed = parseName(frame.name);
			if (!parsed.ok) {
				sendError(ws, "invalid_name", parsed.message);
				return;
			}
			if (!hub.identify(ws, parsed.name)) {
				sendError(ws, "name_taken", `the name ${parsed.name} is in use`);
				return;
			}
			ws.send(
				encode({ type: "welcome", name: parsed.name, version: PROTOCOL_VERSION, epoch: hub.store.epoch }),
			);
			return;
		}
		if (conn.name === undefined) {
			sendError(ws, "not_identified", "send hello first", refOf(frame));
			return;
		}
		if (frame.type === "ping") {
			ws.send(encode({ type: "pong" }));
			return;
		}
		if (frame.type === "join") {
			run(ws, hub.join(ws, frame.room, frame.since), undefined);
			return;
		}
		if (!conn.rooms.has(frame.room)) {
			sendError(ws, "not_joined", `join ${frame.room} first`, refOf(frame));
			return;
		}
		switch (frame.type) {
			case "leave":
				hub.leave(ws, frame.room);
				ws.send(encode({ type: "left", room: frame.room }));
				return;
			case "send":
				if (limited(ws, conn.sendBucket, frame.id)) return;
				run(ws, hub.send(ws, frame.room, frame.id, frame.text), frame.id);
				return;
			case "typing":
				if (limited(ws, conn.typingBucket)) return;
				hub.typing(ws, frame.room);
				return;
			case "history":
				run(
					ws,
					hub.history(frame.room, frame.before, frame.limit).then((page) => {
						if (!ws.data.closed) {
							ws.send(encode({ type: "history", room: frame.room, ...page }));
						}
					}),
					undefined,
				);
				return;
		}
	}

	/** Awaits a hub call; a failure becomes `server_error` for this socket alone. */
	function run(ws: Socket, work: Promise<unknown>, ref: string | undefined): void {
		work.catch((e: unknown) => {
			log.error("request_failed", { conn: ws.data.id, error: (e as Error).message });
			sendError(ws, "server_error", "the server could not do that; try again", ref);
		});
	}

	return {
		maxPayloadLength: limits.maxPayload,
		idleTimeout: limits.idleTimeoutSec,
		sendPings: true,
		open(ws) {
			hub.connect(ws);
			log.debug("ws_open", { conn: ws.data.id, address: ws.data.address });
		},
		message(ws, raw) {
			if (typeof raw !== "string") {
				sendError(ws, "bad_frame", "binary frames are not accepted; send JSON text");
				return;
			}
			const parsed = parseClientFrame(raw);
			if (!parsed.ok) {
				sendError(ws, parsed.code, parsed.message, parsed.ref);
				return;
			}
			try {
				handle(ws, parsed.frame);
			} catch (e) {
				log.error("frame_failed", { conn: ws.data.id, error: (e as Error).message });
				sendError(ws, "server_error", "the server could not do that; try again", refOf(parsed.frame));
			}
		},
		close(ws, code) {
			hub.disconnect(ws);
			log.debug("ws_close", { conn: ws.data.id, address: ws.data.address, code });
		},
	};
}

function refOf(frame: ClientFrame): string | undefined {
	return frame.type === "send" ? frame.id : undefined;
}
