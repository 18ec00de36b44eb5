// The page's model of the chat: rooms, messages, pending sends and the connection, with no DOM.
import {
	type ClientFrame,
	LIMITS,
	type Message,
	parseServerFrame,
	ROOM_PATTERN,
	type ServerFrame,
	type ServerFrameOf,
} from "../protocol.ts";

export const TYPING_SHOWN_MS = 4000;
export const TYPING_SEND_EVERY_MS = 2000;
const SERVER_ERROR_RETRY_MS = 3000;
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
}

export interface RoomView {
	name: string;
	/** Confirmed messages, ascending by seq. */
	messages: Message[];
	/** Sent, not yet echoed, in the order written. */
	pending: Pending[];
	members: string[];
	unread: number;
	/** Name → when its "is typing" expires (ms since epoch). */
	typing: Map<string, number>;
	/** Older messages exist than the first in `messages`. */
	more: boolean;
	joined: boolean;
	loadingHistory: boolean;
}

export type Status =
	| { kind: "connecting" }
	| { kind: "connected" }
	| { kind: "reconnecting"; at: number }
	| { kind: "offline" };

/** What changed, so the view redraws only that. */
export type Change =
	| { kind: "status" }
	| { kind: "identity"; error?: string }
	| { kind: "rooms" }
	| { kind: "room"; room: string }
	| { kind: "message"; room: string; message: Message }
	| { kind: "pending"; room: string }
	| { kind: "history"; room: string; added: number }
	| { kind: "members"; room: string }
	| { kind: "typing"; room: string }
	| { kind: "system"; room?: string; text: string }
	| { kind: "error"; room?: string; text: string; restore?: string };

export interface ChatOptions {
	url: string;
	storage?: Pick<Storage, "getItem" | "setItem">;
	random?: () => number;
	delay?: (attempt: number) => number;
	isOnline?: () => boolean;
}

/** One chat session: survives reconnects, resumes rooms with `since`, resends what was not acknowledged. */
export class Chat {
	readonly rooms = new Map<string, RoomView>();
	current = "general";
	name?: string;
	epoch?: string;
	status: Status = { kind: "connecting" };
	private socket?: WebSocket;
	private attempt = 0;
	private retryTimer?: ReturnType<typeof setTimeout>;
	private lastTypingSent = 0;
	/** The name the server last welcomed us with, and until when we wait for it to be ours again. */
	private welcomedAs?: string;
	private reclaimUntil = 0;
	private stopped = false;
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
		const ws = new WebSocket(this.options.url);
		this.socket = ws;
		ws.onopen = () => {
			if (this.name) this.raw({ type: "hello", name: this.name });
			else this.emit({ kind: "identity" });
		};
		ws.onmessage = (event) => {
			const frame = typeof event.data === "string" ? parseServerFrame(event.data) : undefined;
			if (frame) this.receive(frame);
		};
		ws.onclose = () => {
			if (this.socket !== ws) return;
			this.socket = undefined;
			for (const r of this.rooms.values()) r.joined = false;
			if (this.stopped) return;
			this.emit({ kind: "system", text: "Connection lost." });
			this.scheduleReconnect();
		};
	}

	/** Reconnects now, e.g. when the browser says it is back online. */
	reconnectNow(): void {
		if (this.socket || this.stopped) return;
		this.connect();
	}

	/** Goes offline until `reconnectNow`: the browser said the network is gone. */
	wentOffline(): void {
		if (this.socket) return;
		clearTimeout(this.retryTimer);
		this.setStatus({ kind: "offline" });
	}

	close(): void {
		this.stopped = true;
		clearTimeout(this.retryTimer);
		this.socket?.close();
		this.socket = undefined;
	}

	private scheduleReconnect(): void {
		if (!this.isOnline()) {
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
		this.current = room;
		r.unread = 0;
		if (isNew) {
			this.emit({ kind: "rooms" });
			if (this.status.kind === "connected") this.raw({ type: "join", room });
		}
		this.emit({ kind: "room", room });
		return true;
	}

	leave(room: string): void {
		this.raw({ type: "leave", room });
		this.rooms.delete(room);
		this.saveRooms();
		this.emit({ kind: "rooms" });
		if (this.current === room) this.open(this.rooms.keys().next().value ?? "general");
	}

	/**
	 * Sends text to the current room. It shows at once as pending and is
	 * resent with the same id after a reconnect until its echo arrives.
	 * Returns false (keep the text) when it cannot be sent at all.
	 */
	send(text: string): boolean {
		if (text.trim() === "" || [...text].length > LIMITS.textChars || !this.name) return false;
		const r = this.room(this.current);
		const pending: Pending = { id: newId(), text, ts: Date.now() };
		r.pending.push(pending);
		this.emit({ kind: "pending", room: r.name });
		if (r.joined) this.raw({ type: "send", room: r.name, id: pending.id, text });
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
		r.loadingHistory = this.raw({ type: "history", room, before: first.seq, limit: 50 });
	}

	/** Names typing in a room now, expired ones dropped. */
	typingNow(room: string, now = Date.now()): string[] {
		const r = this.rooms.get(room);
		if (!r) return [];
		for (const [name, until] of r.typing) if (until <= now) r.typing.delete(name);
		return [...r.typing.keys()];
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
			case "presence":
				return this.presence(frame);
			case "typing":
				return this.typed(frame);
			case "left":
				return;
			case "pong":
				return;
			case "error":
				return this.failed(frame);
		}
	}

	/**
	 * After a reconnect our own name can still be held by our previous
	 * connection, until the server notices it is gone (at most its idle
	 * timeout). Ask again for a while before asking the person for a name.
	 */
	private reclaiming(): boolean {
		if (!this.name || this.welcomedAs?.toLowerCase() !== this.name.toLowerCase()) return false;
		const now = Date.now();
		if (this.reclaimUntil === 0) {
			this.reclaimUntil = now + RECLAIM_NAME_MS;
			this.emit({
				kind: "system",
				text: "Your previous connection is still open on the server; trying again…",
			});
		}
		if (now >= this.reclaimUntil) return false;
		setTimeout(() => {
			if (this.name) this.raw({ type: "hello", name: this.name });
		}, RECLAIM_EVERY_MS);
		return true;
	}

	private welcomed(frame: ServerFrameOf<"welcome">): void {
		const resumed = this.epoch !== undefined;
		this.welcomedAs = frame.name;
		this.reclaimUntil = 0;
		this.attempt = 0;
		this.name = frame.name;
		this.storage?.setItem("hubbub.name", frame.name);
		if (this.epoch !== undefined && this.epoch !== frame.epoch) {
			// A new history: our seqs name other messages now. Start the rooms afresh.
			for (const r of this.rooms.values()) {
				r.messages = [];
				r.more = false;
			}
			this.emit({ kind: "system", text: "The server's history was replaced; showing it afresh." });
		}
		this.epoch = frame.epoch;
		this.setStatus({ kind: "connected" });
		this.emit({ kind: "identity" });
		if (resumed) this.emit({ kind: "system", text: "Connected." });
		this.room(this.current);
		for (const r of this.rooms.values()) {
			const since = r.messages.at(-1)?.seq;
			this.raw(since === undefined ? { type: "join", room: r.name } : { type: "join", room: r.name, since });
		}
		this.emit({ kind: "rooms" });
	}

	private joined(frame: ServerFrameOf<"joined">): void {
		const r = this.room(frame.room);
		const since = r.messages.at(-1)?.seq;
		if (since === undefined || frame.more) {
			// First join, or more was missed than one frame holds: show the newest, older on scroll.
			r.messages = frame.messages;
			r.more = frame.more;
		} else {
			for (const m of frame.messages) if (m.seq > since) r.messages.push(m);
		}
		r.joined = true;
		r.members = [...frame.members].sort(byName);
		this.settlePending(r, frame.messages);
		this.emit({ kind: "room", room: r.name });
		this.emit({ kind: "members", room: r.name });
		// Resend what was never acknowledged, with the same ids: the server stores each once.
		for (const p of r.pending) this.raw({ type: "send", room: r.name, id: p.id, text: p.text });
	}

	private message(m: Message): void {
		const r = this.rooms.get(m.room);
		if (!r) return;
		const last = r.messages.at(-1)?.seq ?? 0;
		const settled = this.settlePending(r, [m]);
		if (m.seq <= last) {
			// An echo of something already shown (a resend the server had stored).
			if (settled) this.emit({ kind: "pending", room: r.name });
			return;
		}
		r.messages.push(m);
		r.typing.delete(m.from);
		if (m.room !== this.current && m.from !== this.name) {
			r.unread++;
			this.emit({ kind: "rooms" });
		}
		this.emit({ kind: "message", room: r.name, message: m });
		if (settled) this.emit({ kind: "pending", room: r.name });
		this.emit({ kind: "typing", room: r.name });
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
		const others = r.members.filter((n) => n !== frame.name);
		r.members = frame.online ? [...others, frame.name].sort(byName) : others;
		if (!frame.online) r.typing.delete(frame.name);
		this.emit({ kind: "members", room: r.name });
		this.emit({ kind: "system", room: r.name, text: `${frame.name} ${frame.online ? "joined" : "left"}.` });
	}

	private typed(frame: ServerFrameOf<"typing">): void {
		const r = this.rooms.get(frame.room);
		if (!r) return;
		r.typing.set(frame.name, Date.now() + TYPING_SHOWN_MS);
		this.emit({ kind: "typing", room: r.name });
	}

	private failed(frame: ServerFrameOf<"error">): void {
		switch (frame.code) {
			case "name_taken":
				if (this.reclaiming()) return;
				this.name = undefined;
				this.emit({ kind: "identity", error: frame.message });
				return;
			case "invalid_name":
				this.name = undefined;
				this.emit({ kind: "identity", error: frame.message });
				return;
			case "already_identified":
				return;
			case "server_error": {
				// Nothing was stored: keep it pending and try again shortly with the same id.
				const r = [...this.rooms.values()].find((room) => room.pending.some((p) => p.id === frame.ref));
				if (r) {
					setTimeout(() => {
						const p = r.pending.find((x) => x.id === frame.ref);
						if (p && r.joined) this.raw({ type: "send", room: r.name, id: p.id, text: p.text });
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
		typing: new Map(),
		more: false,
		joined: false,
		loadingHistory: false,
	};
}

function byName(a: string, b: string): number {
	return a.localeCompare(b, undefined, { sensitivity: "base" });
}

function newId(): string {
	return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
