// Rooms, membership and fan-out: which names are online, who is in which room, and getting each frame to them through Bun's topics.
import type { ServerWebSocket } from "bun";
import { UnknownFile } from "./lib/attachments-index.ts";
import { accountOf } from "./lib/auth-ws.ts";
import type { Bus, BusHandler } from "./lib/bus.ts";
import { ChangeFeed, type Update } from "./lib/change-feed.ts";
import { Connections } from "./lib/connections.ts";
import type { Logger } from "./lib/log.ts";
import { ChangeRefused, type RoomFacts, refusal } from "./lib/message-changes.ts";
import type { Metrics } from "./lib/metrics.ts";
import { nameKey } from "./lib/names.ts";
import { localPresence, type Presence } from "./lib/presence.ts";
import { FEED_DEFAULTS, RoomFeed } from "./lib/room-feed.ts";
import type { Session } from "./lib/session.ts";
import type { Appended, Page, Store } from "./lib/store.ts";
import {
	CLOSE,
	type ClientFrame,
	type FileRef,
	LIMITS,
	type Message,
	type ServerFrame,
	type ServerFrameOf,
} from "./protocol.ts";

/** What hubbub keeps on each socket (`ws.data`): the connection's session, owned by lib/session.ts. */
export type Conn = Session;
export type Socket = ServerWebSocket<Conn>;

interface RoomState {
	/** Lower-case name → display name of this process's members. */
	members: Map<string, string>;
	/** Name key → this process's sockets of that name in the room (one person, several tabs under --auth accounts). */
	sockets: Map<string, number>;
	/** Joins waiting for the store; the room is kept while any are. */
	pending: number;
	/** Hands the room's committed messages to its topic, once and in order. */
	feed: RoomFeed;
	/** The same for its edits, deletions and reactions (--auth accounts). */
	changes: ChangeFeed;
	/** Change number → the socket here that asked for it, its `ref` and the update, until that goes out. */
	refs: Map<number, { ws: Socket; ref: string; update: Update }>;
}

/** An edit, delete or react frame (protocol 1.2). */
export type MessageChange = Extract<ClientFrame, { type: "edit" | "delete" | "react" }>;

/** Where frames to a room's sockets go: Bun's server topics (a test may count them instead). */
export interface Topics {
	publish(topic: string, data: string): number;
	subscriberCount(topic: string): number;
}

export interface HubOptions {
	store: Store;
	metrics: Metrics;
	log: Logger;
	/** Carries committed messages to every process serving the room (this one included) and events to the others. */
	bus: Bus;
	/** Who else is online in the cluster. */
	presence?: Presence;
	topics: Topics;
	/** Most bytes one `joined` or `history` reply may take (at least one message is always sent). */
	maxReplyBytes?: number;
	/** A leave is announced this long after it happens; a join of the same name meanwhile cancels it. */
	presenceGraceMs?: number;
	/** Overrides of the room feeds' read and retry policy (tests). */
	feed?: Partial<typeof FEED_DEFAULTS>;
	/** Files in messages (lib/attachments-index.ts MessageFiles); without it a send may carry none. */
	files?: HubFiles;
	/** What the edit/delete rules need to know of a room (its kind, creator, whether archived; lib/message-changes.ts). */
	roomFacts?: (room: string) => Promise<RoomFacts | undefined>;
	/** An edit or deletion committed (before its update goes out): lib/rooms.ts recounts the message's mentions. */
	messageChanged?: (message: Message) => Promise<void>;
}

/** What the hub asks of lib/attachments-index.ts. */
export interface HubFiles {
	/** The files an account may send, in order; throws UnknownFile. */
	resolve(account: string | undefined, ids: string[]): Promise<FileRef[]>;
	/** Call after a message's deletion commits: its files go, and those no message holds are deleted. */
	releaseMessage(room: string, seq: number): Promise<void>;
}

export const topicOf = (room: string) => `room:${room}`;

/** What `joined` carries under --auth accounts (protocol 1.2, lib/rooms.ts): the room as this account sees it, and all its members. */
export type JoinedExtra = Pick<ServerFrameOf<"joined">, "info" | "people">;

export function encode(frame: ServerFrame): string {
	return JSON.stringify(frame);
}

/** About a message's size on the wire, without encoding it (UTF-16 units; emoji and escapes make it more). */
function estimatedBytes(m: Message): number {
	return m.text.length + m.from.length + (m.id?.length ?? 0) + 80;
}

/** Rows a history reply reads at a time (see Hub.history). */
const HISTORY_CHUNK = 50;

/**
 * A join's page and the messages the room's stream emitted while it was read:
 * together, everything up to the stream's head, cut to the newest a `joined`
 * holds (50 for the latest, 1000 for a resume) with `more` when some were left out.
 */
function withCaught(page: Page, caught: Message[], latest: boolean): Page {
	if (caught.length === 0) return page;
	const limit = latest ? LIMITS.latest : LIMITS.resume;
	const messages = [...page.messages, ...caught];
	return messages.length > limit
		? { messages: messages.slice(-limit), more: true }
		: { messages, more: page.more };
}

/** One local hub per process: it tracks only its own sockets; the bus and store make it part of a cluster. */
export class Hub implements BusHandler {
	readonly store: Store;
	readonly metrics: Metrics;
	private readonly log: Logger;
	private readonly bus: Bus;
	private readonly presence: Presence;
	private readonly topics: Topics;
	private readonly maxReplyBytes: number;
	private readonly presenceGraceMs: number;
	private readonly feedOptions: typeof FEED_DEFAULTS;
	private readonly files?: HubFiles;
	private readonly roomFacts?: (room: string) => Promise<RoomFacts | undefined>;
	private readonly messageChanged?: (message: Message) => Promise<void>;
	private readonly sockets = new Connections<Conn>();
	private readonly names = new Map<string, Socket>();
	private readonly rooms = new Map<string, RoomState>();
	/** "room\nlower-case name" → the announcement of a leave, held back for presenceGraceMs. */
	private readonly leaving = new Map<
		string,
		{ timer: ReturnType<typeof setTimeout>; room: string; name: string; gone: Promise<boolean> }
	>();

	constructor(options: HubOptions) {
		this.store = options.store;
		this.metrics = options.metrics;
		this.log = options.log;
		this.bus = options.bus;
		this.presence = options.presence ?? localPresence;
		this.topics = options.topics;
		this.maxReplyBytes = options.maxReplyBytes ?? Number.POSITIVE_INFINITY;
		this.presenceGraceMs = options.presenceGraceMs ?? 1000;
		this.feedOptions = { ...FEED_DEFAULTS, ...options.feed };
		this.files = options.files;
		this.roomFacts = options.roomFacts;
		this.messageChanged = options.messageChanged;
	}

	/** Reads what the store has beyond what was delivered, for `room` or every room served here (the bus was away). */
	catchUp(only?: string): void {
		for (const [room, state] of this.rooms) {
			if (only !== undefined && room !== only) continue;
			state.feed.catchUp();
			state.changes.catchUp();
		}
	}

	/** A committed message from the bus; its room's feed hands it on once and in seq order. */
	deliver(message: Message): void {
		this.rooms.get(message.room)?.feed.deliver(message);
	}

	/** A presence or typing frame from another process, for this process's sockets in the room. */
	deliverEvent(room: string, frame: ServerFrame): void {
		// A room_gone on the bus is a nudge from lib/rooms.ts (its event log has news), never for sockets as is.
		if (frame.type === "room_gone") return this.roomsChanged?.();
		// A change another process committed: in change order through the room's change feed.
		if (frame.type === "update") this.rooms.get(room)?.changes.deliver({ ...frame, ref: undefined });
		else if (this.rooms.has(room)) this.publish(room, frame);
	}

	/** --auth accounts: another process changed a room's memberships or settings (lib/rooms.ts heard). */
	roomsChanged?: () => void;

	/** Tells the other processes serving `room` that lib/rooms.ts's event log has news about it. */
	nudgeRooms(room: string): void {
		this.bus.publishEvent(room, { type: "room_gone", room });
	}

	/** Sends a transient frame to the room here (except `except`) and on every other process. */
	private announce(room: string, frame: ServerFrame, except?: Socket): void {
		this.publish(room, frame, except);
		this.bus.publishEvent(room, frame);
	}

	get connectionCount(): number {
		return this.sockets.size;
	}

	get roomCount(): number {
		return this.rooms.size;
	}

	/** Open connections from one client address (an IPv6 /64 counts as one: see addressGroup). */
	connectionsFrom(address: string): number {
		return this.sockets.from(address);
	}

	connect(ws: Socket): void {
		this.sockets.add(ws);
	}

	/** Closes every open socket, e.g. with 1001 on shutdown; announces held-back leaves at once. */
	async closeAll(code: number, reason: string): Promise<void> {
		for (const ws of this.sockets) ws.close(code, reason);
		await Promise.all([...this.leaving.keys()].map((id) => this.announceLeave(id)));
	}

	/** Pings quiet sockets and drops silent ones (see Connections.sweep). */
	sweep(idleMs: number, now = performance.now()): void {
		this.sockets.sweep(idleMs, now);
	}

	/** Sends one frame to one socket; a client too slow to take it is disconnected by Bun and counted. */
	sendTo(ws: Socket, frame: ServerFrame): void {
		if (ws.data.closed) return;
		const data = encode(frame);
		const sent = ws.send(data);
		const bytes = Buffer.byteLength(data);
		// An answer to this connection alone is its own cost (lib/session.ts): it draws on its reply budget.
		ws.data.replied(bytes);
		this.countOut(frame.type, bytes, 1, sent);
	}

	/** Sends one frame to a room's sockets on this process, except `except`. */
	private publish(room: string, frame: ServerFrame, except?: Socket): void {
		const topic = topicOf(room);
		const data = encode(frame);
		// `except` may be mid-resume and so not subscribed: then everyone subscribed receives it.
		const skipped = except?.isSubscribed(topic) ? 1 : 0;
		const receivers = this.topics.subscriberCount(topic) - skipped;
		if (receivers <= 0) return;
		const sent = except ? except.publish(topic, data) : this.topics.publish(topic, data);
		this.countOut(frame.type, Buffer.byteLength(data), receivers, sent);
	}

	private countOut(type: string, bytes: number, receivers: number, sent: number): void {
		this.metrics.framesOut.inc(receivers, type);
		this.metrics.bytesOut.inc(bytes * receivers);
		if (sent === 0) this.metrics.backpressureDropped.inc();
	}

	/** Claims a name for this socket; false when another open connection, here or on another process, holds it. */
	async identify(ws: Socket, name: string): Promise<boolean> {
		const key = nameKey(name);
		if (this.names.has(key)) return false;
		// Held here while the cluster is asked, so a second local hello cannot take it meanwhile.
		this.names.set(key, ws);
		const claimed = await this.presence.claim(name);
		if (!claimed || ws.data.closed) {
			if (this.names.get(key) === ws) this.names.delete(key);
			if (claimed) this.presence.release(name);
			return false;
		}
		ws.data.name = name;
		return true;
	}

	/**
	 * Answers a join with one `joined` frame. Every message this socket gets
	 * from the room afterwards has a higher seq than those in it, and none is
	 * skipped: the socket subscribes in the same turn as `joined` is sent, and
	 * `joined` holds exactly the messages up to the room's topic head.
	 */
	async join(
		ws: Socket,
		room: string,
		since: number | undefined,
		extra?: JoinedExtra,
		changes?: number,
	): Promise<void> {
		const conn = ws.data;
		// Joins of one room by one socket run one after another, so two `joined` never overlap.
		const previous = conn.joins.get(room);
		const run = (previous ?? Promise.resolve()).then(() => this.joinNow(ws, room, since, extra, changes));
		const settled = run.catch(() => {});
		conn.joins.set(room, settled);
		void settled.then(() => {
			if (conn.joins.get(room) === settled) conn.joins.delete(room);
		});
		return run;
	}

	private async joinNow(
		ws: Socket,
		room: string,
		since: number | undefined,
		extra: JoinedExtra | undefined,
		changes: number | undefined,
	): Promise<void> {
		const conn = ws.data;
		if (conn.closed) return;
		const name = conn.name as string;
		const key = nameKey(name);
		const rejoin = conn.rooms.has(room);
		// A repeated join is a resume: no live frames until the new `joined` is out.
		if (rejoin) ws.unsubscribe(topicOf(room));
		const state = this.room(room);
		state.pending++;
		let counted = true;
		const settle = () => {
			if (counted) state.pending--;
			counted = false;
		};
		/** A first join that ends without `joined` leaves no member behind, here or in the cluster. */
		const abandon = () => {
			if (!state.members.has(key)) void this.presence.exit(room, name).catch(() => {});
			this.dropIfEmpty(room, state);
		};
		try {
			// False when the name is already in the room on another process (the same person elsewhere).
			const news = await this.presence.enter(room, name);
			const elsewhere = await this.presence.members(room);
			// --auth accounts: the change counter before the read, so the read shows every change up to it.
			const changeFrom = accountOf(conn) ? await state.changes.start() : undefined;
			await state.feed.align(
				() => this.readForJoin(room, since, changes, changeFrom),
				({ page, reset, updates }, caught) => {
					settle();
					if (conn.closed) {
						// Its close already removed it from rooms it had joined before; a first join is undone here.
						if (!rejoin) abandon();
						return;
					}
					const fitted = this.fit(withCaught(page, caught, since === undefined || reset), ws);
					const isNew = !state.members.has(key);
					state.members.set(key, name);
					if (!conn.rooms.has(room)) state.sockets.set(key, (state.sockets.get(key) ?? 0) + 1);
					conn.rooms.add(room);
					// Back within the grace period after leaving: the others never saw it go.
					const returning = this.cancelLeave(room, key);
					ws.cork(() => {
						ws.subscribe(topicOf(room));
						const here = [...state.members.values()];
						const known = new Set(here.map((n) => nameKey(n)));
						this.sendTo(ws, {
							type: "joined",
							room,
							members: [...here, ...elsewhere.filter((n) => !known.has(nameKey(n)))],
							messages: fitted.messages,
							more: fitted.more,
							...(reset ? { reset: true } : {}),
							...extra,
							...(changeFrom === undefined ? {} : { change: changeFrom }),
							...(updates && !reset ? { updates } : {}),
						});
						if (changeFrom !== undefined) this.sendCaughtChanges(ws, state, changeFrom);
						if (isNew && !returning && news)
							this.announce(room, { type: "presence", room, name, online: true }, ws);
					});
				},
			);
		} catch (e) {
			settle();
			if (rejoin && !conn.closed) this.leave(ws, room);
			else if (!rejoin) abandon();
			throw e;
		}
	}

	/**
	 * Reads the messages for `joined` and the room's last seq as that read saw
	 * it. A `since` beyond the room's last seq is a position this history never
	 * had (an older database was put back): the client gets the latest
	 * messages with `reset`, never later messages under seqs it already holds.
	 */
	private async readForJoin(
		room: string,
		since: number | undefined,
		changes?: number,
		changeFrom?: number,
	): Promise<{ top: number; value: { page: Page; reset: boolean; updates?: Message[] } }> {
		if (since === undefined) {
			const page = await this.store.latest(room, LIMITS.latest);
			return { top: page.messages.at(-1)?.seq ?? 0, value: { page, reset: false } };
		}
		// A resume that says which changes it holds gets those made since to the messages it holds, unless
		// too many (or a counter this history never reached): then it starts afresh, as for an unknown since.
		let updates: Message[] | undefined;
		if (changes !== undefined && changeFrom !== undefined) {
			const changed =
				changes <= changeFrom ? await this.store.changes(room, changes, LIMITS.updatesMax, since) : undefined;
			if (!changed || changed.more || this.tooLarge(changed.messages)) {
				const latest = await this.store.latest(room, LIMITS.latest);
				return { top: latest.messages.at(-1)?.seq ?? 0, value: { page: latest, reset: true } };
			}
			updates = changed.messages;
		}
		for (;;) {
			const page = await this.store.since(room, since, LIMITS.resume);
			const last = page.messages.at(-1)?.seq;
			if (last !== undefined) return { top: last, value: { page, reset: false, updates } };
			const top = await this.lastSeq(room);
			if (top === since) return { top, value: { page, reset: false, updates } };
			if (top > since) continue; // stored while we looked
			const latest = await this.store.latest(room, LIMITS.latest);
			return { top: latest.messages.at(-1)?.seq ?? 0, value: { page: latest, reset: true } };
		}
	}

	private async lastSeq(room: string): Promise<number> {
		return (await this.store.latest(room, 1)).messages[0]?.seq ?? 0;
	}

	/**
	 * The newest messages of `page` that fit one reply a slow reader can take
	 * (what is already waiting on the socket counts); `more` when some were left
	 * out, which the client fetches with `history`. At least one message goes,
	 * so paging back always progresses.
	 */
	private fit(page: Page, ws?: Socket): Page {
		const budget = this.replyBudget(ws);
		let bytes = 0;
		let first = page.messages.length;
		while (first > 0) {
			const size = Buffer.byteLength(encode(page.messages[first - 1] as Message)) + 1;
			if (bytes + size > budget && first < page.messages.length) break;
			bytes += size;
			first--;
		}
		if (first === 0) return page;
		this.metrics.repliesSplit.inc();
		// What was read but left out still cost the read: the reply budget (lib/session.ts) is charged for
		// it, so asking again and again for a room of long messages stays as costly as before the cut.
		let unsent = 0;
		for (let i = 0; i < first; i++) unsent += estimatedBytes(page.messages[i] as Message);
		ws?.data.replied(unsent);
		return { messages: page.messages.slice(first), more: true };
	}

	leave(ws: Socket, room: string): void {
		ws.unsubscribe(topicOf(room));
		ws.data.rooms.delete(room);
		this.removeMember(ws, room);
	}

	/** Forgets a closed socket: its name, its rooms, and tells the rooms it is gone. */
	disconnect(ws: Socket): void {
		const conn = ws.data;
		conn.closed = true;
		this.sockets.delete(ws);
		for (const room of conn.rooms) this.removeMember(ws, room);
		conn.rooms.clear();
		if (conn.name && this.names.get(nameKey(conn.name)) === ws) {
			this.names.delete(nameKey(conn.name));
			this.presence.release(conn.name);
		}
	}

	private removeMember(ws: Socket, room: string): void {
		const state = this.rooms.get(room);
		const name = ws.data.name;
		if (!state || !name) return;
		const key = nameKey(name);
		const left = (state.sockets.get(key) ?? 1) - 1;
		// Another tab of the same person is still in the room: nobody left.
		if (left > 0) {
			state.sockets.set(key, left);
			return;
		}
		state.sockets.delete(key);
		state.members.delete(key);
		this.holdLeave(room, key, name, this.presence.exit(room, name));
		this.dropIfEmpty(room, state);
	}

	/** Announces a leave after the grace period, unless the same name joins again meanwhile (flapping shows once). */
	/** `gone` tells whether the name left the room on every process (the same person may still be on another). */
	private holdLeave(room: string, key: string, name: string, gone: Promise<boolean>): void {
		if (this.presenceGraceMs <= 0) {
			this.announceGone(room, key, name, gone).catch(() => {});
			return;
		}
		const id = `${room}\n${key}`;
		this.cancelLeave(room, key);
		const timer = setTimeout(() => {
			this.announceLeave(id).catch(() => {});
		}, this.presenceGraceMs);
		this.leaving.set(id, { timer, room, name, gone });
	}

	private async announceLeave(id: string): Promise<void> {
		const held = this.leaving.get(id);
		if (!held) return;
		clearTimeout(held.timer);
		this.leaving.delete(id);
		await this.announceGone(held.room, nameKey(held.name), held.name, held.gone);
	}

	private async announceGone(room: string, key: string, name: string, gone: Promise<boolean>): Promise<void> {
		if (!(await gone)) return;
		// Not if it came back on another process within the grace: its join there found it gone and said it is online.
		if ((await this.presence.members(room)).some((n) => nameKey(n) === key)) return;
		// Not if it is back in the room here meanwhile (its join said so, or will).
		if (!this.rooms.get(room)?.members.has(key))
			this.announce(room, { type: "presence", room, name, online: false });
	}

	/** True (and the held-back leave forgotten) when `key` left `room` within the grace period. */
	private cancelLeave(room: string, key: string): boolean {
		const id = `${room}\n${key}`;
		const held = this.leaving.get(id);
		if (!held) return false;
		clearTimeout(held.timer);
		this.leaving.delete(id);
		return true;
	}

	/** Stores a message, then hands it to the bus; resolves with the stored message. */
	async send(
		ws: Socket,
		room: string,
		id: string | undefined,
		text: string,
		fileIds?: string[],
	): Promise<Message> {
		const account = accountOf(ws.data)?.id;
		let files: FileRef[] | undefined;
		if (fileIds) {
			if (!this.files) throw new UnknownFile("this server takes no files");
			files = await this.files.resolve(account, fileIds);
		}
		const { message, created } = await this.store.append({
			room,
			from: ws.data.name as string,
			id,
			text,
			ts: Date.now(),
			...(files ? { files, account } : {}),
		});
		if (created) {
			this.metrics.messagesStored.inc();
			this.bus.publish(message);
			return message;
		}
		// A repeat: the stored copy is this sender's acknowledgement. Sent now only if the room's stream here
		// is already past it; otherwise (another process committed it and the bus has not brought it yet) it
		// arrives in order through the stream, since the socket is in the room: sent now, it would overtake
		// the messages before it.
		const head = this.rooms.get(room)?.feed.head;
		if (head === undefined || message.seq <= head) this.sendTo(ws, message);
		return message;
	}

	/** Stores a message from a sender without a socket here (a bot over HTTP), then hands it to the bus. */
	async post(from: string, room: string, id: string | undefined, text: string): Promise<Appended> {
		const appended = await this.store.append({ room, from, id, text, ts: Date.now() });
		if (appended.created) {
			this.metrics.messagesStored.inc();
			this.bus.publish(appended.message);
		}
		return appended;
	}

	private emit(message: Message): void {
		const t0 = performance.now();
		this.publish(message.room, message);
		this.metrics.publishSeconds.observe((performance.now() - t0) / 1000);
	}

	/** An update in change order (the room's change feed): to the room's sockets here, with `ref` to the one that asked. */
	private emitUpdate(refs: RoomState["refs"], update: Update): void {
		const asked = refs.get(update.change);
		refs.delete(update.change);
		const to = asked?.ws.isSubscribed(topicOf(update.room)) ? asked : undefined;
		this.publish(update.room, update, to?.ws);
		if (to) this.sendTo(to.ws, { ...update, ref: to.ref });
		if (refs.size === 0) return;
		// A change a gap fill passed over (its message changed again since, under a later number) is answered
		// with its message's newer state when that goes out: never with a text older than the asker holds.
		for (const [change, skipped] of refs) {
			if (change > update.change || skipped.update.message.seq !== update.message.seq) continue;
			refs.delete(change);
			this.sendTo(skipped.ws, { ...update, ref: skipped.ref });
		}
	}

	/**
	 * After `joined` (which shows every change up to `from`), in the same turn:
	 * the updates the room's change feed emitted since, so the socket's stream
	 * of changes goes on from `from` with no hole. The feed keeps the last few
	 * hundred; a join overtaken by more is closed to resume (a rare path).
	 */
	private sendCaughtChanges(ws: Socket, state: RoomState, from: number): void {
		const caught = state.changes.emittedAfter(from);
		if (!caught) {
			ws.close(CLOSE.resume, "missed changes; reconnect and resume with since");
			return;
		}
		for (const update of caught) this.sendTo(ws, update);
	}

	/** More than a reply to a join should carry (the page resets the room instead). */
	private tooLarge(messages: Message[]): boolean {
		let bytes = 0;
		for (const m of messages) bytes += estimatedBytes(m);
		return bytes > this.maxReplyBytes / 2;
	}

	/**
	 * Edits, deletes or reacts to a stored message (--auth accounts; the rules
	 * are lib/message-changes.ts), then hands the update to this process's
	 * change feed and the bus. Throws ChangeRefused with the error to answer.
	 */
	async change(ws: Socket, frame: MessageChange): Promise<void> {
		const account = accountOf(ws.data);
		if (!account) throw new ChangeRefused("not_available", `'${frame.type}' needs --auth accounts`);
		const { room, seq } = frame;
		const [message] = seq > 0 ? (await this.store.after(room, seq - 1, 1)).messages : [];
		if (!message || message.seq !== seq)
			throw new ChangeRefused("not_found", `no message ${seq} in #${room}`);
		const refused = refusal(frame.type, account, message, await this.roomFacts?.(room));
		if (refused) throw refused;
		const outcome =
			frame.type === "edit"
				? await this.store.edit(room, seq, frame.text, Date.now())
				: frame.type === "delete"
					? await this.store.remove(room, seq)
					: await this.store.react(room, seq, frame.emoji, account.name, frame.on);
		if (!outcome.ok) {
			if (outcome.reason === "not_found")
				throw new ChangeRefused("not_found", `no message ${seq} in #${room}`);
			if (outcome.reason === "deleted")
				throw new ChangeRefused(
					"forbidden",
					frame.type === "delete" ? `message ${seq} was already deleted` : `message ${seq} was deleted`,
				);
			if (outcome.reason === "too_many_own_reactions")
				throw new ChangeRefused(
					"forbidden",
					`one person can put at most ${LIMITS.reactionsPerPerson} different reactions on a message`,
				);
			throw new ChangeRefused(
				"forbidden",
				`a message can carry at most ${LIMITS.reactionsPerMessage} different reactions`,
			);
		}
		if (frame.type === "delete" && this.files) {
			// Before the update goes out, so whoever sees the deletion finds its files gone too. The deletion
			// is committed: a failure here must not hold back its update (the files stay until deleted again).
			try {
				await this.files.releaseMessage(room, seq);
			} catch (e) {
				this.log.error("release_files_failed", { room, seq, error: (e as Error).message });
			}
		}
		if (frame.type !== "react" && this.messageChanged) {
			// Committed: a failure is logged, the update still goes (the counts are off until read past).
			try {
				await this.messageChanged(outcome.message);
			} catch (e) {
				this.log.error("message_mentions_failed", { room, seq, error: (e as Error).message });
			}
		}
		const update: Update = { type: "update", room, change: outcome.message.change, message: outcome.message };
		const state = this.rooms.get(room);
		if (state && frame.ref !== undefined) {
			// Its update may already have gone out here (a gap fill read it first): then the answer goes alone.
			if ((state.changes.head ?? 0) >= update.change) {
				// As it went out, or newer if the message changed again since.
				const newest = state.changes.emittedAfter(update.change - 1)?.findLast((u) => u.message.seq === seq);
				this.sendTo(ws, { ...(newest ?? update), ref: frame.ref });
			} else state.refs.set(update.change, { ws, ref: frame.ref, update });
		}
		this.bus.publishEvent(room, update);
		state?.changes.deliver(update);
	}

	/**
	 * A room's feed could not catch up: its sockets have a gap they cannot see.
	 * They stop receiving the room at once and are closed with CLOSE.resume, so
	 * each reconnects and resumes with `since` from the last message it holds.
	 */
	private lost(room: string, reason: string): void {
		this.metrics.feedsLost.inc();
		this.log.error("room_feed_lost", { room, reason });
		// Every socket, not only one per name: a person may be in the room from several tabs. A rare path.
		for (const ws of this.sockets) {
			if (!ws.data.rooms.has(room)) continue;
			ws.unsubscribe(topicOf(room));
			ws.close(CLOSE.resume, "missed messages; reconnect and resume with since");
		}
	}

	typing(ws: Socket, room: string): void {
		this.announce(room, { type: "typing", room, name: ws.data.name as string }, ws);
	}

	/**
	 * A page of older messages, cut to what one reply to `ws` may hold (see
	 * fit). Read in chunks from the newest, so a room of long messages costs a
	 * read of about what is sent, not of `limit` rows.
	 */
	async history(room: string, before: number | undefined, limit: number, ws?: Socket): Promise<Page> {
		const read = (upTo: number | undefined, n: number) =>
			upTo === undefined ? this.store.latest(room, n) : this.store.before(room, upTo, n);
		let page = await read(before, Math.min(limit, HISTORY_CHUNK));
		while (page.messages.length < limit && page.more && !this.overBudget(page, ws)) {
			const older = await read(page.messages[0]?.seq, Math.min(limit - page.messages.length, HISTORY_CHUNK));
			page = { messages: [...older.messages, ...page.messages], more: older.more };
		}
		return this.fit(page, ws);
	}

	/** True when `page` alone already fills one reply to `ws`. */
	private overBudget(page: Page, ws?: Socket): boolean {
		const budget = this.replyBudget(ws);
		if (!Number.isFinite(budget)) return false;
		let bytes = 0;
		for (const m of page.messages) {
			bytes += estimatedBytes(m);
			if (bytes > budget) return true;
		}
		return false;
	}

	private replyBudget(ws?: Socket): number {
		return this.maxReplyBytes - (ws?.getBufferedAmount() ?? 0);
	}

	private room(name: string): RoomState {
		let state = this.rooms.get(name);
		if (!state) {
			const options = {
				...this.feedOptions,
				onRead: () => this.metrics.gapFills.inc(),
				onError: (room: string, error: Error, attempt: number) => {
					this.metrics.feedReadFailures.inc();
					this.log.warn("room_feed_read_failed", { room, attempt, error: error.message });
				},
				onLost: (room: string, reason: string) => this.lost(room, reason),
			};
			const feed = new RoomFeed(name, this.store, (m) => this.emit(m), options);
			const refs: RoomState["refs"] = new Map();
			const changes = new ChangeFeed(name, this.store, (u) => this.emitUpdate(refs, u), options);
			state = { members: new Map(), sockets: new Map(), pending: 0, feed, changes, refs };
			this.rooms.set(name, state);
			this.bus.watch(name);
		}
		return state;
	}

	private dropIfEmpty(room: string, state: RoomState): void {
		if (state.members.size > 0 || state.pending > 0 || this.rooms.get(room) !== state) return;
		this.rooms.delete(room);
		state.feed.close();
		state.changes.close();
		this.bus.unwatch(room);
	}
}
