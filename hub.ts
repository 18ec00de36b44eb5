// Rooms, membership and fan-out: which names are online, who is in which room, and getting each frame to them through Bun's topics.
import type { Server, ServerWebSocket } from "bun";
import type { Bus } from "./lib/bus.ts";
import type { Metrics } from "./lib/metrics.ts";
import { nameKey } from "./lib/names.ts";
import { addressGroup } from "./lib/origin.ts";
import { localPresence, type Presence } from "./lib/presence.ts";
import type { Session } from "./lib/session.ts";
import type { Appended, Page, Store } from "./lib/store.ts";
import { LIMITS, type Message, type ServerFrame } from "./protocol.ts";

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
	/**
	 * Highest seq handed to this room's topic. Undefined until the first join's
	 * read tells where the room stands.
	 */
	head?: number;
	/** Messages that arrived ahead of a gap, by seq, until the gap is filled from the store. */
	ahead: Map<number, Message>;
	/** A read of the missing messages is under way. */
	filling: boolean;
}

export const topicOf = (room: string) => `room:${room}`;

export function encode(frame: ServerFrame): string {
	return JSON.stringify(frame);
}

/** One local hub per process: it tracks only its own sockets; the bus and store make it part of a cluster. */
export class Hub {
	private readonly sockets = new Set<Socket>();
	private readonly perAddress = new Map<string, number>();
	private readonly names = new Map<string, Socket>();
	private readonly rooms = new Map<string, RoomState>();
	private server?: Server<Conn>;
	private bus?: Bus;
	private presence: Presence = localPresence;

	constructor(
		readonly store: Store,
		readonly metrics: Metrics,
	) {}

	/** Wires the hub to the server whose topics it publishes to, the bus, and who else is online. */
	attach(server: Server<Conn>, bus: Bus, presence: Presence = localPresence): void {
		this.server = server;
		this.bus = bus;
		this.presence = presence;
	}

	/** Reads, for `room` or every room served here, what the store has beyond what was delivered (after a cluster outage). */
	catchUp(only?: string): void {
		for (const [room, state] of this.rooms) {
			if (only !== undefined && room !== only) continue;
			if (state.head !== undefined && !state.filling) void this.fillGap(room, state, true);
		}
	}

	/** A presence or typing frame from another process, for this process's sockets in the room. */
	deliverEvent(room: string, frame: ServerFrame): void {
		if (this.rooms.has(room)) this.publish(room, frame);
	}

	/** Sends a transient frame to the room here (except `except`) and on every other process. */
	private announce(room: string, frame: ServerFrame, except?: Socket): void {
		this.publish(room, frame, except);
		this.bus?.publishEvent(room, frame);
	}

	get connectionCount(): number {
		return this.sockets.size;
	}

	get roomCount(): number {
		return this.rooms.size;
	}

	/** Open connections from one client address (an IPv6 /64 counts as one: see addressGroup). */
	connectionsFrom(address: string): number {
		return this.perAddress.get(addressGroup(address)) ?? 0;
	}

	connect(ws: Socket): void {
		this.sockets.add(ws);
		this.perAddress.set(addressGroup(ws.data.address), this.connectionsFrom(ws.data.address) + 1);
	}

	/** Closes every open socket, e.g. with 1001 on shutdown. */
	closeAll(code: number, reason: string): void {
		for (const ws of this.sockets) ws.close(code, reason);
	}

	/**
	 * Pings sockets silent for half of `idleMs` and drops those silent for all
	 * of it. Bun's own idle timer restarts whenever the server sends, so in a
	 * busy room a vanished peer would never time out without this.
	 */
	sweep(idleMs: number, now = performance.now()): void {
		for (const ws of this.sockets) {
			const silent = now - ws.data.lastSeen;
			if (silent >= idleMs) ws.terminate();
			else if (silent >= idleMs / 2) ws.ping();
		}
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
		const receivers = (this.server?.subscriberCount(topic) ?? 0) - (except ? 1 : 0);
		if (receivers <= 0) return;
		const sent = except ? except.publish(topic, data) : (this.server as Server<Conn>).publish(topic, data);
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
	async join(ws: Socket, room: string, since: number | undefined): Promise<void> {
		const conn = ws.data;
		// Joins of one room by one socket run one after another, so two `joined` never overlap.
		const previous = conn.joins.get(room);
		const run = (previous ?? Promise.resolve()).then(() => this.joinNow(ws, room, since));
		const settled = run.catch(() => {});
		conn.joins.set(room, settled);
		void settled.then(() => {
			if (conn.joins.get(room) === settled) conn.joins.delete(room);
		});
		return run;
	}

	private async joinNow(ws: Socket, room: string, since: number | undefined): Promise<void> {
		const conn = ws.data;
		if (conn.closed) return;
		const name = conn.name as string;
		const rejoin = conn.rooms.has(room);
		// A repeated join is a resume: no live frames until the new `joined` is out.
		if (rejoin) ws.unsubscribe(topicOf(room));
		const state = this.room(room);
		state.pending++;
		let page: Page;
		let elsewhere: string[];
		try {
			await this.presence.enter(room, name);
			elsewhere = await this.presence.members(room);
			page = await this.readForJoin(state, room, since);
		} catch (e) {
			state.pending--;
			if (rejoin) {
				this.leave(ws, room);
			} else {
				this.presence.exit(room, name);
				this.dropIfEmpty(room, state);
			}
			throw e;
		}
		state.pending--;
		if (conn.closed) {
			this.dropIfEmpty(room, state);
			return;
		}
		const key = nameKey(name);
		const isNew = !state.members.has(key);
		state.members.set(key, name);
		if (!conn.rooms.has(room)) state.sockets.set(key, (state.sockets.get(key) ?? 0) + 1);
		conn.rooms.add(room);
		ws.cork(() => {
			ws.subscribe(topicOf(room));
			const here = [...state.members.values()];
			const known = new Set(here.map((n) => nameKey(n)));
			this.sendTo(ws, {
				type: "joined",
				room,
				members: [...here, ...elsewhere.filter((n) => !known.has(nameKey(n)))],
				messages: page.messages,
				more: page.more,
			});
			if (isNew) this.announce(room, { type: "presence", room, name, online: true }, ws);
		});
	}

	/**
	 * Reads the messages for `joined` and lines them up with the topic: a read
	 * that missed messages delivered meanwhile is repeated, and messages stored
	 * but not yet delivered on this process are delivered first, so the topic's
	 * head is the last message in `joined`.
	 */
	private async readForJoin(state: RoomState, room: string, since: number | undefined): Promise<Page> {
		for (;;) {
			const page =
				since === undefined
					? await this.store.latest(room, LIMITS.latest)
					: await this.store.since(room, since, LIMITS.resume);
			// The room's last stored seq as this read saw it.
			let top = page.messages.at(-1)?.seq;
			if (top === undefined) {
				top = since === undefined ? 0 : await this.lastSeq(room);
				if (since !== undefined && top > since) continue; // stored while we looked
			}
			if (state.head !== undefined && state.head > top) continue; // delivered while we read
			state.head ??= top;
			if (state.head < top) {
				// Stored, but not yet delivered on this process (they come from another one): deliver them
				// now, so this socket's live frames start after what `joined` holds, not before.
				this.applyStored(state, (await this.store.since(room, state.head, LIMITS.resume)).messages);
				continue;
			}
			return page;
		}
	}

	private async lastSeq(room: string): Promise<number> {
		return (await this.store.latest(room, 1)).messages[0]?.seq ?? 0;
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
		if (this.sockets.delete(ws)) {
			const left = this.connectionsFrom(conn.address) - 1;
			if (left > 0) this.perAddress.set(addressGroup(conn.address), left);
			else this.perAddress.delete(addressGroup(conn.address));
		}
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
		this.presence.exit(room, name);
		this.announce(room, { type: "presence", room, name, online: false });
		this.dropIfEmpty(room, state);
	}

	/** Stores a message, then hands it to the bus; resolves with the stored message. */
	async send(ws: Socket, room: string, id: string | undefined, text: string): Promise<Message> {
		const { message, created } = await this.store.append({
			room,
			from: ws.data.name as string,
			id,
			text,
			ts: Date.now(),
		});
		if (created) {
			this.metrics.messagesStored.inc();
			(this.bus as Bus).publish(message);
		} else {
			this.sendTo(ws, message);
		}
		return message;
	}

	/** Stores a message from a sender without a socket here (a bot over HTTP), then hands it to the bus. */
	async post(from: string, room: string, id: string | undefined, text: string): Promise<Appended> {
		const appended = await this.store.append({ room, from, id, text, ts: Date.now() });
		if (appended.created) {
			this.metrics.messagesStored.inc();
			(this.bus as Bus).publish(appended.message);
		}
		return appended;
	}

	/**
	 * Hands a committed message to this process's sockets in the room, once
	 * and in seq order. One at or below what was handed on is dropped; one
	 * ahead of a gap waits while the missing ones are read from the store
	 * (they are committed by then), so nobody waits for or skips them.
	 */
	deliver(message: Message): void {
		const state = this.rooms.get(message.room);
		if (!state) return;
		if (state.head === undefined || message.seq === state.head + 1) {
			this.emit(state, message);
			this.drainAhead(state);
		} else if (message.seq > state.head) {
			state.ahead.set(message.seq, message);
			if (!state.filling) void this.fillGap(message.room, state);
		}
	}

	private emit(state: RoomState, message: Message): void {
		state.head = message.seq;
		const t0 = performance.now();
		this.publish(message.room, message);
		this.metrics.publishSeconds.observe((performance.now() - t0) / 1000);
	}

	private drainAhead(state: RoomState): void {
		for (let next = state.ahead.get((state.head as number) + 1); next; next = state.ahead.get(next.seq + 1)) {
			state.ahead.delete(next.seq);
			this.emit(state, next);
		}
		for (const seq of state.ahead.keys()) if (seq <= (state.head as number)) state.ahead.delete(seq);
	}

	private async fillGap(room: string, state: RoomState, force = false): Promise<void> {
		state.filling = true;
		this.metrics.gapFills.inc();
		try {
			for (let once = force; (state.ahead.size > 0 || once) && this.rooms.get(room) === state; once = false) {
				const page = await this.store.since(room, state.head as number, LIMITS.resume);
				if (!this.applyStored(state, page.messages)) break;
			}
		} finally {
			state.filling = false;
		}
	}

	/** Emits, in order, the messages read from the store that come after the room's head; false if none did. */
	private applyStored(state: RoomState, messages: Message[]): boolean {
		const head = state.head as number;
		const missing = messages.filter((m) => m.seq > head);
		const oldest = missing[0];
		if (!oldest) return false;
		// More missing than one read returns: older ones are past saving; go on from the oldest read.
		if (oldest.seq !== head + 1) state.head = oldest.seq - 1;
		for (const m of missing) if (m.seq === (state.head as number) + 1) this.emit(state, m);
		this.drainAhead(state);
		return true;
	}

	typing(ws: Socket, room: string): void {
		this.announce(room, { type: "typing", room, name: ws.data.name as string }, ws);
	}

	async history(room: string, before: number | undefined, limit: number): Promise<Page> {
		return before === undefined ? this.store.latest(room, limit) : this.store.before(room, before, limit);
	}

	private room(name: string): RoomState {
		let state = this.rooms.get(name);
		if (!state) {
			state = { members: new Map(), sockets: new Map(), pending: 0, ahead: new Map(), filling: false };
			this.rooms.set(name, state);
			this.bus?.watch(name);
		}
		return state;
	}

	private dropIfEmpty(room: string, state: RoomState): void {
		if (state.members.size === 0 && state.pending === 0 && this.rooms.get(room) === state) {
			this.rooms.delete(room);
			this.bus?.unwatch(room);
		}
	}
}
