// The page's model of the chat: rooms, messages, pending sends and the connection, with no DOM.
import {
	CLOSE,
	type ClientFrame,
	DEACTIVATED_REASON,
	type FileRef,
	LIMITS,
	type Message,
	parseServerFrame,
	ROOM_PATTERN,
	type RoomInfo,
	type ServerFrame,
	type ServerFrameOf,
} from "../protocol.ts";
import { mentions } from "./format.ts";
import {
	applyUpdates,
	indexOfSeq,
	newestSeq,
	READ_EVERY_MS,
	type RoomState,
	reacted,
} from "./rooms-model.ts";

export const TYPING_SHOWN_MS = 4000;
export const TYPING_SEND_EVERY_MS = 2000;
const SERVER_ERROR_RETRY_MS = 3000;
/** How often the page asks the server whether the connection still works (browsers cannot send WebSocket pings). */
export const PING_EVERY_MS = 20_000;
/** A connection that has not answered a ping within this long is taken as gone. */
export const PONG_WITHIN_MS = 10_000;
/** How long an opened socket waits for a welcome it did not ask for before the page asks for a name. */
const ASK_NAME_AFTER_MS = 300;
/** What a refused join can be answered with. */
const JOIN_ERRORS = new Set(["server_error", "rate_limited", "too_many_rooms", "bad_frame"]);
/** Presence lines kept per room; older ones are dropped (a flood must not grow the page without bound). */
export const PRESENCE_LINES_KEPT = 50;
/** A little past the server's default idle timeout (60 s), after which a vanished connection is dropped. */
const RECLAIM_NAME_MS = 90_000;
const RECLAIM_EVERY_MS = 1000;

/** Delay before reconnect attempt `attempt` (0-based): doubling from 0.5 s, capped at 30 s, with jitter in its upper half. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
	const ceiling = Math.min(30_000, 500 * 2 ** Math.min(attempt, 16));
	return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface Pending {
	id: string;
	text: string;
	ts: number;
	/** Uploaded files sent with the text (protocol 1.1, --auth accounts). */
	files?: FileRef[];
}

/** The `send` frame for a pending message: the first time and every resend alike. */
function sendFrame(room: string, p: Pending): ClientFrame {
	const files = p.files?.length ? { files: p.files.map((f) => f.id) } : {};
	return { type: "send", room, id: p.id, text: p.text, ...files };
}

export interface RoomView extends RoomState {
	name: string;
	/** Confirmed messages, ascending by seq. */
	messages: Message[];
	/** Sent, not yet echoed, in the order written. */
	pending: Pending[];
	members: string[];
	/** Messages from others not seen yet; `mentions` of them name us. */
	unread: number;
	mentions: number;
	/** Name → when its "is typing" expires (ms since epoch). */
	typing: Map<string, number>;
	/** Older messages exist than the first in `messages`. */
	more: boolean;
	/** Coalesced joins and leaves, oldest first, at most PRESENCE_LINES_KEPT. */
	presence: PresenceLine[];
	joined: boolean;
	loadingHistory: boolean;
	/**
	 * Opened at a search result (history `around`): messages newer than the
	 * last in `messages` exist and are not here yet. Pages `after` it are
	 * fetched as the reader goes down; live messages wait in `held` until those
	 * pages reach them, so the room never shows a hole or a message twice.
	 */
	newer: boolean;
	/** Live messages (ascending, gap-free) past the hole that `newer` stands for. */
	held: Message[];
	/** The message opened from a search result, highlighted. */
	focus?: number;
}

export type Status =
	| { kind: "connecting" }
	| { kind: "connected" }
	| { kind: "reconnecting"; at: number }
	| { kind: "offline" }
	/** The server refuses this page's connections and said why (origin not allowed, full); retried at `at`. */
	| { kind: "refused"; message: string; at: number }
	/** Our own name is still held by our previous connection; asked for again until `until`. */
	| { kind: "reclaiming"; name: string; until: number }
	/** --auth accounts: the session ended (signed out elsewhere, account deactivated); sign in again. */
	| { kind: "ended"; deactivated?: boolean };

/** Joins and leaves in a room that happened together, after the message with seq `after` (0: before all). */
export interface PresenceLine {
	after: number;
	joined: string[];
	left: string[];
}

/** What `GET /api/upgrade-check` said, when it said anything (an older server answers 404: undefined). */
export interface UpgradeCheck {
	ok: boolean;
	message?: string;
	retryAfter?: number;
}

/** What changed, so the view redraws only that. */
export type Change =
	| { kind: "status" }
	| { kind: "identity"; error?: string; code?: string }
	| { kind: "rooms" }
	| { kind: "room"; room: string }
	| { kind: "message"; room: string; message: Message }
	| { kind: "pending"; room: string }
	| { kind: "history"; room: string; added: number }
	| { kind: "members"; room: string }
	| { kind: "typing"; room: string }
	| { kind: "system"; room?: string; text: string }
	/** A message from someone else that arrived while the person was not looking at its room. */
	| { kind: "unseen"; room: string; message: Message; mention: boolean }
	| { kind: "error"; room?: string; text: string; restore?: string }
	/** A stored message changed (edited, deleted, reacted to). */
	| { kind: "update"; room: string; message: Message }
	/** The server answered a protocol 1.2 request of ours (`ref`): done, or refused with `error`. */
	| { kind: "answer"; ref: string; error?: string; code?: string }
	| { kind: "directory" }
	/** An answer to a search of ours (client/search.ts), or its refusal. */
	| { kind: "search"; frame: ServerFrameOf<"search"> }
	| { kind: "search-error"; ref: string; code: string; text: string };

/** Protocol 1.2 requests that carry a `ref`, so their answer or refusal finds its way back. */
type Request = Extract<
	ClientFrame,
	{
		type:
			| "create"
			| "direct"
			| "directory"
			| "room_update"
			| "member_add"
			| "member_remove"
			| "edit"
			| "delete"
			| "react";
	}
>;

type ClientFrameOf<T extends ClientFrame["type"]> = Extract<ClientFrame, { type: T }>;

/** What a `history` request asked for; the answer does not say, and answers come in the order asked. */
type HistoryAsk = "before" | "around" | "after";
/** Messages per page going down from a search result to the live end. */
const NEWER_PAGE = 100;

export interface ChatOptions {
	url: string;
	storage?: Pick<Storage, "getItem" | "setItem">;
	random?: () => number;
	delay?: (attempt: number) => number;
	isOnline?: () => boolean;
	pingEveryMs?: number;
	pongWithinMs?: number;
	/** Asks the server why a socket closed before it opened (see client/upgrade-check.ts). */
	checkUpgrade?: () => Promise<UpgradeCheck | undefined>;
	/** Makes the socket (tests give a stand-in that records what is sent). */
	socket?: (url: string) => WebSocket;
}

/** One chat session: survives reconnects, resumes rooms with `since`, resends what was not acknowledged. */
export class Chat {
	readonly rooms = new Map<string, RoomView>();
	/** The room shown; "" when the person has left every room. */
	current = "general";
	/** The person is looking at the page (the tab is visible): messages in the current room are seen. */
	attentive = true;
	name?: string;
	epoch?: string;
	status: Status = { kind: "connecting" };
	/**
	 * The server names us by our account (--auth accounts): it welcomed us
	 * unasked, or refused a hello as already identified. Under --auth none every
	 * welcome answers a hello of ours.
	 */
	accounts = false;
	/** --auth accounts: this account's role ("admin" may manage every room and delete any message). */
	role?: "admin" | "member";
	/** The newest directory answer. */
	directory?: { ref: string; rooms: ServerFrameOf<"directory">["rooms"] };
	/** The reader is at the newest message of the current room (the view says, as they scroll). */
	atNewest = true;
	/** The room the page's address named when it loaded: joined even if this account is not in it yet. */
	linked?: string;
	private socket?: WebSocket;
	/** Protocol 1.2 requests sent and not answered yet, by ref. */
	private readonly requests = new Map<string, Request["type"]>();
	/** Read positions waiting for the next send (at most one every READ_EVERY_MS). */
	private readonly readsDue = new Set<string>();
	private readTimer?: ReturnType<typeof setTimeout>;
	private lastReadSent = 0;
	private welcomedBefore = false;
	/** This socket's hellos sent and welcomes received, to tell an unasked welcome. */
	private hellosSent = 0;
	private welcomes = 0;
	private attempt = 0;
	private retryTimer?: ReturnType<typeof setTimeout>;
	private lastTypingSent = 0;
	/** The name the server last welcomed us with, and until when we wait for it to be ours again. */
	private welcomedAs?: string;
	private reclaimUntil = 0;
	private stopped = false;
	private heartbeat?: ReturnType<typeof setInterval>;
	private pongTimer?: ReturnType<typeof setTimeout>;
	/** The socket has had its `welcome`: pings are answered (before it, they get `not_identified`). */
	private identified = false;
	/**
	 * Rooms to join on this socket, one at a time: a join is a costly request
	 * the server limits per connection, and an answer must be traceable to it.
	 */
	private joinQueue: string[] = [];
	private joining?: string;
	private readonly joinRetries = new Map<string, number>();
	private readonly joinTimers = new Set<ReturnType<typeof setTimeout>>();
	/** Per room, the history requests out on this socket, oldest first. */
	private readonly asks = new Map<string, HistoryAsk[]>();
	/** Per room, the seq of a search result to read `around` once the room is joined. */
	private readonly wantAround = new Map<string, number>();
	/** Refs of searches out on this socket: an error carrying one answers that search. */
	private readonly searches = new Set<string>();
	private readonly listeners = new Set<(c: Change) => void>();
	private readonly storage?: Pick<Storage, "getItem" | "setItem">;
	private readonly delay: (attempt: number) => number;
	private readonly isOnline: () => boolean;

	constructor(private readonly options: ChatOptions) {
		this.storage = options.storage;
		this.delay = options.delay ?? ((a) => reconnectDelay(a, options.random));
		this.isOnline = options.isOnline ?? (() => true);
		this.name = this.storage?.getItem("hubbub.name") ?? undefined;
		// The rooms the person was in last time, so a reload keeps them.
		try {
			const saved: unknown = JSON.parse(this.storage?.getItem("hubbub.rooms") ?? "[]");
			if (Array.isArray(saved)) {
				for (const room of saved) if (typeof room === "string" && ROOM_PATTERN.test(room)) this.room(room);
			}
		} catch {
			// A damaged list is forgotten.
		}
	}

	on(listener: (c: Change) => void): () => void {
		this.listeners.add(listener);
		return () => this.listeners.delete(listener);
	}

	private emit(change: Change): void {
		for (const l of this.listeners) l(change);
	}

	/** The room's view, made (and remembered) if new. */
	room(name: string): RoomView {
		let r = this.rooms.get(name);
		if (!r) {
			r = emptyRoom(name);
			this.rooms.set(name, r);
			this.saveRooms();
		}
		return r;
	}

	/** The room's view, or an empty one that is not kept. */
	peek(name: string): RoomView {
		return this.rooms.get(name) ?? emptyRoom(name);
	}

	private saveRooms(): void {
		this.storage?.setItem("hubbub.rooms", JSON.stringify([...this.rooms.keys()]));
	}

	// ---- connection

	connect(): void {
		this.stopped = false;
		clearTimeout(this.retryTimer);
		this.setStatus({ kind: "connecting" });
		const ws = this.options.socket?.(this.options.url) ?? new WebSocket(this.options.url);
		this.socket = ws;
		this.identified = false;
		this.hellosSent = 0;
		this.welcomes = 0;
		let opened = false;
		ws.onopen = () => {
			opened = true;
			if (this.name) this.raw({ type: "hello", name: this.name });
			else {
				// Signed in (--auth accounts), the server welcomes us at once without a hello: give it a
				// moment before asking the person for a name, so the name form does not flash.
				setTimeout(() => {
					if (this.socket !== ws || this.name !== undefined) return;
					this.setStatus({ kind: "connected" });
					this.emit({ kind: "identity" });
				}, ASK_NAME_AFTER_MS);
			}
		};
		ws.onmessage = (event) => {
			// Any frame shows the connection works, so it answers an outstanding ping too.
			clearTimeout(this.pongTimer);
			this.pongTimer = undefined;
			const frame = typeof event.data === "string" ? parseServerFrame(event.data) : undefined;
			if (frame) this.receive(frame);
		};
		ws.onclose = (event) => {
			if (this.socket !== ws) return;
			this.drop(ws);
			if (this.stopped) return;
			if (event.code === CLOSE.sessionEnded) {
				// Signed out (elsewhere, or the account ended): reconnecting cannot help; signing in can.
				this.stopped = true;
				this.setStatus({ kind: "ended", deactivated: event.reason === DEACTIVATED_REASON });
				return;
			}
			if (!opened && this.options.checkUpgrade) this.askWhy(this.options.checkUpgrade);
			else this.scheduleReconnect();
		};
	}

	/** Forgets a socket that closed or stopped answering; its rooms are no longer joined. */
	private drop(ws: WebSocket): void {
		ws.onopen = null;
		ws.onmessage = null;
		ws.onclose = null;
		if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close();
		if (this.socket === ws) this.socket = undefined;
		this.identified = false;
		this.joinQueue = [];
		this.joining = undefined;
		for (const t of this.joinTimers) clearTimeout(t);
		this.joinTimers.clear();
		clearInterval(this.heartbeat);
		clearTimeout(this.pongTimer);
		this.heartbeat = undefined;
		this.pongTimer = undefined;
		for (const r of this.rooms.values()) {
			r.joined = false;
			r.loadingHistory = false;
		}
		// Their answers will not come; a search result still to open is read after the next join.
		this.asks.clear();
		for (const ref of this.searches) this.emit({ kind: "search-error", ref, code: "disconnected", text: "" });
		this.searches.clear();
	}

	/**
	 * A socket closed before it ever opened: the upgrade was refused. Ask the
	 * server why, so the person reads "this address is not allowed" instead of
	 * an endless countdown. A server without the check (404) or a failed fetch
	 * means an ordinary reconnect.
	 */
	private askWhy(check: () => Promise<UpgradeCheck | undefined>): void {
		this.setStatus({ kind: "connecting" });
		const retry = () => {
			if (!this.socket && !this.stopped && this.status.kind === "connecting") this.scheduleReconnect();
		};
		check().then((answer) => {
			if (!answer || answer.ok || !answer.message) return retry();
			if (this.socket || this.stopped) return;
			const wait = answer.retryAfter ? answer.retryAfter * 1000 : this.delay(this.attempt++);
			this.setStatus({ kind: "refused", message: answer.message, at: Date.now() + wait });
			this.retryTimer = setTimeout(() => this.connect(), wait);
		}, retry);
	}

	/** Reconnects now, e.g. when the browser says it is back online. */
	reconnectNow(): void {
		if (this.socket || this.stopped) return;
		this.connect();
	}

	/**
	 * Makes sure the connection still works: reconnects when there is none,
	 * pings when there is one. Called every PING_EVERY_MS and when the browser
	 * comes back online or the tab becomes visible again.
	 */
	checkConnection(): void {
		if (this.stopped) return;
		if (!this.socket) return this.reconnectNow();
		const ws = this.socket;
		if (!this.identified || this.pongTimer !== undefined) return;
		this.raw({ type: "ping" });
		this.pongTimer = setTimeout(() => {
			if (this.socket !== ws) return;
			// No answer: the network is gone even if the socket does not know it yet.
			this.drop(ws);
			this.scheduleReconnect();
		}, this.options.pongWithinMs ?? PONG_WITHIN_MS);
	}

	/** The browser says the network is gone: say so at once, and find out whether the socket survived. */
	wentOffline(): void {
		if (this.stopped) return;
		this.setStatus({ kind: "offline" });
		if (this.socket) this.checkConnection();
		else clearTimeout(this.retryTimer);
	}

	close(): void {
		this.stopped = true;
		clearTimeout(this.retryTimer);
		if (this.socket) this.drop(this.socket);
	}

	private scheduleReconnect(): void {
		clearTimeout(this.retryTimer);
		if (!this.isOnline()) {
			// The browser's `online` event brings it back (reconnectNow).
			this.setStatus({ kind: "offline" });
			return;
		}
		const wait = this.delay(this.attempt++);
		this.setStatus({ kind: "reconnecting", at: Date.now() + wait });
		this.retryTimer = setTimeout(() => this.connect(), wait);
	}

	private setStatus(status: Status): void {
		this.status = status;
		this.emit({ kind: "status" });
	}

	private raw(frame: ClientFrame): boolean {
		if (this.socket?.readyState !== WebSocket.OPEN) return false;
		this.socket.send(JSON.stringify(frame));
		if (frame.type === "hello") this.hellosSent++;
		return true;
	}

	// ---- what the person does

	/** Asks for a name; the answer arrives as an `identity` change. */
	identify(name: string): void {
		this.name = name.trim();
		if (!this.raw({ type: "hello", name: this.name })) this.reconnectNow();
	}

	/** Joins (or switches to) a room; false when the name is not a valid room. */
	open(room: string): boolean {
		if (!ROOM_PATTERN.test(room)) return false;
		const isNew = !this.rooms.has(room);
		const r = this.room(room);
		const before = this.rooms.get(this.current);
		if (before && before !== r) before.lineAfter = undefined;
		// What arrived since the person was last here gets a line above it, for as long as the room stays open.
		if (before !== r) r.lineAfter = r.unread > 0 ? r.lastRead : undefined;
		this.current = room;
		this.atNewest = true;
		this.seen(r);
		if (isNew) {
			this.emit({ kind: "rooms" });
			if (this.identified) this.requestJoin(room);
		}
		this.emit({ kind: "room", room });
		return true;
	}

	leave(room: string): void {
		this.raw({ type: "leave", room });
		this.readsDue.delete(room);
		this.rooms.delete(room);
		this.saveRooms();
		this.emit({ kind: "rooms" });
		if (this.current !== room) return;
		const next = this.rooms.keys().next().value;
		if (next !== undefined) this.open(next);
		else {
			// Left the last room: show that, rather than silently joining #general again.
			this.current = "";
			this.emit({ kind: "room", room: "" });
		}
	}

	/** The person looks at the page again (or away): looking marks the current room read. */
	setAttentive(attentive: boolean): void {
		this.attentive = attentive;
		if (attentive) this.markRead();
	}

	markRead(room = this.current): void {
		const r = this.rooms.get(room);
		if (!r) return;
		const had = r.unread > 0 || r.mentions > 0;
		r.unread = 0;
		r.mentions = 0;
		this.noteRead(r);
		if (had) this.emit({ kind: "rooms" });
	}

	/** The reader scrolled to the newest message (or away from it): at the newest, the room is read. */
	setAtNewest(atNewest: boolean): void {
		if (this.atNewest === atNewest) return;
		this.atNewest = atNewest;
		if (atNewest && this.attentive) this.markRead();
	}

	/** The person sees the newest messages of `r`: it is the room shown, the tab is in front and not scrolled up. */
	private looking(r: RoomView): boolean {
		// Reading around a search result (`newer`), the newest messages are not on screen.
		return r.name === this.current && this.attentive && this.atNewest && !r.newer;
	}

	/** Marks `r` read when the person is looking at it. */
	private seen(r: RoomView): void {
		if (this.looking(r)) this.markRead(r.name);
	}

	/** The person has read `r` to its newest message: remember it, and tell the server soon (accounts mode). */
	private noteRead(r: RoomView): void {
		const newest = newestSeq(r.messages, r.info);
		if (newest <= r.lastRead) return;
		r.lastRead = newest;
		if (!r.info) return;
		this.readsDue.add(r.name);
		this.flushReads();
	}

	/** Sends the due read positions now, or when READ_EVERY_MS has passed since the last ones. */
	private flushReads(): void {
		if (this.readTimer !== undefined || this.readsDue.size === 0 || !this.identified) return;
		const wait = this.lastReadSent + READ_EVERY_MS - Date.now();
		if (wait > 0) {
			this.readTimer = setTimeout(() => {
				this.readTimer = undefined;
				this.flushReads();
			}, wait);
			return;
		}
		this.lastReadSent = Date.now();
		for (const room of this.readsDue) {
			const r = this.rooms.get(room);
			if (r?.info && this.raw({ type: "read", room, seq: r.lastRead })) this.readsDue.delete(room);
		}
	}

	// ---- protocol 1.2 (--auth accounts): rooms, people, changes to messages

	/** Sends a request with a fresh ref; its answer comes back as an `answer` change (and a `room` or `update` frame). */
	private request(frame: Request): string | undefined {
		const ref = frame.ref ?? newId();
		if (!this.raw({ ...frame, ref } as ClientFrame)) return undefined;
		this.requests.set(ref, frame.type);
		return ref;
	}

	/** Creates a room (the creator is its first member); the page opens it when the server says it is there. */
	create(room: string, kind: "open" | "private", title?: string, topic?: string): string | undefined {
		return this.request({
			type: "create",
			room,
			kind,
			...(title ? { title } : {}),
			...(topic ? { topic } : {}),
		});
	}

	/** Opens the direct conversation with these people (made if new). */
	direct(names: string[]): string | undefined {
		return this.request({ type: "direct", names });
	}

	/** Asks for the open rooms matching `query`; the answer lands in `directory`. */
	findRooms(query = ""): string | undefined {
		return this.request({ type: "directory", ...(query ? { query } : {}) });
	}

	updateRoom(
		room: string,
		change: { title?: string; topic?: string; archived?: boolean },
	): string | undefined {
		return this.request({ type: "room_update", room, ...change });
	}

	addMember(room: string, name: string): string | undefined {
		return this.request({ type: "member_add", room, name });
	}

	removeMember(room: string, name: string): string | undefined {
		return this.request({ type: "member_remove", room, name });
	}

	edit(room: string, seq: number, text: string): string | undefined {
		return this.request({ type: "edit", room, seq, text });
	}

	remove(room: string, seq: number): string | undefined {
		return this.request({ type: "delete", room, seq });
	}

	/** Adds this person's reaction, or takes it back if they had it. */
	react(room: string, seq: number, emoji: string): string | undefined {
		const r = this.rooms.get(room);
		const m = r ? r.messages[indexOfSeq(r.messages, seq)] : undefined;
		if (!m || !this.name) return undefined;
		return this.request({ type: "react", room, seq, emoji, on: !reacted(m, emoji, this.name) });
	}

	/** The newest message `me` wrote in the room that may still be edited (Up arrow in an empty composer). */
	lastOwn(room = this.current): Message | undefined {
		const r = this.rooms.get(room);
		if (!r) return undefined;
		for (let i = r.messages.length - 1; i >= 0; i--) {
			const m = r.messages[i] as Message;
			if (m.from === this.name && !m.deleted) return m;
		}
		return undefined;
	}

	/** Unread messages over all rooms, for the tab title. */
	get unreadTotal(): number {
		let n = 0;
		for (const r of this.rooms.values()) n += r.unread;
		return n;
	}

	/**
	 * Sends text to the current room. It shows at once as pending and is
	 * resent with the same id after a reconnect until its echo arrives.
	 * Returns false (keep the text) when it cannot be sent at all.
	 */
	send(text: string, files: FileRef[] = []): boolean {
		if ((text.trim() === "" && files.length === 0) || [...text].length > LIMITS.textChars || !this.name)
			return false;
		// Files alone go with no text at all (the server refuses text of only spaces).
		if (text.trim() === "") text = "";
		const r = this.room(this.current);
		// Writing while reading an old part of the room: the message goes at the live end, so show that.
		if (r.newer) this.toLive(r);
		const pending: Pending = { id: newId(), text, ts: Date.now(), ...(files.length ? { files } : {}) };
		// A message ends "is typing" for the others, so the next keystroke may say it again at once.
		this.lastTypingSent = 0;
		r.pending.push(pending);
		this.emit({ kind: "pending", room: r.name });
		if (r.joined) this.raw(sendFrame(r.name, pending));
		return true;
	}

	/** Tells the room the person is typing, at most once every 2 s. */
	typing(now = Date.now()): void {
		const r = this.rooms.get(this.current);
		if (!r?.joined || now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
		this.lastTypingSent = now;
		this.raw({ type: "typing", room: r.name });
	}

	/** Asks for the page of messages before the oldest one shown. */
	loadOlder(room = this.current): void {
		const r = this.rooms.get(room);
		const first = r?.messages[0];
		if (!r?.more || r.loadingHistory || !r.joined || !first) return;
		r.loadingHistory = this.ask(room, "before", { type: "history", room, before: first.seq, limit: 50 });
	}

	/** Names typing in a room now, expired ones dropped. */
	typingNow(room: string, now = Date.now()): string[] {
		const r = this.rooms.get(room);
		if (!r) return [];
		for (const [name, until] of r.typing) if (until <= now) r.typing.delete(name);
		return [...r.typing.keys()];
	}

	// ---- search (protocol 1.1): asking, and opening a result in its room

	/** Sends a search; its answer comes as a `search` change (or `search-error`) carrying `ref`. */
	search(frame: Omit<ClientFrameOf<"search">, "type" | "limit"> & { ref: string; limit?: number }): boolean {
		if (!this.identified || !this.raw({ type: "search", limit: 20, ...frame })) return false;
		this.searches.add(frame.ref);
		return true;
	}

	/**
	 * Opens a search result: switches to `room` (joining it if need be) and
	 * shows message `seq` with its neighbours, read with history `around`. The
	 * room stays whole: see `newer`.
	 */
	openAt(room: string, seq: number): boolean {
		if (!this.open(room)) return false;
		const r = this.room(room);
		r.focus = seq;
		if (r.messages.some((m) => m.seq === seq)) this.wantAround.delete(room);
		else {
			this.wantAround.set(room, seq);
			if (r.joined) this.readAround(r, seq);
		}
		this.emit({ kind: "room", room });
		return true;
	}

	/** Asks for the next page below a search result (the reader scrolled down to the end of what is here). */
	loadNewer(room = this.current): void {
		const r = this.rooms.get(room);
		const last = r?.messages.at(-1)?.seq;
		if (!r?.newer || !r.joined || last === undefined || this.asks.get(room)?.includes("after")) return;
		this.ask(room, "after", { type: "history", room, after: last, limit: NEWER_PAGE });
	}

	/** "Jump to newest" below a search result: the live end at once when it is here, else the next page towards it. */
	goLive(room = this.current): void {
		const r = this.rooms.get(room);
		if (!r?.newer) return;
		if (r.held.length > 0) this.toLive(r);
		else this.loadNewer(room);
	}

	/** Leaves the search result's part of the room for its live end (what `held` has), if that is here. */
	private toLive(r: RoomView): void {
		if (r.held.length === 0) return;
		r.messages = r.held;
		r.held = [];
		r.newer = false;
		r.more = true;
		r.focus = undefined;
		this.emit({ kind: "room", room: r.name });
	}

	private ask(room: string, kind: HistoryAsk, frame: ClientFrameOf<"history">): boolean {
		if (!this.raw(frame)) return false;
		const asks = this.asks.get(room) ?? [];
		asks.push(kind);
		this.asks.set(room, asks);
		return true;
	}

	private readAround(r: RoomView, seq: number): void {
		if (this.asks.get(r.name)?.includes("around")) return;
		this.ask(r.name, "around", { type: "history", room: r.name, around: seq, limit: 50 });
	}

	private aroundPage(r: RoomView, frame: ServerFrameOf<"history">): void {
		const seq = this.wantAround.get(r.name);
		this.wantAround.delete(r.name);
		const page = frame.messages;
		const first = r.messages[0]?.seq;
		const lastOfPage = page.at(-1)?.seq;
		if (lastOfPage === undefined || (seq !== undefined && !page.some((m) => m.seq === seq))) {
			this.emit({ kind: "error", room: r.name, text: "That message is no longer in the room's history." });
			if (lastOfPage === undefined) return;
		}
		if (!r.newer && first !== undefined && lastOfPage >= first - 1) {
			// It reaches what is shown already (which goes on to the live end): one run, older part added.
			const older = page.filter((m) => m.seq < first);
			r.messages = [...older, ...r.messages];
			if (older.length > 0) r.more = frame.more;
			this.emit({ kind: "history", room: r.name, added: older.length });
			return;
		}
		// A part of the room away from what is shown: that becomes the live end's part, held below a hole.
		if (!r.newer) r.held = r.messages;
		r.messages = page;
		r.more = frame.more;
		r.newer = frame.newer ?? r.held.length > 0;
		this.closeHole(r);
		this.emit({ kind: "history", room: r.name, added: page.length });
		this.loadNewer(r.name);
	}

	private afterPage(r: RoomView, frame: ServerFrameOf<"history">): void {
		if (!r.newer) return;
		const last = r.messages.at(-1)?.seq ?? 0;
		const added = frame.messages.filter((m) => m.seq > last);
		r.messages.push(...added);
		// A page of nothing would ask again forever: with nothing after `last`, nothing is newer.
		r.newer = added.length > 0 && frame.newer === true;
		this.closeHole(r);
		this.emit({ kind: "history", room: r.name, added: added.length });
	}

	/** Joins the held live end on once the pages reach it (or once nothing newer is left to read). */
	private closeHole(r: RoomView): void {
		const last = r.messages.at(-1)?.seq ?? 0;
		r.held = r.held.filter((m) => m.seq > last);
		if (r.newer && r.held[0]?.seq !== last + 1) return;
		r.messages.push(...r.held);
		r.held = [];
		r.newer = false;
	}

	/** A refused `history` (busy server): take its place in the queue back and ask again later. */
	private historyFailed(frame: ServerFrameOf<"error">): boolean {
		const room = frame.room;
		const asks = room === undefined || room === this.joining ? undefined : this.asks.get(room);
		const kind = asks?.shift();
		if (room === undefined || kind === undefined) return false;
		const r = this.rooms.get(room);
		if (!r) return true;
		if (kind === "before") r.loadingHistory = false;
		const again = () => {
			if (kind === "before") this.loadOlder(room);
			else if (kind === "after") this.loadNewer(room);
			else {
				const seq = this.wantAround.get(room);
				if (seq !== undefined && r.joined) this.readAround(r, seq);
			}
		};
		if (frame.code === "rate_limited" || frame.code === "server_error")
			setTimeout(again, SERVER_ERROR_RETRY_MS);
		else this.emit({ kind: "error", room, text: frame.message });
		return true;
	}

	// ---- what the server says

	receive(frame: ServerFrame): void {
		switch (frame.type) {
			case "welcome":
				return this.welcomed(frame);
			case "joined":
				return this.joined(frame);
			case "message":
				return this.message(frame);
			case "history":
				return this.history(frame);
			case "search":
				if (frame.ref !== undefined) this.searches.delete(frame.ref);
				return this.emit({ kind: "search", frame });
			case "presence":
				return this.presence(frame);
			case "typing":
				return this.typed(frame);
			case "left":
				return;
			case "pong":
				// Answered while the browser still said offline: the connection works.
				if (this.status.kind === "offline" && this.identified) this.setStatus({ kind: "connected" });
				return;
			case "error":
				return this.failed(frame);
			case "room":
				return this.roomInfo(frame.room, frame.ref);
			case "room_gone":
				return this.roomGone(frame.room);
			case "directory":
				this.answered(frame.ref);
				this.directory = { ref: frame.ref ?? "", rooms: frame.rooms };
				return this.emit({ kind: "directory" });
			case "read":
				return this.readElsewhere(frame);
			case "update":
				return this.updated(frame);
		}
	}

	/** Takes a request off the outstanding list and says it was answered. */
	private answered(ref: string | undefined, error?: ServerFrameOf<"error">): boolean {
		if (ref === undefined || !this.requests.delete(ref)) return false;
		this.emit({ kind: "answer", ref, error: error?.message, code: error?.code });
		return true;
	}

	/** A room this account is in appeared or changed; a room we asked for (create, direct) is opened. */
	private roomInfo(info: RoomInfo, ref?: string): void {
		const isNew = !this.rooms.has(info.room);
		const r = this.room(info.room);
		// Someone was added or removed: a room frame without its people (open rooms) means asking again.
		const grew = r.info !== undefined && r.info.members !== info.members && !info.people;
		this.take(r, info);
		const asked = ref !== undefined && this.requests.get(ref);
		this.answered(ref);
		if (isNew && this.identified) this.requestJoin(info.room);
		if (asked === "create" || asked === "direct") this.open(info.room);
		if (grew && r.joined) {
			r.joined = false;
			this.requestJoin(info.room);
		}
		this.emit({ kind: "rooms" });
		this.emit({ kind: "room", room: info.room });
	}

	/**
	 * The server's view of a room, and its counts unless the person is reading
	 * it now. `arriving` (welcome, joined): the room shown gets the "new since
	 * you were here" line above what this account has not read.
	 */
	private take(r: RoomView, info: RoomInfo, arriving = false): void {
		r.info = info;
		if (info.people) r.people = [...info.people].sort(byName);
		if (arriving && r.name === this.current && r.lineAfter === undefined && info.unread > 0)
			r.lineAfter = info.lastRead;
		r.lastRead = Math.max(r.lastRead, info.lastRead);
		if (this.looking(r)) return this.seen(r);
		r.unread = info.unread;
		r.mentions = info.mentions;
	}

	/** This account is not in the room any more (left on another device, or removed). */
	private roomGone(room: string): void {
		if (!this.rooms.has(room)) return;
		this.rooms.delete(room);
		this.readsDue.delete(room);
		this.saveRooms();
		this.emit({ kind: "rooms" });
		if (this.current !== room) return;
		const next = this.rooms.keys().next().value;
		if (next !== undefined) this.open(next);
		else {
			this.current = "";
			this.emit({ kind: "room", room: "" });
		}
	}

	/** The read position moved on another of this account's connections (or this one). */
	private readElsewhere(frame: ServerFrameOf<"read">): void {
		const r = this.rooms.get(frame.room);
		if (!r || frame.seq < r.lastRead) return;
		r.lastRead = frame.seq;
		r.unread = frame.unread;
		r.mentions = frame.mentions;
		this.emit({ kind: "rooms" });
	}

	/** A stored message changed: what is held for its seq is replaced, so an old text never shows again. */
	private updated(frame: ServerFrameOf<"update">): void {
		this.answered(frame.ref);
		const r = this.rooms.get(frame.room);
		if (!r) return;
		r.change = Math.max(r.change, frame.change);
		// Held live messages (below a search result's hole) change too.
		if (applyUpdates(r.messages, [frame.message]) + applyUpdates(r.held, [frame.message]) > 0)
			this.emit({ kind: "update", room: r.name, message: frame.message });
	}

	/**
	 * After a reconnect our own name can still be held by our previous
	 * connection, until the server notices it is gone (at most its idle
	 * timeout). Ask again for a while before asking the person for a name.
	 */
	private reclaiming(): boolean {
		if (!this.name || this.welcomedAs?.toLowerCase() !== this.name.toLowerCase()) return false;
		const now = Date.now();
		if (this.reclaimUntil === 0) this.reclaimUntil = now + RECLAIM_NAME_MS;
		if (now >= this.reclaimUntil) return false;
		if (this.status.kind !== "reclaiming") {
			this.setStatus({ kind: "reclaiming", name: this.name, until: this.reclaimUntil });
		}
		setTimeout(() => {
			if (this.name) this.raw({ type: "hello", name: this.name });
		}, RECLAIM_EVERY_MS);
		return true;
	}

	private welcomed(frame: ServerFrameOf<"welcome">): void {
		this.welcomedAs = frame.name;
		if (++this.welcomes > this.hellosSent || frame.rooms) this.accounts = true;
		this.role = frame.role;
		this.reclaimUntil = 0;
		this.attempt = 0;
		this.name = frame.name;
		this.storage?.setItem("hubbub.name", frame.name);
		if (this.epoch !== undefined && this.epoch !== frame.epoch) {
			// A new history: our seqs name other messages now. Start the rooms afresh.
			for (const r of this.rooms.values()) {
				r.messages = [];
				r.more = false;
				r.newer = false;
				r.held = [];
				r.focus = undefined;
			}
			this.emit({ kind: "system", text: "The server's history was replaced; showing it afresh." });
		}
		this.epoch = frame.epoch;
		this.identified = true;
		this.setStatus({ kind: "connected" });
		this.emit({ kind: "identity" });
		clearInterval(this.heartbeat);
		this.heartbeat = setInterval(() => this.checkConnection(), this.options.pingEveryMs ?? PING_EVERY_MS);
		if (frame.rooms) this.memberOf(frame.rooms);
		else if (this.current) this.room(this.current);
		this.welcomedBefore = true;
		for (const r of this.rooms.values()) this.requestJoin(r.name);
		this.flushReads();
		this.emit({ kind: "rooms" });
	}

	/**
	 * --auth accounts: the server's list of this account's rooms is the truth.
	 * Rooms the page remembered but the account left (on another device) are
	 * dropped; a room the page's address named when it loaded is joined.
	 */
	private memberOf(infos: RoomInfo[]): void {
		const listed = new Set(infos.map((i) => i.room));
		const keep = !this.welcomedBefore ? this.linked : undefined;
		for (const name of [...this.rooms.keys()]) {
			if (!listed.has(name) && name !== keep) this.rooms.delete(name);
		}
		for (const info of infos) this.take(this.room(info.room), info, true);
		this.saveRooms();
		if (!this.rooms.has(this.current)) {
			const first = this.rooms.keys().next().value;
			this.current = "";
			if (first !== undefined) this.open(first);
			else this.emit({ kind: "room", room: "" });
		}
	}

	/** Queues a join of `room` (resuming with `since` when it has messages); joins go one at a time. */
	private requestJoin(room: string): void {
		if (this.joining === room || this.joinQueue.includes(room)) return;
		this.joinQueue.push(room);
		this.nextJoin();
	}

	private nextJoin(): void {
		while (!this.joining && this.identified) {
			const room = this.joinQueue.shift();
			if (room === undefined) return;
			const r = this.rooms.get(room);
			if (!r || r.joined) continue;
			const since = r.messages.at(-1)?.seq;
			const frame: ClientFrame =
				since === undefined
					? { type: "join", room }
					: r.info
						? { type: "join", room, since, changes: r.change }
						: { type: "join", room, since };
			if (this.raw(frame)) this.joining = room;
		}
	}

	/**
	 * A join was refused. Busy or failing servers (`rate_limited`,
	 * `server_error`) get it again with backoff; any other answer is final and
	 * said to the person. The other rooms' joins go on meanwhile.
	 */
	private joinFailed(room: string, frame: ServerFrameOf<"error">): void {
		if (this.joining === room) this.joining = undefined;
		if (frame.code === "not_found" && this.accounts) {
			// Not a room this account can see (or no longer): it leaves the list.
			this.emit({ kind: "error", room, text: frame.message });
			this.roomGone(room);
		} else if (frame.code === "rate_limited" || frame.code === "server_error") {
			const attempt = this.joinRetries.get(room) ?? 0;
			this.joinRetries.set(room, attempt + 1);
			const timer = setTimeout(() => {
				this.joinTimers.delete(timer);
				this.requestJoin(room);
			}, this.delay(attempt));
			this.joinTimers.add(timer);
		} else {
			this.emit({ kind: "error", room, text: frame.message });
		}
		this.nextJoin();
	}

	private joined(frame: ServerFrameOf<"joined">): void {
		if (this.joining === frame.room) this.joining = undefined;
		this.joinRetries.delete(frame.room);
		this.nextJoin();
		const r = this.room(frame.room);
		const since = r.messages.at(-1)?.seq;
		// `reset` (a newer server): our position is past the room's end, so what we hold is not its history.
		const reset = frame.reset === true;
		// A join answers with everything after `since` (or the newest, with `more`): a hole below the live end is closed.
		r.newer = false;
		r.held = [];
		// Changes to messages we hold (edits, deletions, reactions) made while we were away.
		if (frame.updates && since !== undefined && !reset) applyUpdates(r.messages, frame.updates);
		if (frame.change !== undefined) r.change = frame.change;
		if (frame.people) r.people = [...frame.people].sort(byName);
		if (frame.info) {
			if (since === undefined || reset || frame.more) {
				r.messages = frame.messages;
				r.more = frame.more;
				r.presence = [];
			} else r.messages.push(...frame.messages.filter((m) => m.seq > since));
			// The server counts what this account has not read: counting the missed messages here would double it.
			this.take(r, frame.info, true);
		} else if (since === undefined || reset) {
			r.messages = frame.messages;
			r.more = frame.more;
			r.presence = [];
		} else if (frame.more) {
			// More was missed than one frame holds: show the newest, older on scroll. All of it is unread.
			const missed = frame.messages.filter((m) => m.seq > since);
			const skipped = Math.max(0, (missed[0]?.seq ?? since + 1) - since - 1);
			r.messages = frame.messages;
			r.more = true;
			r.presence = [];
			this.count(r, missed);
			if (skipped > 0 && !this.looking(r)) r.unread += skipped;
		} else {
			const missed = frame.messages.filter((m) => m.seq > since);
			r.messages.push(...missed);
			// Messages that arrived while we were away are unread like any other.
			this.count(r, missed);
		}
		r.joined = true;
		r.members = [...frame.members].sort(byName);
		this.settlePending(r, frame.messages);
		this.seen(r);
		this.emit({ kind: "room", room: r.name });
		this.emit({ kind: "members", room: r.name });
		// Resend what was never acknowledged, with the same ids: the server stores each once.
		for (const p of r.pending) this.raw(sendFrame(r.name, p));
		const around = this.wantAround.get(r.name);
		if (around !== undefined) this.readAround(r, around);
	}

	private message(m: Message): void {
		const r = this.rooms.get(m.room);
		if (!r) return;
		const last = (r.newer ? r.held.at(-1)?.seq : undefined) ?? r.messages.at(-1)?.seq ?? 0;
		const settled = this.settlePending(r, [m]);
		if (m.seq <= last) {
			// An echo of something already shown (a resend the server had stored).
			if (settled) this.emit({ kind: "pending", room: r.name });
			return;
		}
		// Below a hole (reading from a search result), a live message waits until the pages reach it.
		if (r.newer) r.held.push(m);
		else r.messages.push(m);
		r.typing.delete(m.from);
		this.count(r, [m]);
		this.emit({ kind: "message", room: r.name, message: m });
		if (settled) this.emit({ kind: "pending", room: r.name });
		this.emit({ kind: "typing", room: r.name });
	}

	/** Counts messages from others as unread (and mentions) unless the person is looking at their room. */
	private count(r: RoomView, messages: Message[]): void {
		if (this.looking(r)) return this.seen(r);
		let counted = false;
		for (const m of messages) {
			if (m.from === this.name) continue;
			const mention = mentions(m.text, this.name);
			r.unread++;
			if (mention) r.mentions++;
			counted = true;
			this.emit({ kind: "unseen", room: r.name, message: m, mention });
		}
		if (counted) this.emit({ kind: "rooms" });
	}

	/** Drops pending sends whose echo is among `messages`; true when any was. */
	private settlePending(r: RoomView, messages: Message[]): boolean {
		if (r.pending.length === 0) return false;
		const echoed = new Set(
			messages.filter((m) => m.from === this.name && m.id !== undefined).map((m) => m.id),
		);
		const before = r.pending.length;
		r.pending = r.pending.filter((p) => !echoed.has(p.id));
		return r.pending.length !== before;
	}

	private history(frame: ServerFrameOf<"history">): void {
		const r = this.rooms.get(frame.room);
		if (!r) return;
		const asked = this.asks.get(frame.room)?.shift();
		if (asked === "around") return this.aroundPage(r, frame);
		if (asked === "after") return this.afterPage(r, frame);
		r.loadingHistory = false;
		const first = r.messages[0]?.seq ?? Number.POSITIVE_INFINITY;
		const older = frame.messages.filter((m) => m.seq < first);
		r.messages = [...older, ...r.messages];
		r.more = frame.more;
		this.emit({ kind: "history", room: r.name, added: older.length });
	}

	private presence(frame: ServerFrameOf<"presence">): void {
		const r = this.rooms.get(frame.room);
		if (!r) return;
		// In place and by binary search: a flood of presence frames must stay cheap in a big room.
		const at = sortedIndex(r.members, frame.name);
		const present = r.members[at] === frame.name;
		if (frame.online && !present) r.members.splice(at, 0, frame.name);
		else if (!frame.online && present) r.members.splice(at, 1);
		if (!frame.online) r.typing.delete(frame.name);
		notePresence(r, frame.name, frame.online);
		this.emit({ kind: "members", room: r.name });
	}

	private typed(frame: ServerFrameOf<"typing">): void {
		const r = this.rooms.get(frame.room);
		if (!r) return;
		r.typing.set(frame.name, Date.now() + TYPING_SHOWN_MS);
		this.emit({ kind: "typing", room: r.name });
	}

	private failed(frame: ServerFrameOf<"error">): void {
		// A refused 1.2 request (create, edit, react…) is told to whoever asked, never taken for a join's answer.
		if (this.answered(frame.ref, frame)) return;
		if (frame.ref !== undefined && this.searches.delete(frame.ref)) {
			return this.emit({ kind: "search-error", ref: frame.ref, code: frame.code, text: frame.message });
		}
		if (this.historyFailed(frame)) return;
		// An error answering a join names its room (newer servers); from an older one, an error without a
		// `ref` while a join is out is that join's (joins go one at a time, sends always carry their id).
		const named = "room" in frame && typeof frame.room === "string" ? frame.room : undefined;
		// A refused send names its room too (accounts: read_only): it is the send's answer, by its id.
		const sending =
			frame.ref !== undefined &&
			[...this.rooms.values()].some((r) => r.pending.some((p) => p.id === frame.ref));
		// A room-named error answers that room's join while it is out or the room is not joined yet.
		const joinRoom = sending
			? undefined
			: named !== undefined
				? named === this.joining || !this.rooms.get(named)?.joined
					? named
					: undefined
				: frame.ref === undefined && JOIN_ERRORS.has(frame.code)
					? this.joining
					: undefined;
		if (joinRoom !== undefined) return this.joinFailed(joinRoom, frame);
		// Otherwise a room-named error without a ref is a typing frame too many: nothing was lost, nothing to say.
		if (named !== undefined && frame.ref === undefined && frame.code === "rate_limited") return;
		switch (frame.code) {
			case "name_taken":
				if (this.reclaiming()) return;
				this.name = undefined;
				this.emit({ kind: "identity", error: frame.message, code: frame.code });
				return;
			case "invalid_name":
				this.name = undefined;
				this.emit({ kind: "identity", error: frame.message, code: frame.code });
				return;
			case "already_identified":
				// Signed in as an account: the welcome names who we are, whatever was asked.
				this.accounts = true;
				this.emit({ kind: "identity" });
				return;
			case "server_error": {
				// Nothing was stored: keep it pending and try again shortly with the same id.
				const r = [...this.rooms.values()].find((room) => room.pending.some((p) => p.id === frame.ref));
				if (r) {
					setTimeout(() => {
						const p = r.pending.find((x) => x.id === frame.ref);
						if (p && r.joined) this.raw(sendFrame(r.name, p));
					}, SERVER_ERROR_RETRY_MS);
					return;
				}
				break;
			}
			default: {
				// Refused for good (too fast, too long): take it back and give the text back to the writer.
				for (const r of this.rooms.values()) {
					const p = r.pending.find((x) => x.id === frame.ref);
					if (!p) continue;
					r.pending = r.pending.filter((x) => x !== p);
					this.emit({ kind: "pending", room: r.name });
					this.emit({ kind: "error", room: r.name, text: frame.message, restore: p.text });
					return;
				}
			}
		}
		this.emit({ kind: "error", text: frame.message });
	}
}

function emptyRoom(name: string): RoomView {
	return {
		name,
		messages: [],
		pending: [],
		members: [],
		unread: 0,
		mentions: 0,
		typing: new Map(),
		more: false,
		presence: [],
		joined: false,
		loadingHistory: false,
		people: [],
		change: 0,
		lastRead: 0,
		newer: false,
		held: [],
	};
}

/**
 * Adds a join or leave to the room's presence lines. Changes with no message
 * between them share one line that keeps only the net change, so a person who
 * flaps or a flood of joins and leaves makes one line, not thousands.
 */
export function notePresence(r: RoomView, name: string, online: boolean): void {
	const after = r.messages.at(-1)?.seq ?? 0;
	let line = r.presence.at(-1);
	if (!line || line.after !== after) {
		line = { after, joined: [], left: [] };
		r.presence.push(line);
		if (r.presence.length > PRESENCE_LINES_KEPT) r.presence.shift();
	}
	const [same, opposite] = online ? [line.joined, line.left] : [line.left, line.joined];
	const undone = opposite.indexOf(name);
	if (undone >= 0) opposite.splice(undone, 1);
	else if (!same.includes(name)) same.push(name);
}

const collator = new Intl.Collator(undefined, { sensitivity: "base" });

/** Member order: case-insensitive, then by code points so that distinct names never compare equal. */
function byName(a: string, b: string): number {
	return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Where `name` is or would go in the sorted list. */
function sortedIndex(list: string[], name: string): number {
	let lo = 0;
	let hi = list.length;
	while (lo < hi) {
		const mid = (lo + hi) >> 1;
		if (byName(list[mid] as string, name) < 0) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

function newId(): string {
	return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
