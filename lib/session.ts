// The per-connection protocol: turns each frame a socket sends into a hub call or an `error`.
import type { WebSocketHandler } from "bun";
import type { Conn, Hub, Socket } from "../hub.ts";
import {
	CLOSE,
	type ClientFrame,
	type ErrorCode,
	PROTOCOL_VERSION,
	parseClientFrame,
	parseName,
} from "../protocol.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { TokenBucket } from "./rate-limit.ts";
import { StoreError } from "./store.ts";

export type SessionLimits = Pick<
	Config,
	| "maxPayload"
	| "maxRooms"
	| "sendRate"
	| "sendBurst"
	| "typingRate"
	| "floodClose"
	| "maxBuffer"
	| "idleTimeout"
>;

let nextId = 1;

/** The `ws.data` a new upgrade starts with. */
export function newConn(address: string, limits: SessionLimits): Conn {
	return {
		id: nextId++,
		address,
		rooms: new Set(),
		joins: new Map(),
		sendBucket: new TokenBucket(limits.sendRate, limits.sendBurst),
		typingBucket: new TokenBucket(limits.typingRate, 1),
		strikes: 0,
		identifying: false,
		lastSeen: performance.now(),
		closed: false,
	};
}

/**
 * `refuseSends` names a reason sends cannot be stored right now (e.g. the disk
 * is below its floor); such sends get `server_error` with that reason.
 */
export function websocketHandler(
	hub: Hub,
	limits: SessionLimits,
	log: Logger,
	refuseSends: () => string | undefined = () => undefined,
): WebSocketHandler<Conn> {
	const { metrics } = hub;

	function sendError(ws: Socket, code: ErrorCode, message: string, ref?: string): void {
		metrics.errors.inc(1, code);
		hub.sendTo(
			ws,
			ref === undefined ? { type: "error", code, message } : { type: "error", code, message, ref },
		);
	}

	/** Takes a token; without one the frame is dropped with `rate_limited`, and a flood closes the connection. */
	function limited(ws: Socket, bucket: TokenBucket, ref?: string): boolean {
		if (bucket.take()) return false;
		metrics.rateLimited.inc();
		ws.data.strikes++;
		log.debug("rate_limited", { conn: ws.data.id, address: ws.data.address, strikes: ws.data.strikes });
		if (ws.data.strikes > limits.floodClose) {
			log.info("flood_closed", { conn: ws.data.id, address: ws.data.address });
			ws.close(CLOSE.policyViolation, "rate limit exceeded");
		} else {
			sendError(ws, "rate_limited", "too many frames; slow down", ref);
		}
		return true;
	}

	/** Awaits a hub call; a failure becomes `server_error` for this socket alone. */
	function run(ws: Socket, work: Promise<unknown>, ref: string | undefined): void {
		work.catch((e: unknown) => {
			if (e instanceof StoreError) metrics.storeErrors.inc();
			log.error("request_failed", { conn: ws.data.id, error: (e as Error).message });
			sendError(ws, "server_error", "the server could not do that; try again", ref);
		});
	}

	function handle(ws: Socket, frame: ClientFrame): void {
		const conn = ws.data;
		if (frame.type === "hello") {
			if (conn.name !== undefined || conn.identifying) {
				const message = conn.name
					? `this connection is already known as ${conn.name}`
					: "a hello is already being answered";
				sendError(ws, "already_identified", message);
				return;
			}
			const parsed = parseName(frame.name);
			if (!parsed.ok) {
				sendError(ws, "invalid_name", parsed.message);
				return;
			}
			conn.identifying = true;
			const answer = hub.identify(ws, parsed.name).then((ok) => {
				if (ok) {
					hub.sendTo(ws, {
						type: "welcome",
						name: parsed.name,
						version: PROTOCOL_VERSION,
						epoch: hub.store.epoch,
					});
				} else {
					sendError(ws, "name_taken", `the name ${parsed.name} is in use`);
				}
			});
			run(
				ws,
				answer.finally(() => {
					conn.identifying = false;
				}),
				undefined,
			);
			return;
		}
		if (conn.name === undefined) {
			sendError(ws, "not_identified", "send hello first", frame.type === "send" ? frame.id : undefined);
			return;
		}
		if (frame.type === "ping") {
			hub.sendTo(ws, { type: "pong" });
			return;
		}
		if (frame.type === "join") {
			const joinedOrJoining = new Set([...conn.rooms, ...conn.joins.keys()]);
			if (!joinedOrJoining.has(frame.room) && joinedOrJoining.size >= limits.maxRooms) {
				sendError(
					ws,
					"too_many_rooms",
					`a connection can be in at most ${limits.maxRooms} rooms; leave one first`,
				);
				return;
			}
			log.debug("join", { conn: conn.id, name: conn.name, room: frame.room, since: frame.since });
			run(ws, hub.join(ws, frame.room, frame.since), undefined);
			return;
		}
		if (!conn.rooms.has(frame.room)) {
			sendError(ws, "not_joined", `join ${frame.room} first`, frame.type === "send" ? frame.id : undefined);
			return;
		}
		switch (frame.type) {
			case "leave":
				hub.leave(ws, frame.room);
				hub.sendTo(ws, { type: "left", room: frame.room });
				return;
			case "send": {
				if (limited(ws, conn.sendBucket, frame.id)) return;
				const refusal = refuseSends();
				if (refusal) {
					sendError(ws, "server_error", refusal, frame.id);
					return;
				}
				run(ws, hub.send(ws, frame.room, frame.id, frame.text), frame.id);
				return;
			}
			case "typing":
				if (limited(ws, conn.typingBucket)) return;
				hub.typing(ws, frame.room);
				return;
			case "history":
				run(
					ws,
					hub.history(frame.room, frame.before, frame.limit).then((page) => {
						hub.sendTo(ws, { type: "history", room: frame.room, ...page });
					}),
					undefined,
				);
				return;
		}
	}

	return {
		maxPayloadLength: limits.maxPayload,
		backpressureLimit: limits.maxBuffer,
		// Past the limit Bun would otherwise drop frames and keep the socket: a gap the client
		// cannot see. Closed instead, the client resumes with `since` and loses nothing stored.
		closeOnBackpressureLimit: true,
		idleTimeout: limits.idleTimeout,
		sendPings: true,
		open(ws) {
			hub.connect(ws);
			log.info("connection_open", { conn: ws.data.id, address: ws.data.address });
		},
		message(ws, raw) {
			ws.data.lastSeen = performance.now();
			metrics.bytesIn.inc(typeof raw === "string" ? Buffer.byteLength(raw) : raw.byteLength);
			if (typeof raw !== "string") {
				metrics.framesIn.inc(1, "binary");
				sendError(ws, "bad_frame", "binary frames are not accepted; send JSON text");
				return;
			}
			const parsed = parseClientFrame(raw);
			if (!parsed.ok) {
				metrics.framesIn.inc(1, "invalid");
				sendError(ws, parsed.code, parsed.message, parsed.ref);
				return;
			}
			metrics.framesIn.inc(1, parsed.frame.type);
			try {
				handle(ws, parsed.frame);
			} catch (e) {
				log.error("frame_failed", { conn: ws.data.id, error: (e as Error).message });
				sendError(ws, "server_error", "the server could not do that; try again");
			}
		},
		pong(ws) {
			ws.data.lastSeen = performance.now();
		},
		close(ws, code) {
			hub.disconnect(ws);
			metrics.closes.inc(1, String(code));
			log.info("connection_close", { conn: ws.data.id, address: ws.data.address, name: ws.data.name, code });
		},
	};
}
