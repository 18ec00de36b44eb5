// A soak client: behaves as the page does (client/chat.ts) across faults, and logs every frame it
// sends and receives for the checker. Resends unacknowledged sends with their ids after a reconnect,
// resumes each room with `since`, starts afresh on a new epoch or a `reset`, and pages back with
// `history` to fill what a `more: true` resume left out. Under --auth accounts it also edits, deletes and
// reacts to its own messages, keeps what it holds as the page does (a version replaces a held one only when
// its `change` is higher), and resumes with `changes`.
import {
	CLOSE,
	type ClientFrame,
	LIMITS,
	type Message,
	parseServerFrame,
	type ServerFrame,
} from "../protocol.ts";
import type { Entry, Msg } from "./check.ts";
import type { Rng } from "./rng.ts";
import { Wire } from "./wire.ts";

/** The page pings every 20 s and gives up after 10 s without a pong; the soak runs that clock faster. */
const PING_EVERY_MS = 4000;
const PONG_WITHIN_MS = 6000;
const UPGRADE_WITHIN_MS = 5000;
const RETRY_NAME_MS = 1000;
const SERVER_ERROR_RETRY_MS = 1000;

interface Pending {
	id: string;
	text: string;
}

interface RoomState {
	/** Highest seq shown (the page's `messages.at(-1).seq`); undefined before anything was seen. */
	last?: number;
	joined: boolean;
	pending: Pending[];
	/** Ranges a `more: true` resume left out, still to be fetched with `history` (inclusive). */
	holes: [number, number][];
	/** The join or history request out for this room on this connection (one at a time per room). */
	asking?: { kind: "join" } | { kind: "history"; before: number };
	/** --auth accounts: the highest change received (joined.change, update.change), sent back as join.changes. */
	change?: number;
	/** --auth accounts: what the page shows, by seq: each message as its newest version received. */
	held: Map<number, Msg>;
}

export interface Target {
	port(): number | undefined;
}

export class SoakClient {
	readonly entries: Entry[] = [];
	readonly rooms = new Map<string, RoomState>();
	private wire?: Wire;
	private conn = 0;
	private epoch?: string;
	private welcomed = false;
	private attempt = 0;
	private sent = 0;
	private stopped = false;
	private lastFrameAt = 0;
	private pingAt = 0;
	private timers = new Set<ReturnType<typeof setTimeout>>();
	private heartbeat?: ReturnType<typeof setInterval>;
	/** Rooms left on this connection whose `left` has not come yet: not joined again until it does. */
	private leaving = new Set<string>();
	/** Frames received, for the settle phase to see when everything went quiet. */
	received = 0;
	/** What the server sent that no client should ever get (reported as violations). */
	readonly oddities: string[] = [];

	constructor(
		readonly name: string,
		private readonly targets: Target[],
		private readonly rng: Rng,
		rooms: string[],
		/** --auth accounts: the session cookie (`hubbub_session=…`) its connections present. */
		private readonly cookie?: string,
	) {
		for (const r of rooms) this.rooms.set(r, emptyRoom());
	}

	get connected(): boolean {
		return this.welcomed && this.wire?.open === true;
	}

	/** Connected, in every room, nothing pending or missing: what the settle phase waits for. */
	get settled(): boolean {
		if (!this.connected) return false;
		for (const r of this.rooms.values())
			if (!r.joined || r.asking || r.pending.length > 0 || r.holes.length > 0) return false;
		return true;
	}

	/** Has seen every room it is in up to the store's last seq (and, with `changes`, its last change). */
	reached(heads: Map<string, number>, changes?: Map<string, number>): boolean {
		for (const [room, r] of this.rooms) {
			if ((r.last ?? 0) < (heads.get(room) ?? 0)) return false;
			if (changes && (r.change ?? 0) < (changes.get(room) ?? 0)) return false;
		}
		return true;
	}

	pendingSends(): { room: string; id: string }[] {
		return [...this.rooms].flatMap(([room, r]) => r.pending.map((p) => ({ room, id: p.id })));
	}

	start(): void {
		this.heartbeat = setInterval(() => this.beat(), 1000);
		this.connect();
	}

	stop(): void {
		this.stopped = true;
		clearInterval(this.heartbeat);
		for (const t of this.timers) clearTimeout(t);
		this.wire?.close(CLOSE.normal);
	}

	private later(ms: number, f: () => void): void {
		const t = setTimeout(() => {
			this.timers.delete(t);
			if (!this.stopped) f();
		}, ms);
		this.timers.add(t);
	}

	private log(e: Entry): void {
		// When, for whoever reads the log to reproduce a finding; the checker does not look.
		this.entries.push({ ...e, t: Date.now() });
	}

	/** What keeps it from being settled, for the soak's report. */
	describe(): string {
		const rooms = [...this.rooms].map(
			([room, r]) =>
				`#${room} at ${r.last ?? "-"}${r.joined ? "" : " not joined"}${r.asking ? ` waiting for ${r.asking.kind}` : ""}${r.pending.length ? ` ${r.pending.length} pending` : ""}${r.holes.length ? ` ${r.holes.length} holes` : ""}`,
		);
		return `${this.name}: ${this.connected ? `connection ${this.conn}` : "not connected"}; ${rooms.join(", ")}`;
	}

	// ---- connection

	private connect(): void {
		if (this.stopped) return;
		// Wherever the load balancer sends it: any process that is up.
		const ports = this.targets.map((t) => t.port()).filter((p): p is number => p !== undefined);
		const port = ports.length > 0 ? this.rng.pick(ports) : undefined;
		if (port === undefined) return this.retry();
		const process = this.targets.findIndex((t) => t.port() === port);
		const conn = ++this.conn;
		Wire.open(
			port,
			{
				text: (data) => {
					if (this.wire === wire) this.receive(conn, data);
				},
				closed: (code, why) => {
					if (this.wire === wire) this.lost(conn, code, why);
				},
			},
			UPGRADE_WITHIN_MS,
			this.cookie,
		).then(
			(w) => {
				wire = w;
				if (this.stopped) return w.close();
				this.wire = w;
				this.log({ ev: "open", conn, process });
				this.lastFrameAt = Date.now();
				this.pingAt = 0;
				// Under --auth accounts the session names the connection and `welcome` comes unasked.
				if (!this.cookie) this.raw({ type: "hello", name: this.name });
			},
			() => this.retry(),
		);
		let wire: Wire | undefined;
	}

	private retry(): void {
		// The page's backoff (doubling, jittered), on a soak's clock: 0.2 s up to 3 s.
		const ceiling = Math.min(3000, 200 * 2 ** Math.min(this.attempt++, 10));
		this.later(Math.round(ceiling / 2 + (this.rng.next() * ceiling) / 2), () => this.connect());
	}

	private lost(conn: number, code: number, why: string): void {
		this.log({ ev: "close", conn, code, why });
		this.wire = undefined;
		this.welcomed = false;
		this.leaving.clear();
		for (const r of this.rooms.values()) {
			r.joined = false;
			r.asking = undefined;
		}
		// 1008 and 1009 mean "you did something wrong"; the soak never does, and resumes after anything.
		this.retry();
	}

	/** The page's own heartbeat: a ping, and a connection with no answer is given up. */
	private beat(): void {
		const w = this.wire;
		if (!w?.open || this.stopped) return;
		const now = Date.now();
		// Silent past a ping's answer time (or a hello's, before welcome): the process is gone or frozen.
		if (now - this.lastFrameAt > PING_EVERY_MS + PONG_WITHIN_MS) {
			w.drop();
			return;
		}
		if (this.welcomed && now - this.lastFrameAt >= PING_EVERY_MS && this.pingAt < this.lastFrameAt) {
			this.pingAt = now;
			this.raw({ type: "ping" });
		}
	}

	private raw(frame: ClientFrame): boolean {
		if (!this.wire?.open) return false;
		this.wire.send(JSON.stringify(frame));
		return true;
	}

	// ---- what the soak makes it do

	/** Writes a new message in a room it is in; it stays pending until its echo. */
	say(room?: string): void {
		const joined = [...this.rooms.keys()];
		const r = room ?? (joined.length > 0 ? this.rng.pick(joined) : undefined);
		const state = r === undefined ? undefined : this.rooms.get(r);
		if (r === undefined || !state) return;
		const n = ++this.sent;
		const p = { id: `${this.name}-${n}`, text: `${this.name} #${n}` };
		state.pending.push(p);
		if (state.joined) this.transmit(r, p);
	}

	/** Starts writing a new message and vanishes halfway through its frame. */
	dropMidFrame(): boolean {
		const joined = [...this.rooms].filter(([, s]) => s.joined).map(([r]) => r);
		if (!this.wire?.open || joined.length === 0) return false;
		const room = this.rng.pick(joined);
		const state = this.rooms.get(room) as RoomState;
		const n = ++this.sent;
		const p = { id: `${this.name}-${n}`, text: `${this.name} #${n}` };
		state.pending.push(p);
		this.log({ ev: "send", conn: this.conn, room, id: p.id, text: p.text, half: true });
		this.wire.sendHalfAndDrop(JSON.stringify({ type: "send", room, id: p.id, text: p.text }));
		return true;
	}

	/**
	 * --auth accounts: edits, deletes or reacts to one of its own messages it holds in a joined room (as the
	 * page's person would); the answer is an `update` (or an error) with the request's ref. False when there is
	 * nothing to change.
	 */
	change(): boolean {
		const rooms = [...this.rooms].filter(([, s]) => s.joined);
		if (!this.cookie || !this.wire?.open || rooms.length === 0) return false;
		const [room, r] = this.rng.pick(rooms);
		const mine = [...r.held.values()].filter((m) => m.from === this.name && !m.deleted);
		if (mine.length === 0) return false;
		const m = this.rng.pick(mine);
		const ref = `${this.name}-x${++this.sent}`;
		const roll = this.rng.next();
		const frame: ClientFrame =
			roll < 0.55
				? { type: "edit", ref, room, seq: m.seq, text: `${this.name} edit ${ref}` }
				: roll < 0.75
					? { type: "delete", ref, room, seq: m.seq }
					: {
							type: "react",
							ref,
							room,
							seq: m.seq,
							emoji: this.rng.pick(["👍", "🎉", "❤️"]),
							on: this.rng.chance(0.7),
						};
		if (!this.raw(frame)) return false;
		this.log({ ev: "change", conn: this.conn, room, seq: m.seq, kind: frame.type, ref });
		return true;
	}

	/** Drops the connection without a close frame. */
	drop(): void {
		this.wire?.drop();
	}

	join(room: string): void {
		if (this.rooms.has(room) || this.leaving.has(room)) return;
		this.rooms.set(room, emptyRoom());
		if (this.connected) this.sendJoin(room);
	}

	/** Leaves and, as the page does, forgets the room and whatever was pending there. */
	leave(room: string): void {
		if (!this.rooms.get(room)?.joined) return;
		this.rooms.delete(room);
		this.log({ ev: "leave", conn: this.conn, room });
		if (this.raw({ type: "leave", room })) this.leaving.add(room);
	}

	private transmit(room: string, p: Pending): void {
		if (this.raw({ type: "send", room, id: p.id, text: p.text })) {
			this.log({ ev: "send", conn: this.conn, room, id: p.id, text: p.text });
		}
	}

	private sendJoin(room: string): void {
		const r = this.rooms.get(room);
		if (!r || r.asking || !this.welcomed) return;
		const since = r.last;
		const changes = since === undefined ? undefined : r.change;
		const frame: ClientFrame =
			since === undefined
				? { type: "join", room }
				: changes === undefined
					? { type: "join", room, since }
					: { type: "join", room, since, changes };
		if (this.raw(frame)) {
			r.asking = { kind: "join" };
			this.log({ ev: "join", conn: this.conn, room, since, changes });
		}
	}

	// ---- what the server says

	private receive(conn: number, data: string): void {
		this.lastFrameAt = Date.now();
		this.received++;
		const frame = parseServerFrame(data);
		if (!frame) {
			this.oddities.push(`conn ${conn}: a frame outside the protocol: ${data.slice(0, 200)}`);
			return;
		}
		// `reset` is newer than this checkout's schema may be; read it from the wire.
		const reset = frame.type === "joined" && (JSON.parse(data) as { reset?: unknown }).reset === true;
		this.handle(conn, frame, reset);
	}

	private handle(conn: number, frame: ServerFrame, reset: boolean): void {
		switch (frame.type) {
			case "welcome": {
				this.log({ ev: "welcome", conn, epoch: frame.epoch });
				this.welcomed = true;
				this.attempt = 0;
				if (this.epoch !== undefined && this.epoch !== frame.epoch) {
					// A new history: our seqs name other messages now.
					for (const r of this.rooms.values()) {
						r.last = undefined;
						r.holes = [];
						r.change = undefined;
						r.held.clear();
					}
				}
				this.epoch = frame.epoch;
				// All at once, as the page does: the server answers them in turn.
				for (const room of this.rooms.keys()) this.sendJoin(room);
				return;
			}
			case "joined": {
				const r = this.rooms.get(frame.room);
				const ms = frame.messages.map(toMsg);
				const updates = frame.updates?.map(toMsg);
				this.log({
					ev: "joined",
					conn,
					room: frame.room,
					messages: ms,
					more: frame.more,
					reset: reset || undefined,
					change: frame.change,
					updates,
				});
				if (!r) return; // left meanwhile
				if (r.asking?.kind === "join") r.asking = undefined;
				// A join without since (or a reset) starts what the page shows afresh.
				if (reset || r.last === undefined) {
					r.held.clear();
					r.change = undefined;
				}
				hold(r, ms, true);
				hold(r, updates ?? [], false);
				if (frame.change !== undefined) r.change = frame.change;
				const first = ms[0]?.seq;
				const last = ms.at(-1)?.seq;
				if (reset) r.holes = [];
				else if (r.last !== undefined && frame.more && first !== undefined && first > r.last + 1) {
					r.holes.push([r.last + 1, first - 1]);
				}
				if (reset || r.last === undefined || (last !== undefined && last > r.last)) r.last = last ?? r.last;
				if (reset && last === undefined) r.last = undefined;
				r.joined = true;
				this.settle(r, ms);
				for (const p of r.pending) this.transmit(frame.room, p);
				this.fill(frame.room, r);
				return;
			}
			case "message": {
				const m = toMsg(frame);
				this.log({ ev: "message", conn, room: frame.room, msg: m });
				const r = this.rooms.get(frame.room);
				if (!r) return;
				hold(r, [m], true);
				this.settle(r, [m]);
				// As the page: a higher seq is shown (and becomes where it resumes from); a lower one was shown already.
				if (r.last === undefined || m.seq > r.last) r.last = m.seq;
				return;
			}
			case "history": {
				const asked = this.rooms.get(frame.room)?.asking;
				if (asked?.kind !== "history") {
					this.oddities.push(`conn ${conn}: a history reply for #${frame.room} nobody asked for`);
					return;
				}
				const before = asked.before;
				(this.rooms.get(frame.room) as RoomState).asking = undefined;
				this.log({
					ev: "history",
					conn,
					room: frame.room,
					before,
					messages: frame.messages.map(toMsg),
					more: frame.more,
				});
				const r = this.rooms.get(frame.room);
				if (r) hold(r, frame.messages.map(toMsg), true);
				const hole = r?.holes[0];
				if (!r || !hole || before !== hole[1] + 1) return;
				const first = frame.messages[0]?.seq;
				if (first === undefined || first <= hole[0] || !frame.more) r.holes.shift();
				else hole[1] = first - 1;
				this.fill(frame.room, r);
				return;
			}
			case "update": {
				const m = toMsg(frame.message);
				this.log({ ev: "update", conn, room: frame.room, change: frame.change, msg: m, ref: frame.ref });
				const r = this.rooms.get(frame.room);
				if (!r) return;
				r.change = Math.max(r.change ?? 0, frame.change);
				hold(r, [m], false);
				return;
			}
			case "left":
				this.log({ ev: "left", conn, room: frame.room });
				this.leaving.delete(frame.room);
				return;
			case "error":
				this.log({ ev: "error", conn, code: frame.code, ref: frame.ref });
				return this.failed(frame);
			default:
				return;
		}
	}

	/** Asks for the newest part of the first hole a resume left; the answer narrows it. */
	private fill(room: string, r: RoomState): void {
		const hole = r.holes[0];
		if (!hole || r.asking || !r.joined) return;
		const before = hole[1] + 1;
		const limit = Math.min(LIMITS.historyMax, hole[1] - hole[0] + 1);
		if (this.raw({ type: "history", room, before, limit })) r.asking = { kind: "history", before };
	}

	private settle(r: RoomState, ms: Msg[]): void {
		if (r.pending.length === 0) return;
		const echoed = new Set(ms.filter((m) => m.from === this.name && m.id !== undefined).map((m) => m.id));
		r.pending = r.pending.filter((p) => !echoed.has(p.id));
	}

	private failed(frame: Extract<ServerFrame, { type: "error" }>): void {
		if (frame.code === "name_taken" || (!this.welcomed && frame.ref === undefined)) {
			// Our previous connection still holds the name until the server notices it is gone: ask again.
			this.later(RETRY_NAME_MS, () => {
				if (!this.welcomed) this.raw({ type: "hello", name: this.name });
			});
			return;
		}
		if (frame.ref === undefined) {
			// A join or history request refused for now (the store is away, or too much at once): the error
			// names its room; ask again shortly. A page that gave up here would sit outside the room.
			const r = frame.room === undefined ? undefined : this.rooms.get(frame.room);
			const refused = r?.asking;
			if (r && refused && (frame.code === "server_error" || frame.code === "rate_limited")) {
				r.asking = undefined;
				const room = frame.room as string;
				this.later(SERVER_ERROR_RETRY_MS, () => {
					if (refused.kind === "join") {
						if (this.rooms.get(room) === r && !r.joined) this.sendJoin(room);
					} else this.fill(room, r);
				});
			}
			return;
		}
		for (const [room, r] of this.rooms) {
			const p = r.pending.find((x) => x.id === frame.ref);
			if (!p) continue;
			if (frame.code === "server_error") {
				// Nothing was stored: try again shortly with the same id.
				this.later(SERVER_ERROR_RETRY_MS, () => {
					const still = this.rooms.get(room);
					if (still?.joined && still.pending.includes(p)) this.transmit(room, p);
				});
			} else {
				r.pending = r.pending.filter((x) => x !== p);
			}
			return;
		}
	}
}

function emptyRoom(): RoomState {
	return { joined: false, pending: [], holes: [], held: new Map() };
}

/**
 * What the page does with a version of a message: it replaces the one held for that seq only when its
 * `change` is higher; `add` takes messages not held yet (joined, live, history), an update does not.
 */
function hold(r: RoomState, ms: Msg[], add: boolean): void {
	for (const m of ms) {
		const held = r.held.get(m.seq);
		if (held ? (m.change ?? 0) > (held.change ?? 0) : add) r.held.set(m.seq, m);
	}
}

function toMsg(m: Message): Msg {
	const out: Msg = { seq: m.seq, from: m.from, text: m.text, ts: m.ts };
	if (m.id !== undefined) out.id = m.id;
	if (m.change !== undefined) out.change = m.change;
	if (m.deleted) out.deleted = true;
	return out;
}
