// Rooms as things of their own under --auth accounts (protocol 1.2): who may see, join, change and
// manage which room, the membership of each account on this process's sockets, and the event log
// that tells every process of a cluster when a membership, a room or a read position changed.
import type { ServerWebSocket } from "bun";
import {
	ACCOUNTS_PROTOCOL_VERSION,
	CLOSE,
	type ErrorCode,
	LIMITS,
	type Message,
	type RoomInfo,
	type ServerFrame,
} from "../protocol.ts";
import type { Reader } from "./access.ts";
import type { AccountStore } from "./account-store.ts";
import { type Account, accountKey } from "./accounts.ts";
import { nameKey } from "./names.ts";
import { FIRST_ROOM, type MemberView, type RoomRow, RoomStore } from "./room-store.ts";

/** How often each process reads the room event log (membership ends reach every process within this). */
export const ROOM_EVENT_POLL_MS = 250;
const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
/** Mentions one message may record. */
const MENTIONS_MAX = 20;

/** What rooms needs of a connection: its session object (`ws.data`) with the rooms it has joined. */
export interface RoomConn {
	readonly rooms: ReadonlySet<string>;
	closed: boolean;
}
export type RoomSocket = ServerWebSocket<RoomConn>;

/** What rooms needs from the hub (hub.ts). */
export interface RoomsHub {
	readonly store: { readonly epoch: string };
	sendTo(ws: RoomSocket, frame: ServerFrame): void;
	/** Stops the socket's live delivery of the room (unsubscribes it, tells the room it left). */
	leave(ws: RoomSocket, room: string): void;
}

/** A refusal with its protocol error code; the message names nothing the asker may not see. */
export class RoomRefusal extends Error {
	override name = "RoomRefusal";
	constructor(
		readonly code: ErrorCode,
		message: string,
	) {
		super(message);
	}
}

const refuse = (code: ErrorCode, message: string): never => {
	throw new RoomRefusal(code, message);
};

/** One answer for "no such room" and "not yours to see", so nothing leaks about private rooms. */
export const notFound = (room: string): RoomRefusal =>
	new RoomRefusal("not_found", `no room #${room} that you can see`);

/** The refusal when the account is in LIMITS.membershipsMax rooms already. */
const tooManyRooms = (): RoomRefusal =>
	new RoomRefusal(
		"too_many_rooms",
		`an account can be in at most ${LIMITS.membershipsMax} rooms; leave one first`,
	);

/** One account's sockets on this process and the rooms it is a member of (read by lib/access.ts mayRead). */
interface Person {
	account: Account;
	/** Name key (lib/names.ts): how people are told apart. */
	key: string;
	/** How the message store keys this person's messages (lower-cased name). */
	senderKey: string;
	sockets: Set<RoomSocket>;
	memberOf: Set<string>;
}

/** The direct room of a set of accounts: the same set always gets the same id. */
export function directRoomId(accountIds: string[]): string {
	const digest = new Bun.CryptoHasher("sha256").update([...accountIds].sort().join(",")).digest();
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
	let bits = 0;
	let value = 0;
	let out = "";
	for (const byte of digest) {
		value = (value << 8) | byte;
		bits += 8;
		while (bits >= 5 && out.length < 26) {
			out += alphabet[(value >>> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	return `dm-${out}`;
}

/** The name keys a text mentions with `@name` (trailing punctuation is not part of the name). */
export function mentionedKeys(text: string): string[] {
	if (!text.includes("@")) return [];
	const keys = new Set<string>();
	for (const m of text.matchAll(/(?:^|[^\p{L}\p{N}_])@([^\s@]+)/gu)) {
		const token = (m[1] as string).replace(/[.,!?;:)\]}'"…]+$/u, "");
		if (token) keys.add(nameKey(token));
		if (keys.size >= MENTIONS_MAX) break;
	}
	return [...keys];
}

export class Rooms {
	private hub?: RoomsHub;
	/** Account id → its sockets here and its memberships. */
	private readonly people = new Map<string, Person>();
	/** Each connection's person. */
	private readonly byConn = new WeakMap<RoomConn, Person>();
	/** Each socket's welcome (its memberships loaded); frames that need them wait for it. */
	private readonly ready = new WeakMap<RoomConn, Promise<void>>();
	/** Accounts known to have been welcomed to the room tables (made members of #general once). */
	private readonly seen = new Set<string>();
	/** Archived rooms, for the synchronous read-only check at send. */
	private readonly archived = new Set<string>();
	/** Events applied here, until the poll has passed them. */
	private readonly applied = new Set<number>();
	/** Events are applied one at a time, in order, so each reads the state after the previous one. */
	private chain: Promise<void> = Promise.resolve();
	private poller?: ReturnType<typeof setInterval>;
	/** The event log's newest seq this process has read. */
	private floor = 0;
	private polling = false;
	private pollAgain = false;
	private nudge?: (room: string) => void;
	private pruner?: ReturnType<typeof setInterval>;

	constructor(
		readonly store: RoomStore,
		private readonly accounts: AccountStore,
		private readonly onError: (what: string, e: Error) => void = () => {},
		private readonly now: () => number = Date.now,
	) {}

	/** Opens the room tables (after the message and account tables of `db`). */
	static async open(db: string, accounts: AccountStore, onError?: (what: string, e: Error) => void) {
		const rooms = new Rooms(await RoomStore.open(db), accounts, onError);
		for (const room of await rooms.store.archivedRooms()) rooms.archived.add(room);
		return rooms;
	}

	/**
	 * Starts serving the hub's sockets and following the event log of the
	 * other processes. `nudge` tells the processes serving a room that the log
	 * has news (a bus event, see Rooms.heard): they read it at once instead of
	 * at their next poll. The log, not the bus, carries the change, so a bus
	 * outage delays it by a poll at most.
	 */
	async start(hub: RoomsHub, nudge?: (room: string) => void): Promise<void> {
		this.hub = hub;
		this.nudge = nudge;
		this.floor = await this.store.lastEvent();
		this.poller = setInterval(() => this.poll(), ROOM_EVENT_POLL_MS);
		this.pruner = setInterval(() => {
			this.store
				.pruneEvents(this.now() - 3600_000)
				.catch((e: Error) => this.onError("room_event_prune_failed", e));
			this.store
				.pruneStarts(this.now() - DAY_MS)
				.catch((e: Error) => this.onError("room_start_prune_failed", e));
		}, 3600_000);
	}

	/** Another process changed a room served here: read the event log now. */
	heard(): void {
		this.poll();
	}

	private poll(): void {
		if (this.polling) {
			this.pollAgain = true;
			return;
		}
		this.polling = true;
		// PostgreSQL sequence values can commit out of order: look back a little, skip what was applied.
		const floor = this.floor;
		this.store
			.eventsAfter(Math.max(0, floor - 100))
			.then((events) => {
				for (const e of events) {
					if (this.applied.has(e.seq) || e.seq <= floor - 100) continue;
					this.applied.add(e.seq);
					this.apply(e.room, e.accountId, e.kind);
				}
				const top = events.at(-1)?.seq;
				if (top !== undefined && top > this.floor) this.floor = top;
				for (const s of this.applied) if (s <= this.floor - 100) this.applied.delete(s);
			})
			.catch((e: Error) => this.onError("room_event_poll_failed", e))
			.finally(() => {
				this.polling = false;
				if (this.pollAgain) {
					this.pollAgain = false;
					this.poll();
				}
			});
	}

	async close(): Promise<void> {
		clearInterval(this.poller);
		clearInterval(this.pruner);
		await this.chain;
		await this.store.close();
	}

	// ---- connections

	/**
	 * A socket of `account` opened: it is counted among the account's sockets
	 * at once, and gets `welcome` with its rooms once they are read (an account
	 * seen for the first time is made a member of #general first).
	 */
	connect(ws: RoomSocket, account: Account): void {
		let person = this.people.get(account.id);
		if (!person) {
			person = {
				account,
				key: nameKey(account.name),
				senderKey: account.name.toLowerCase(),
				sockets: new Set(),
				memberOf: new Set(),
			};
			this.people.set(account.id, person);
		}
		person.sockets.add(ws);
		this.byConn.set(ws.data, person);
		// Once per account and process: a reconnect storm writes nothing here.
		const seen = this.seen.has(account.id)
			? Promise.resolve()
			: this.store.welcomeNewcomer(account.id, this.now()).then(() => {
					this.seen.add(account.id);
				});
		const ready = seen.then(() => this.welcome(ws));
		this.ready.set(ws.data, ready);
		ready.catch((e: Error) => {
			// Without its rooms the connection could do nothing right: it reconnects and tries again.
			this.onError("room_welcome_failed", e);
			ws.close(CLOSE.internalError, "the server could not read your rooms; reconnect");
		});
	}

	disconnect(ws: RoomSocket): void {
		const person = this.personOf(ws);
		if (!person) return;
		person.sockets.delete(ws);
		this.byConn.delete(ws.data);
		if (person.sockets.size === 0 && this.people.get(person.account.id) === person)
			this.people.delete(person.account.id);
	}

	/** Resolves once the socket's memberships are loaded (its `welcome` went out). */
	whenReady(ws: RoomSocket): Promise<void> {
		return this.ready.get(ws.data) ?? Promise.resolve();
	}

	private personOf(ws: RoomSocket): Person | undefined {
		return this.byConn.get(ws.data);
	}

	/** The account a socket belongs to (connect registered it). */
	person(ws: RoomSocket): Person {
		return this.personOf(ws) ?? refuse("not_identified", "this connection has no account");
	}

	/** The rooms an account may read on this process (lib/access.ts mayRead), sync and cheap. */
	memberOf(ws: RoomSocket): ReadonlySet<string> {
		return this.personOf(ws)?.memberOf ?? new Set();
	}

	/** lib/access.ts mayRead for an HTTP path (downloads): the membership is read from the store. */
	async mayRead(reader: Reader, room: string): Promise<boolean> {
		return reader.account !== undefined && (await this.store.isMember(room, reader.account.id));
	}

	/** Sends `welcome` with every room of the account, reading them afresh. */
	async welcome(ws: RoomSocket): Promise<void> {
		if (ws.data.closed) return;
		const person = this.person(ws);
		const infos = await this.infos(person);
		person.memberOf.clear();
		for (const info of infos) person.memberOf.add(info.room);
		this.sendTo(ws, {
			type: "welcome",
			name: person.account.name,
			version: ACCOUNTS_PROTOCOL_VERSION,
			epoch: (this.hub as RoomsHub).store.epoch,
			rooms: infos,
			role: person.account.role,
		});
	}

	/** Sends a frame to one socket of this process (through the hub, which counts it). */
	sendTo(ws: RoomSocket, frame: ServerFrame): void {
		if (!ws.data.closed) this.hub?.sendTo(ws, frame);
	}

	// ---- what one account sees

	/** The account's rooms (or only `only`) as RoomInfo. */
	private async infos(person: Person, only?: string): Promise<RoomInfo[]> {
		const [views, people] = await Promise.all([
			this.store.views(person.account.id, person.senderKey, only),
			this.store.peopleOf(person.account.id, only),
		]);
		return views.map((v) => this.info(person, v, people.get(v.room)));
	}

	private info(person: Person, v: MemberView, people: string[] | undefined): RoomInfo {
		const others = (people ?? []).filter((n) => nameKey(n) !== person.key);
		const info: RoomInfo = {
			room: v.room,
			kind: v.kind,
			title: v.kind === "direct" ? others.join(", ") || person.account.name : (v.title ?? v.room),
			topic: v.topic,
			created: v.created,
			members: v.members,
			lastSeq: v.lastSeq,
			lastRead: v.lastRead,
			unread: v.unread,
			mentions: v.mentions,
		};
		if (v.creatorName !== null && v.kind !== "direct") info.creator = v.creatorName;
		if (v.archived !== null) info.archived = v.archived;
		if (people && v.kind !== "open") info.people = people;
		return info;
	}

	/** One room of the account as RoomInfo, or undefined when it is not a member. */
	async infoFor(person: Person, room: string): Promise<RoomInfo | undefined> {
		return (await this.infos(person, room))[0];
	}

	// ---- access

	/** True when the room is archived: readable by its members, writable by nobody. */
	readOnly(room: string): boolean {
		return this.archived.has(room);
	}

	/**
	 * May the socket's account join `room`? A member may; a non-member of an
	 * open, unarchived room becomes a member (every device of it hears); any
	 * other case is not_found, the same for all of them.
	 */
	async admit(ws: RoomSocket, room: string): Promise<{ info: RoomInfo; people: string[] }> {
		await this.whenReady(ws);
		const person = this.person(ws);
		if (!(await this.isMember(person, room))) {
			const row = await this.store.room(room);
			if (row?.kind !== "open" || row.archived !== null) throw notFound(room);
			const added = await this.store.addMember(room, person.account.id, this.now(), LIMITS.membershipsMax);
			if (added === "full") throw tooManyRooms();
			if (added === "added") await this.changed(room, person.account.id, "member");
			else await this.settle();
		}
		const [info, people] = await Promise.all([this.infoFor(person, room), this.store.people(room)]);
		if (!info) throw notFound(room); // removed meanwhile
		person.memberOf.add(room);
		return { info, people };
	}

	/** After a join: if the membership ended while it ran, the socket stops receiving the room. */
	afterJoin(ws: RoomSocket, room: string): void {
		const person = this.personOf(ws);
		if (person && !person.memberOf.has(room) && ws.data.rooms.has(room)) this.drop(ws, room);
	}

	/** The rooms a bot may post to: its own; an open unarchived room makes it a member. */
	async botMayPost(bot: Account, room: string): Promise<"ok" | "not_found" | "read_only"> {
		const row = await this.store.room(room);
		if (!row) return "not_found";
		const member = await this.store.isMember(room, bot.id);
		if (!member && (row.kind !== "open" || row.archived !== null)) return "not_found";
		if (row.archived !== null) return "read_only";
		if (!member && (await this.store.addMember(room, bot.id, this.now())) === "added")
			await this.changed(room, bot.id, "member");
		return "ok";
	}

	/** A message was stored: the members it mentions by `@name` get a mention each (counted until read). */
	async mentions(message: Message): Promise<void> {
		const keys = mentionedKeys(message.text).filter((k) => k !== nameKey(message.from));
		if (keys.length === 0) return;
		const ids = await this.store.membersByKey(message.room, keys);
		await this.store.addMentions(message.room, message.seq, ids);
	}

	/**
	 * A stored message was edited or deleted (Hub.change, after the store
	 * committed it): a deletion takes its mentions away; an edit records the
	 * members an added `@name` mentions (those it already mentioned stay).
	 */
	async messageChanged(message: Message): Promise<void> {
		if (message.deleted) await this.store.removeMentions(message.room, message.seq);
		else await this.mentions(message);
	}

	// ---- changes (each frame's rules; lib/room-frames.ts turns them into answers)

	/**
	 * Whether the person is a member: this process's set answers at once; a
	 * room not in it is asked of the store, since a membership made on another
	 * process reaches this one's set only with its event.
	 */
	private async isMember(person: Person, room: string): Promise<boolean> {
		await this.settle();
		if (person.memberOf.has(room)) return true;
		if (!(await this.store.isMember(room, person.account.id))) return false;
		person.memberOf.add(room);
		return true;
	}

	private async mustSee(person: Person, room: string): Promise<RoomRow> {
		const row = (await this.isMember(person, room)) ? await this.store.room(room) : undefined;
		return row ?? refuse(notFound(room).code, notFound(room).message);
	}

	private mayManage(person: Person, row: RoomRow): boolean {
		return person.account.role === "admin" || row.creator === person.account.id;
	}

	async create(
		ws: RoomSocket,
		room: string,
		kind: "open" | "private",
		title: string | undefined,
		topic: string | undefined,
	): Promise<RoomInfo> {
		await this.whenReady(ws);
		const person = this.person(ws);
		const row: RoomRow = {
			room,
			kind,
			title: title ?? null,
			topic: topic ?? "",
			creator: person.account.id,
			created: this.now(),
			archived: null,
		};
		// dm- ids are direct rooms' (directRoomId): nobody may take one by hand.
		if (room.startsWith("dm-")) refuse("room_taken", "that room name cannot be used; pick another");
		const made = await this.store.insertRoom(row, [person.account.id], {
			starter: person.account.id,
			kind: "room",
			since: row.created - HOUR_MS,
			perWindow: LIMITS.roomsPerHour,
			total: person.account.role === "admin" ? undefined : LIMITS.roomsCreatedMax,
			memberCap: LIMITS.membershipsMax,
		});
		if (made === "taken") refuse("room_taken", "that room name cannot be used; pick another");
		if (made === "rate")
			refuse("quota_exceeded", `an account can create ${LIMITS.roomsPerHour} rooms an hour; try again later`);
		if (made === "total")
			refuse(
				"quota_exceeded",
				`an account can create at most ${LIMITS.roomsCreatedMax} rooms; ask an admin to create this one`,
			);
		if (typeof made === "object") throw tooManyRooms();
		person.memberOf.add(room);
		await this.changed(room, person.account.id, "member", ws);
		return (await this.infoFor(person, room)) ?? refuse("server_error", "the room was not stored");
	}

	/**
	 * The direct room of this account and the named people. A new one makes
	 * them all members. An existing one makes only the asker a member again:
	 * someone who left comes back only by starting it themselves, never by
	 * another's `direct` (no conversation can be pushed on a person twice).
	 */
	async direct(ws: RoomSocket, names: string[]): Promise<RoomInfo> {
		await this.whenReady(ws);
		const person = this.person(ws);
		const ids = new Set([person.account.id]);
		const named = new Map<string, string>();
		for (const name of names) {
			const key = accountKey(name);
			const found = key === undefined ? undefined : await this.accounts.accountByKey(key);
			if (!found?.active) refuse("not_found", `no account is named ${JSON.stringify(name)}`);
			ids.add((found as { id: string }).id);
			named.set((found as { id: string }).id, (found as { name: string }).name);
		}
		if (ids.size < 2) refuse("bad_frame", "a direct conversation needs someone besides you");
		const room = directRoomId([...ids]);
		const now = this.now();
		const row: RoomRow = {
			room,
			kind: "direct",
			title: null,
			topic: "",
			creator: null,
			created: now,
			archived: null,
		};
		const made = await this.store.insertRoom(row, [...ids], {
			starter: person.account.id,
			kind: "direct",
			since: now - DAY_MS,
			perWindow: LIMITS.directPerDay,
			memberCap: LIMITS.membershipsMax,
		});
		if (made === "rate")
			refuse(
				"quota_exceeded",
				`an account can start ${LIMITS.directPerDay} new direct conversations a day; try again tomorrow`,
			);
		if (typeof made === "object")
			throw made.full === person.account.id
				? tooManyRooms()
				: new RoomRefusal(
						"too_many_rooms",
						`${named.get(made.full)} is in too many rooms to start a conversation with`,
					);
		if (made === "ok") {
			for (const id of ids) await this.changed(room, id, "member", id === person.account.id ? ws : undefined);
		} else {
			const added = await this.store.addMember(room, person.account.id, now, LIMITS.membershipsMax);
			if (added === "full") throw tooManyRooms();
			if (added === "added") {
				await this.changed(room, person.account.id, "member", ws);
				await this.changed(room, null, "room", ws);
			}
		}
		person.memberOf.add(room);
		return (await this.infoFor(person, room)) ?? refuse("server_error", "the room was not stored");
	}

	async directory(query: string | undefined) {
		const rows = await this.store.directory(query ?? "", LIMITS.directoryMax);
		return rows.map((r) => ({ room: r.room, title: r.title ?? r.room, topic: r.topic, members: r.members }));
	}

	async update(
		ws: RoomSocket,
		room: string,
		change: { title?: string; topic?: string; archived?: boolean },
	): Promise<RoomInfo> {
		await this.whenReady(ws);
		const person = this.person(ws);
		const row = await this.mustSee(person, room);
		if (row.kind === "direct") refuse("forbidden", "a direct conversation has no title, topic or archive");
		if (!this.mayManage(person, row))
			refuse("forbidden", `only the creator of #${room} or an admin can change it`);
		await this.store.updateRoom(room, {
			title: change.title,
			topic: change.topic,
			archived:
				change.archived === undefined ? undefined : change.archived ? (row.archived ?? this.now()) : null,
		});
		await this.changed(room, null, "room", ws);
		return (await this.infoFor(person, room)) ?? refuse("server_error", "the room was not stored");
	}

	async addMember(ws: RoomSocket, room: string, name: string): Promise<RoomInfo> {
		await this.whenReady(ws);
		const person = this.person(ws);
		const row = await this.mustSee(person, room);
		if (row.kind === "direct")
			refuse("forbidden", "start a new direct conversation to talk with more people");
		if (!this.mayManage(person, row))
			refuse("forbidden", `only the creator of #${room} or an admin can add people to it`);
		const target = await this.account(name);
		const added = await this.store.addMember(room, target.id, this.now(), LIMITS.membershipsMax);
		if (added === "full")
			refuse("too_many_rooms", `${target.name} is in too many rooms to be added to another`);
		if (added === "added") {
			await this.changed(room, target.id, "member");
			await this.membersChanged(row, ws);
		}
		return (await this.infoFor(person, room)) ?? refuse("server_error", "the room was not stored");
	}

	/** Removes `name` from the room; removing oneself is leaving. Undefined when the asker left. */
	async removeMember(ws: RoomSocket, room: string, name: string): Promise<RoomInfo | undefined> {
		await this.whenReady(ws);
		const person = this.person(ws);
		const row = await this.mustSee(person, room);
		const target = await this.account(name);
		if (target.id === person.account.id) {
			await this.leave(ws, room);
			return undefined;
		}
		if (row.kind === "direct") refuse("forbidden", "nobody can be removed from a direct conversation");
		const allowed = row.kind === "open" ? person.account.role === "admin" : this.mayManage(person, row);
		if (!allowed)
			refuse(
				"forbidden",
				row.kind === "open"
					? "only an admin can remove people from an open room"
					: `only the creator of #${room} or an admin can remove people from it`,
			);
		if (!(await this.store.removeMember(room, target.id)))
			refuse("not_found", `${target.name} is not a member of #${room}`);
		await this.changed(room, target.id, "member");
		await this.membersChanged(row, ws);
		return (await this.infoFor(person, room)) ?? refuse("server_error", "the room was not stored");
	}

	/** Ends the account's membership: every device of it gets `left` (if it had joined) and `room_gone`. */
	async leave(ws: RoomSocket, room: string): Promise<void> {
		await this.whenReady(ws);
		const person = this.person(ws);
		const row = await this.mustSee(person, room);
		await this.store.removeMember(room, person.account.id);
		await this.changed(room, person.account.id, "member");
		await this.membersChanged(row);
	}

	/**
	 * The members of a private or direct room hear its new member list (a
	 * `room` frame each). An open room's members do not: in a room of
	 * thousands each arrival would cost a frame (and a read) per member;
	 * they see its count in their next `room` or `joined`.
	 */
	private async membersChanged(row: RoomRow, origin?: RoomSocket): Promise<void> {
		if (row.kind !== "open") await this.changed(row.room, null, "room", origin);
	}

	/**
	 * Moves the account's read position; every device of it gets `read` with
	 * the counts left, the asking connection with the request's `ref`.
	 */
	async read(ws: RoomSocket, room: string, seq: number, ref?: string): Promise<void> {
		await this.whenReady(ws);
		const person = this.person(ws);
		await this.mustSee(person, room);
		if (await this.store.markRead(room, person.account.id, seq))
			await this.changed(room, person.account.id, "read", ws, ref);
		else {
			// Nothing moved: this connection alone hears where the position is.
			await this.sendRead(person, room, [ws], ws, ref);
		}
	}

	private async account(name: string): Promise<{ id: string; name: string }> {
		const key = accountKey(name);
		const found = key === undefined ? undefined : await this.accounts.accountByKey(key);
		return found?.active ? found : refuse("not_found", `no account is named ${JSON.stringify(name)}`);
	}

	// ---- the event log

	/**
	 * Records a change for every process and applies it here at once (in
	 * order with the others): `origin` already has its answer (with `ref`) and
	 * gets no `room` frame for it; of a "read", it gets the `read` with `ref`.
	 */
	private async changed(
		room: string,
		accountId: string | null,
		kind: string,
		origin?: RoomSocket,
		ref?: string,
	): Promise<void> {
		const seq = await this.store.appendEvent(room, accountId, kind, this.now());
		this.applied.add(seq);
		this.nudge?.(room);
		this.apply(room, accountId, kind, origin, ref);
		await this.settle();
	}

	/** Resolves once every event seen so far is applied. */
	private settle(): Promise<void> {
		return this.chain;
	}

	private apply(
		room: string,
		accountId: string | null,
		kind: string,
		origin?: RoomSocket,
		ref?: string,
	): void {
		this.chain = this.chain
			.then(() => this.applyNow(room, accountId, kind, origin, ref))
			.catch((e: Error) => this.onError("room_event_failed", e));
	}

	private async applyNow(
		room: string,
		accountId: string | null,
		kind: string,
		origin?: RoomSocket,
		ref?: string,
	) {
		if (kind === "room") {
			const row = await this.store.room(room);
			if (row?.archived != null) this.archived.add(room);
			else this.archived.delete(room);
			for (const person of this.people.values())
				if (person.memberOf.has(room)) await this.sendRoom(person, room, origin);
			return;
		}
		const person = accountId === null ? undefined : this.people.get(accountId);
		if (!person) return;
		if (kind === "read") return this.sendRead(person, room, person.sockets, origin, ref);
		if (kind === "member") return this.sendRoom(person, room, origin);
	}

	/** The room as the person sees it now to each of its sockets here, or its end if it is no longer a member. */
	private async sendRoom(person: Person, room: string, origin?: RoomSocket): Promise<void> {
		const info = await this.infoFor(person, room);
		if (info) {
			person.memberOf.add(room);
			for (const ws of person.sockets) if (ws !== origin) this.sendTo(ws, { type: "room", room: info });
			return;
		}
		const was = person.memberOf.delete(room);
		for (const ws of person.sockets) {
			const joined = ws.data.rooms.has(room);
			if (joined) this.drop(ws, room);
			else if (was) this.sendTo(ws, { type: "room_gone", room });
		}
	}

	/** Ends the socket's delivery of the room at once: `left`, then `room_gone`. */
	private drop(ws: RoomSocket, room: string): void {
		this.hub?.leave(ws, room);
		this.sendTo(ws, { type: "left", room });
		this.sendTo(ws, { type: "room_gone", room });
	}

	private async sendRead(
		person: Person,
		room: string,
		sockets: Iterable<RoomSocket>,
		origin?: RoomSocket,
		ref?: string,
	): Promise<void> {
		const info = await this.infoFor(person, room);
		if (!info) return;
		for (const ws of sockets)
			this.sendTo(ws, {
				type: "read",
				...(ws === origin && ref !== undefined ? { ref } : {}),
				room,
				seq: info.lastRead,
				unread: info.unread,
				mentions: info.mentions,
			});
	}
}

export { FIRST_ROOM };
