// The per-connection protocol: one Session per socket owns what is per connection (name, rooms, limits), and turns each frame into a hub call or an `error`.
import type { ServerWebSocket, WebSocketHandler } from "bun";
import {
	CLOSE,
	type ClientFrame,
	type ClientFrameType,
	type ErrorCode,
	type Message,
	PROTOCOL_VERSION,
	parseClientFrame,
	parseName,
	type ServerFrame,
} from "../protocol.ts";
import { helloMatchesAccount } from "./auth-ws.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { FRAME_RATES, TokenBucket } from "./rate-limit.ts";
import { type Page, QuotaExceeded, StoreError } from "./store.ts";

export type SessionLimits = Pick<
	Config,
	| "maxPayload"
	| "maxRooms"
	| "sendRate"
	| "sendBurst"
	| "typingRate"
	| "floodClose"
	| "floodForgive"
	| "frameRates"
	| "replyRate"
	| "replyBurst"
	| "helloTimeout"
	| "maxBuffer"
	| "idleTimeout"
>;

export type Socket = ServerWebSocket<Session>;

/** What a frame may do now: go ahead, be refused with `rate_limited`, or end a flooding connection. */
export type Verdict = "ok" | "limited" | "close";

/** Frames whose answer can be large: they need reply bytes left in the budget. */
const COSTLY: ReadonlySet<ClientFrameType> = new Set(["join", "history"]);
/** Costly requests one connection may have in flight at once: a pipelined burst waits for none of them. */
const MAX_IN_FLIGHT = 2;

let nextId = 1;

/**
 * One connection (`ws.data`): who it is, which rooms it is in, and what it
 * may still cost. The cost model: every frame type draws from its own token
 * bucket; answers to the connection's own requests (joined, history, errors)
 * draw their size from a byte budget, and `join`/`history` wait for none of
 * it: they are refused while the budget is spent. Each refusal is a strike;
 * strikes are forgiven over time, so only a sustained flood is closed.
 */
export class Session {
	readonly id = nextId++;
	/** Set once `welcome` is sent. */
	name?: string;
	/** Rooms whose `joined` was sent. */
	readonly rooms = new Set<string>();
	/** Joins in progress, by room. */
	readonly joins = new Map<string, Promise<void>>();
	/** A hello is being answered (the cluster is asked whether the name is free). */
	identifying = false;
	/** performance.now() of the last frame or pong from the client. */
	lastSeen = performance.now();
	closed = false;
	/** Closes a connection that never says hello. */
	helloTimer?: ReturnType<typeof setTimeout>;
	private readonly frames: Record<ClientFrameType, TokenBucket>;
	private readonly replies: TokenBucket;
	private readonly strikeBucket: TokenBucket;
	private readonly floodClose: number;
	private inFlight = 0;

	constructor(
		readonly address: string,
		limits: SessionLimits,
	) {
		const rates = {
			...FRAME_RATES,
			send: { rate: limits.sendRate, burst: limits.sendBurst },
			typing: { rate: limits.typingRate, burst: 1 },
			...Object.fromEntries(limits.frameRates.map((r) => [r.type, r])),
		};
		this.frames = Object.fromEntries(
			Object.entries(rates).map(([type, r]) => [type, new TokenBucket(r.rate, r.burst)]),
		) as Record<ClientFrameType, TokenBucket>;
		this.replies = new TokenBucket(limits.replyRate, limits.replyBurst);
		this.floodClose = limits.floodClose;
		this.strikeBucket = new TokenBucket(limits.floodForgive, limits.floodClose);
	}

	/** Charges one frame of `type`; past its rate (or, for a costly one, past the byte budget) it is refused. */
	admit(type: ClientFrameType, now = performance.now()): Verdict {
		const costly = COSTLY.has(type);
		const allowed =
			(!costly || (this.replies.level(now) > 0 && this.inFlight < MAX_IN_FLIGHT)) &&
			this.frames[type].take(now);
		if (allowed) return "ok";
		return this.strikeBucket.take(now) ? "limited" : "close";
	}

	/** Strikes not yet forgiven. */
	get strikes(): number {
		return Math.round(this.floodClose - this.strikeBucket.level());
	}

	/** Draws `bytes` of an answer sent to this connection alone from its budget. */
	replied(bytes: number): void {
		this.replies.spend(bytes);
	}

	/** Runs a costly request, counted as in flight until it settles. */
	track<T>(work: Promise<T>): Promise<T> {
		this.inFlight++;
		return work.finally(() => {
			this.inFlight--;
		});
	}
}

/** What a session needs from the hub (hub.ts implements it). */
export interface SessionHub {
	readonly metrics: Metrics;
	readonly store: { readonly epoch: string };
	connect(ws: Socket): void;
	disconnect(ws: Socket): void;
	sendTo(ws: Socket, frame: ServerFrame): void;
	identify(ws: Socket, name: string): Promise<boolean>;
	join(ws: Socket, room: string, since: number | undefined): Promise<void>;
	leave(ws: Socket, room: string): void;
	send(ws: Socket, room: string, id: string | undefined, text: string): Promise<Message>;
	typing(ws: Socket, room: string): void;
	history(room: string, before: number | undefined, limit: number, ws?: Socket): Promise<Page>;
}

/**
 * `refuseSends` names a reason sends cannot be stored right now (e.g. the disk
 * is below its floor); such sends get `server_error` with that reason.
 * `floodClosed` learns of every address closed for flooding (server.ts refuses it for a while).
 */
/** The room a client frame names, if it names one. */
function roomOf(frame: ClientFrame): string | undefined {
	return "room" in frame ? frame.room : undefined;
}

export function websocketHandler(
	hub: SessionHub,
	limits: SessionLimits,
	log: Logger,
	refuseSends: () => string | undefined = () => undefined,
	floodClosed: (address: string) => void = () => {},
): WebSocketHandler<Session> {
	const { metrics } = hub;

	/** `ref` and `room` name the frame it answers (its id, the room it named), so a client can retry that one. */
	function sendError(ws: Socket, code: ErrorCode, message: string, ref?: string, room?: string): void {
		metrics.errors.inc(1, code);
		hub.sendTo(ws, {
			type: "error",
			code,
			message,
			...(ref === undefined ? {} : { ref }),
			...(room === undefined ? {} : { room }),
		});
	}

	/** Charges the frame; false (and `rate_limited`, or a 1008 close for a flood) when it may not go ahead. */
	function admitted(ws: Socket, frame: ClientFrame, ref?: string): boolean {
		const verdict = ws.data.admit(frame.type);
		if (verdict === "ok") return true;
		metrics.rateLimited.inc();
		log.debug("rate_limited", {
			conn: ws.data.id,
			address: ws.data.address,
			frame: frame.type,
			strikes: ws.data.strikes,
			verdict,
		});
		if (verdict === "close") {
			log.info("flood_closed", { conn: ws.data.id, address: ws.data.address, frame: frame.type });
			floodClosed(ws.data.address);
			ws.close(CLOSE.policyViolation, "rate limit exceeded");
		} else {
			sendError(ws, "rate_limited", `too many ${frame.type} frames; slow down`, ref, roomOf(frame));
		}
		return false;
	}

	/** Awaits a hub call; a failure becomes `server_error` for this socket alone. */
	function run(ws: Socket, work: Promise<unknown>, ref: string | undefined, room?: string): void {
		work.catch((e: unknown) => {
			if (e instanceof QuotaExceeded) return sendError(ws, "quota_exceeded", e.message, ref, room);
			if (e instanceof StoreError) metrics.storeErrors.inc();
			log.error("request_failed", { conn: ws.data.id, error: (e as Error).message });
			sendError(ws, "server_error", "the server could not do that; try again", ref, room);
		});
	}

	function hello(ws: Socket, raw: string): void {
		const session = ws.data;
		if (session.name !== undefined && helloMatchesAccount(session, raw)) {
			// --auth accounts: `welcome` was sent at open; a hello naming the same account gets it again.
			hub.sendTo(ws, {
				type: "welcome",
				name: session.name,
				version: PROTOCOL_VERSION,
				epoch: hub.store.epoch,
			});
			return;
		}
		if (session.name !== undefined || session.identifying) {
			const message = session.name
				? `this connection is already known as ${session.name}`
				: "a hello is already being answered";
			sendError(ws, "already_identified", message);
			return;
		}
		const parsed = parseName(raw);
		if (!parsed.ok) {
			sendError(ws, "invalid_name", parsed.message);
			return;
		}
		session.identifying = true;
		const answer = hub.identify(ws, parsed.name).then((ok) => {
			if (ok) {
				clearTimeout(session.helloTimer);
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
				session.identifying = false;
			}),
			undefined,
		);
	}

	function handle(ws: Socket, frame: ClientFrame): void {
		const session = ws.data;
		const ref = frame.type === "send" ? frame.id : undefined;
		if (!admitted(ws, frame, ref)) return;
		if (frame.type === "hello") return hello(ws, frame.name);
		if (session.name === undefined) return sendError(ws, "not_identified", "send hello first", ref);
		if (frame.type === "ping") return hub.sendTo(ws, { type: "pong" });
		if (frame.type === "join") {
			const joinedOrJoining = new Set([...session.rooms, ...session.joins.keys()]);
			if (!joinedOrJoining.has(frame.room) && joinedOrJoining.size >= limits.maxRooms) {
				return sendError(
					ws,
					"too_many_rooms",
					`a connection can be in at most ${limits.maxRooms} rooms; leave one first`,
					undefined,
					frame.room,
				);
			}
			log.debug("join", { conn: session.id, name: session.name, room: frame.room, since: frame.since });
			return run(ws, session.track(hub.join(ws, frame.room, frame.since)), undefined, frame.room);
		}
		if (!session.rooms.has(frame.room))
			return sendError(ws, "not_joined", `join ${frame.room} first`, ref, frame.room);
		switch (frame.type) {
			case "leave":
				hub.leave(ws, frame.room);
				return hub.sendTo(ws, { type: "left", room: frame.room });
			case "send": {
				const refusal = refuseSends();
				if (refusal) return sendError(ws, "server_error", refusal, frame.id, frame.room);
				return run(ws, hub.send(ws, frame.room, frame.id, frame.text), frame.id, frame.room);
			}
			case "typing":
				return hub.typing(ws, frame.room);
			case "history": {
				const reply = hub.history(frame.room, frame.before, frame.limit, ws).then((page) => {
					hub.sendTo(ws, { type: "history", room: frame.room, ...page });
				});
				return run(ws, session.track(reply), undefined, frame.room);
			}
			default:
				frame satisfies never;
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
			// A connection that answers pings but never says who it is would hold a slot forever.
			ws.data.helloTimer = setTimeout(() => {
				if (ws.data.name !== undefined || ws.data.closed) return;
				log.info("hello_timeout", { conn: ws.data.id, address: ws.data.address });
				ws.close(CLOSE.policyViolation, `no hello within ${limits.helloTimeout} s`);
			}, limits.helloTimeout * 1000);
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
			clearTimeout(ws.data.helloTimer);
			hub.disconnect(ws);
			metrics.closes.inc(1, String(code));
			log.info("connection_close", { conn: ws.data.id, address: ws.data.address, name: ws.data.name, code });
		},
	};
}
