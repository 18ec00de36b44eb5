// The per-connection protocol: one Session per socket owns what is per connection (name, rooms, limits), and turns each frame into a hub call or an `error`.
import type { ServerWebSocket, WebSocketHandler } from "bun";
import {
	type AccountsFrame,
	CLOSE,
	type ClientFrame,
	type ClientFrameType,
	type ErrorCode,
	isAccountsFrame,
	type Message,
	PROTOCOL_VERSION,
	parseClientFrame,
	parseName,
	type ServerFrame,
	type ServerFrameOf,
} from "../protocol.ts";
import { type Reader, readableRooms } from "./access.ts";
import { AddressQuota } from "./address-quota.ts";
import { UnknownFile } from "./attachments-index.ts";
import { accountOf, helloMatchesAccount } from "./auth-ws.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { ChangeRefused } from "./message-changes.ts";
import type { Metrics } from "./metrics.ts";
import { addressGroup } from "./origin.ts";
import { FRAME_RATES, INVALID_RATE, TokenBucket } from "./rate-limit.ts";
import { RoomRefusal } from "./rooms.ts";
import { BadCursor } from "./search.ts";
import { around, forward } from "./search-context.ts";
import { type Page, QuotaExceeded, type Store, StoreError } from "./store.ts";

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
	| "addressQuotaPerDay"
>;

export type Socket = ServerWebSocket<Session>;

/** What a frame may do now: go ahead, be refused with `rate_limited`, or end a flooding connection. */
export type Verdict = "ok" | "limited" | "close";

/** Frames whose answer can be large: they need reply bytes left in the budget. */
const COSTLY: ReadonlySet<ClientFrameType> = new Set(["join", "history", "search"]);
/** Costly requests of one connection run one at a time, so they are answered in the order they came. */
const MAX_IN_FLIGHT = 1;
/** Costly requests one connection may have waiting: a page rejoining all its rooms (--max-rooms) fits. */
const MAX_WAITING = 100;

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
	private readonly frames: Record<ClientFrameType | "invalid", TokenBucket>;
	/** Frames that fail validation (INVALID_RATE, or --rate invalid=…). */
	private readonly invalid: TokenBucket;
	private readonly replies: TokenBucket;
	private readonly strikeBucket: TokenBucket;
	private readonly floodClose: number;
	private inFlight = 0;
	/** Costly requests waiting for a turn (MAX_IN_FLIGHT run at once), in arrival order. */
	private readonly waiting: { start(): Promise<void>; refuse(): void }[] = [];

	constructor(
		readonly address: string,
		limits: SessionLimits,
	) {
		const rates = {
			...FRAME_RATES,
			invalid: INVALID_RATE,
			send: { rate: limits.sendRate, burst: limits.sendBurst },
			typing: { rate: limits.typingRate, burst: 1 },
			...Object.fromEntries(limits.frameRates.map((r) => [r.type, r])),
		};
		this.frames = Object.fromEntries(
			Object.entries(rates).map(([type, r]) => [type, new TokenBucket(r.rate, r.burst)]),
		) as Record<ClientFrameType | "invalid", TokenBucket>;
		this.invalid = this.frames.invalid;
		this.replies = new TokenBucket(limits.replyRate, limits.replyBurst);
		this.floodClose = limits.floodClose;
		this.strikeBucket = new TokenBucket(limits.floodForgive, limits.floodClose);
	}

	/** Charges one frame of `type`; past its rate (or, for a costly one, past the byte budget) it is refused. */
	admit(type: ClientFrameType, now = performance.now()): Verdict {
		const allowed = (!COSTLY.has(type) || this.affordable(now)) && this.frames[type].take(now);
		return allowed ? "ok" : this.strike(now);
	}

	/** Charges one frame that failed validation: past INVALID_RATE each is a strike. */
	admitInvalid(now = performance.now()): Verdict {
		return this.invalid.take(now) ? "ok" : this.strike(now);
	}

	/** One more refusal: "close" once the unforgiven strikes reach --flood-close. */
	strike(now = performance.now()): Verdict {
		return this.strikeBucket.take(now) ? "limited" : "close";
	}

	/** Reply bytes are left in the budget. */
	affordable(now = performance.now()): boolean {
		return this.replies.level(now) > 0;
	}

	/**
	 * Runs a costly request in its turn: at most MAX_IN_FLIGHT at once, the
	 * rest in arrival order. `start` runs only while reply bytes are left when
	 * its turn comes; otherwise (or when MAX_WAITING already wait) `refuse` does.
	 */
	queue(start: () => Promise<void>, refuse: () => void): void {
		if (this.waiting.length >= MAX_WAITING) return refuse();
		this.waiting.push({ start, refuse });
		this.pump();
	}

	private pump(): void {
		while (this.inFlight < MAX_IN_FLIGHT && this.waiting.length > 0) {
			const next = this.waiting.shift() as { start(): Promise<void>; refuse(): void };
			if (this.closed) continue;
			if (!this.affordable()) {
				next.refuse();
				continue;
			}
			this.inFlight++;
			next.start().finally(() => {
				this.inFlight--;
				// The next one in a later turn of the event loop, so other connections' frames come in between.
				setImmediate(() => this.pump());
			});
		}
	}

	/** Strikes not yet forgiven. */
	get strikes(): number {
		return Math.round(this.floodClose - this.strikeBucket.level());
	}

	/** Draws `bytes` of an answer sent to this connection alone from its budget. */
	replied(bytes: number): void {
		this.replies.spend(bytes);
	}
}

/** What a session needs from the hub (hub.ts implements it). */
export interface SessionHub {
	readonly metrics: Metrics;
	readonly store: Pick<Store, "epoch" | "search" | "before" | "after">;
	connect(ws: Socket): void;
	disconnect(ws: Socket): void;
	sendTo(ws: Socket, frame: ServerFrame): void;
	identify(ws: Socket, name: string): Promise<boolean>;
	join(
		ws: Socket,
		room: string,
		since: number | undefined,
		extra?: Pick<ServerFrameOf<"joined">, "info" | "people">,
		/** Protocol 1.2: the highest change the client holds (join.changes). */
		changes?: number,
	): Promise<void>;
	/** Protocol 1.2 (--auth accounts): edit, delete or react; throws ChangeRefused (lib/message-changes.ts). */
	change(ws: Socket, frame: Extract<ClientFrame, { type: "edit" | "delete" | "react" }>): Promise<void>;
	leave(ws: Socket, room: string): void;
	send(ws: Socket, room: string, id: string | undefined, text: string, files?: string[]): Promise<Message>;
	typing(ws: Socket, room: string): void;
	history(room: string, before: number | undefined, limit: number, ws?: Socket): Promise<Page>;
}

/** Protocol 1.2 frames about rooms (edit, delete and react are the message store's). */
export type RoomFrame = Exclude<AccountsFrame, { type: "edit" | "delete" | "react" }>;

/** Rooms with access control under --auth accounts (lib/room-frames.ts); absent under --auth none. */
export interface SessionRooms {
	/** Answers a room frame; a refusal is thrown as RoomRefusal. */
	handle(ws: Socket, frame: RoomFrame): Promise<void>;
	/** Runs `run` (the hub's join) if the account may read the room, with the fields `joined` gains; else throws RoomRefusal. */
	join(
		ws: Socket,
		room: string,
		run: (extra: Pick<ServerFrameOf<"joined">, "info" | "people">) => Promise<void>,
	): Promise<void>;
	/** Ends the account's membership: every device of it gets `left` (if joined) and `room_gone`. */
	leave(ws: Socket, room: string): Promise<void>;
	/** True when the room is archived: no send, typing, edit or reaction. */
	readOnly(room: string): boolean;
	/** Who is searching, with the rooms the account may read (lib/access.ts). */
	reader(ws: Socket): Reader;
	/** A message was stored (its mentions are recorded). */
	sent(message: Message): Promise<void>;
	/** Sends `welcome` with the account's rooms again (a `hello` naming the connection's account). */
	welcome(ws: Socket): Promise<void>;
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
	rooms?: SessionRooms,
): WebSocketHandler<Session> {
	const { metrics } = hub;
	const addressQuota = new AddressQuota(limits.addressQuotaPerDay);

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
		refused(ws, frame, verdict, ref);
		return false;
	}

	/** A frame refused by the cost model: `rate_limited` (naming its room), or the 1008 close of a flood. */
	function refused(ws: Socket, frame: ClientFrame, verdict: Verdict, ref?: string): void {
		metrics.rateLimited.inc();
		log.debug("rate_limited", {
			conn: ws.data.id,
			address: ws.data.address,
			frame: frame.type,
			strikes: ws.data.strikes,
			verdict,
		});
		if (verdict === "close") floodClose(ws, frame.type);
		else {
			sendError(ws, "rate_limited", `too many ${frame.type} frames; slow down`, ref, roomOf(frame));
		}
	}

	/** Ends a flooding connection (1008); server.ts refuses its address for --flood-ban. */
	function floodClose(ws: Socket, frame: string): void {
		log.info("flood_closed", { conn: ws.data.id, address: ws.data.address, frame });
		floodClosed(ws.data.address);
		ws.close(CLOSE.policyViolation, "rate limit exceeded");
	}

	/**
	 * A frame that failed validation: `bad_frame` within INVALID_RATE; past it
	 * no answer at all (a flood of them must not buy replies), a strike each,
	 * and the 1008 close of a flood once the strikes reach --flood-close.
	 */
	function invalid(ws: Socket, code: ErrorCode, message: string, ref?: string): void {
		const verdict = ws.data.admitInvalid();
		if (verdict === "ok") return sendError(ws, code, message, ref);
		metrics.rateLimited.inc();
		if (verdict === "close") floodClose(ws, "invalid");
	}

	/** Awaits a hub call; a failure becomes `server_error` for this socket alone. Never rejects. */
	function run(ws: Socket, work: Promise<unknown>, ref: string | undefined, room?: string): Promise<void> {
		return work.then(undefined, (e: unknown) => {
			if (e instanceof QuotaExceeded) return sendError(ws, "quota_exceeded", e.message, ref, room);
			if (e instanceof ChangeRefused) return sendError(ws, e.code, e.message, ref, room);
			if (e instanceof UnknownFile) return sendError(ws, "unknown_file", e.message, ref, room);
			if (e instanceof RoomRefusal) return sendError(ws, e.code, e.message, ref, room);
			if (e instanceof BadCursor) return sendError(ws, "bad_frame", e.message, ref);
			if (e instanceof StoreError) metrics.storeErrors.inc();
			log.error("request_failed", { conn: ws.data.id, error: (e as Error).message });
			sendError(ws, "server_error", "the server could not do that; try again", ref, room);
		});
	}

	function hello(ws: Socket, raw: string): void {
		const session = ws.data;
		if (session.name !== undefined && helloMatchesAccount(session, raw)) {
			// --auth accounts: `welcome` was sent at open; a hello naming the same account gets it again.
			if (rooms) return void run(ws, rooms.welcome(ws), undefined);
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

	/** Searches the rooms this connection may read (lib/access.ts); no join needed. */
	function search(ws: Socket, frame: Extract<ClientFrame, { type: "search" }>): Promise<void> {
		const session = ws.data;
		const reader = rooms ? rooms.reader(ws) : { name: session.name as string, account: accountOf(session) };
		const { type: _, ref, query: text, ...filters } = frame;
		const reply = hub.store
			.search({ text, ...filters }, readableRooms(reader))
			.then((page) =>
				hub.sendTo(ws, ref === undefined ? { type: "search", ...page } : { type: "search", ref, ...page }),
			);
		return run(ws, reply, ref);
	}

	/** `history` with `around` or `after` (lib/search-context.ts), cut like every reply to half of --max-buffer. */
	function context(ws: Socket, frame: Extract<ClientFrame, { type: "history" }>): Promise<void> {
		const maxBytes = limits.maxBuffer / 2 - ws.getBufferedAmount();
		const read =
			frame.around !== undefined
				? around(hub.store, frame.room, frame.around, frame.limit, maxBytes)
				: forward(hub.store, frame.room, frame.after as number, frame.limit, maxBytes);
		const reply = read.then((page) => hub.sendTo(ws, { type: "history", room: frame.room, ...page }));
		return run(ws, reply, undefined, frame.room);
	}

	function handle(ws: Socket, frame: ClientFrame): void {
		const session = ws.data;
		const ref = frame.type === "send" ? frame.id : "ref" in frame ? frame.ref : undefined;
		if (!admitted(ws, frame, ref)) return;
		if (frame.type === "hello") return hello(ws, frame.name);
		if (session.name === undefined) return sendError(ws, "not_identified", "send hello first", ref);
		if (frame.type === "ping") return hub.sendTo(ws, { type: "pong" });
		const refuse = () => refused(ws, frame, session.strike());
		if (frame.type === "join") {
			// Checked in its turn, when the joins queued before it have counted.
			const join = async () => {
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
				const joining = rooms
					? rooms.join(ws, frame.room, (extra) => hub.join(ws, frame.room, frame.since, extra, frame.changes))
					: hub.join(ws, frame.room, frame.since, undefined, frame.changes);
				return run(ws, joining, undefined, frame.room);
			};
			return session.queue(join, refuse);
		}
		if (frame.type === "search")
			return session.queue(
				() => search(ws, frame),
				() => refused(ws, frame, session.strike(), ref),
			);
		if ((frame.type === "edit" || frame.type === "delete" || frame.type === "react") && accountOf(session)) {
			if (!session.rooms.has(frame.room))
				return sendError(ws, "not_joined", `join ${frame.room} first`, ref, frame.room);
			if (rooms?.readOnly(frame.room))
				return sendError(
					ws,
					"read_only",
					`#${frame.room} is archived: it can be read, not changed`,
					ref,
					frame.room,
				);
			void run(ws, hub.change(ws, frame), ref, frame.room);
			return;
		}
		if (isAccountsFrame(frame)) {
			// Protocol 1.2 (docs/PROTOCOL.md "Rooms, direct messages and read positions"); --auth accounts only.
			if (rooms && frame.type !== "edit" && frame.type !== "delete" && frame.type !== "react")
				return void run(ws, rooms.handle(ws, frame), ref, roomOf(frame));
			return sendError(ws, "not_available", `'${frame.type}' needs --auth accounts`, ref);
		}
		// --auth accounts: leaving ends the membership, on every device (each gets `left` and `room_gone`).
		if (frame.type === "leave" && rooms)
			return void run(ws, rooms.leave(ws, frame.room), undefined, frame.room);
		if (!session.rooms.has(frame.room))
			return sendError(ws, "not_joined", `join ${frame.room} first`, ref, frame.room);
		if ((frame.type === "send" || frame.type === "typing") && rooms?.readOnly(frame.room))
			return sendError(
				ws,
				"read_only",
				`#${frame.room} is archived: it can be read, not written`,
				ref,
				frame.room,
			);
		switch (frame.type) {
			case "leave":
				hub.leave(ws, frame.room);
				return hub.sendTo(ws, { type: "left", room: frame.room });
			case "send": {
				const refusal = refuseSends();
				if (refusal) return sendError(ws, "server_error", refusal, frame.id, frame.room);
				// Files are uploads of an account: without accounts (--auth none) there are none to name.
				if (frame.files && !accountOf(session))
					return sendError(
						ws,
						"unknown_file",
						"this server takes no files: it runs without accounts (--auth none)",
						frame.id,
						frame.room,
					);
				const group = addressGroup(session.address);
				const bytes = Buffer.byteLength(frame.text);
				if (!addressQuota.charge(group, bytes))
					return sendError(
						ws,
						"quota_exceeded",
						"this address has sent its daily quota of message text; try again tomorrow (UTC)",
						frame.id,
						frame.room,
					);
				const sent = hub.send(ws, frame.room, frame.id, frame.text, frame.files).then(
					// Mentions are counted after the message is safe; failing to count one does not fail the send.
					(message) =>
						rooms?.sent(message).catch((e: Error) => log.warn("mentions_failed", { error: e.message })),
					(e: unknown) => {
						addressQuota.refund(group, bytes);
						throw e;
					},
				);
				void run(ws, sent, frame.id, frame.room);
				return;
			}
			case "typing":
				return hub.typing(ws, frame.room);
			case "history": {
				if (frame.around !== undefined || frame.after !== undefined)
					return session.queue(() => context(ws, frame), refuse);
				const history = () =>
					run(
						ws,
						hub.history(frame.room, frame.before, frame.limit, ws).then((page) => {
							hub.sendTo(ws, { type: "history", room: frame.room, ...page });
						}),
						undefined,
						frame.room,
					);
				return session.queue(history, refuse);
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
				invalid(ws, "bad_frame", "binary frames are not accepted; send JSON text");
				return;
			}
			const parsed = parseClientFrame(raw);
			if (!parsed.ok) {
				metrics.framesIn.inc(1, "invalid");
				invalid(ws, parsed.code, parsed.message, parsed.ref);
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
