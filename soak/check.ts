// The soak's judge: from every client's log and the store's rows, proves what hubbub promises about
// delivery, or names each client, room and seq where it did not hold. Pure: data in, findings out.

/** A message as the soak keeps it (the frame less its type and room). */
export interface Msg {
	seq: number;
	id?: string;
	from: string;
	text: string;
	ts: number;
	/** --auth accounts: the room's change counter at this version's last edit, deletion or reaction. */
	change?: number;
	deleted?: true;
}

/**
 * One line of a client's log, in the order it happened. `conn` numbers the
 * client's connections from 1; frames of one connection come between its
 * `open` and its `close`.
 */
export type Entry = (
	| { ev: "open"; conn: number; process: number }
	| { ev: "welcome"; conn: number; epoch: string }
	/** A `join` sent; `since` (and `changes`) as sent. */
	| { ev: "join"; conn: number; room: string; since?: number; changes?: number }
	| {
			ev: "joined";
			conn: number;
			room: string;
			messages: Msg[];
			more: boolean;
			reset?: boolean;
			change?: number;
			updates?: Msg[];
	  }
	/** --auth accounts: a stored message changed (edit, deletion, reaction). */
	| { ev: "update"; conn: number; room: string; change: number; msg: Msg; ref?: string }
	/** --auth accounts: an edit, delete or react sent. */
	| { ev: "change"; conn: number; room: string; seq: number; kind: string; ref: string }
	| { ev: "message"; conn: number; room: string; msg: Msg }
	| { ev: "history"; conn: number; room: string; before: number; messages: Msg[]; more: boolean }
	/** A `send` written in full (`half`: only part of its frame, then the connection was dropped). */
	| { ev: "send"; conn: number; room: string; id: string; text: string; half?: boolean }
	| { ev: "error"; conn: number; code: string; ref?: string }
	/** The client left the room: it forgets what it saw there (as the page does). */
	| { ev: "leave"; conn: number; room: string }
	/** The server confirmed the leave: nothing more of the room may come on this connection. */
	| { ev: "left"; conn: number; room: string }
	| { ev: "close"; conn: number; code: number; why: string }
) & {
	/** Wall-clock ms, for people reading the log; not judged. */
	t?: number;
};

export interface ClientLog {
	client: string;
	entries: Entry[];
	/** Rooms the client is in at the end, with nothing left to send: its view of each must reach the store's last seq. */
	finalRooms: string[];
	/** Sends still unacknowledged at the end. */
	pending: { room: string; id: string }[];
	/** Frames outside the protocol or unasked-for answers the client saw. */
	oddities?: string[];
}

export interface StoredRow {
	room: string;
	seq: number;
	from: string;
	id?: string;
	text: string;
	/** --auth accounts: the message's last change, and whether it was deleted. */
	change?: number;
	deleted?: boolean;
}

export interface Violation {
	kind:
		| "store-gap"
		| "store-duplicate"
		| "duplicate-id"
		| "false-ack"
		| "ack-mismatch"
		| "lost-ack"
		| "unacknowledged"
		| "not-stored"
		| "disagree"
		| "joined-order"
		| "joined-gap"
		| "live-duplicate"
		| "live-gap"
		| "echo-ahead"
		| "history-order"
		| "untold-gap"
		| "behind"
		| "refused-but-stored"
		| "update-order"
		| "stale"
		| "deleted-shown"
		| "crash"
		| "odd-frame";
	client?: string;
	room?: string;
	seqs?: number[];
	detail: string;
}

export interface Verdict {
	violations: Violation[];
	/** Figures for the summary. */
	stats: {
		clients: number;
		rooms: number;
		stored: number;
		/** Messages the clients received (joined, live, history), each a check against the store. */
		received: number;
		acknowledged: number;
		toldGaps: number;
		toldGapsFilled: number;
		resumes: number;
		echoes: number;
		/** Copies received of messages retention removed from the store since: checked only between clients. */
		pruned: number;
		/** --auth accounts: updates received, and messages each client ended holding that were checked against the store. */
		updates: number;
		finalChecked: number;
	};
}

export interface Crash {
	process: number;
	detail: string;
}

/** Everything the checker proves; see README "Fault soak". */
export function check(logs: ClientLog[], rows: StoredRow[], crashes: Crash[] = []): Verdict {
	const v: Violation[] = [];
	const stats = {
		clients: logs.length,
		rooms: 0,
		stored: rows.length,
		received: 0,
		acknowledged: 0,
		toldGaps: 0,
		toldGapsFilled: 0,
		resumes: 0,
		echoes: 0,
		pruned: 0,
		updates: 0,
		finalChecked: 0,
	};
	for (const c of crashes)
		v.push({ kind: "crash", detail: `process ${c.process} exited unasked: ${c.detail}` });

	// ---- the store itself: per room seq 1..n once each, (room, sender, id) once.
	const stored = new Map<string, Map<number, StoredRow>>();
	const byId = new Map<string, StoredRow>();
	for (const r of rows) {
		const room = stored.get(r.room) ?? new Map<number, StoredRow>();
		stored.set(r.room, room);
		if (room.has(r.seq)) {
			v.push({ kind: "store-duplicate", room: r.room, seqs: [r.seq], detail: `seq ${r.seq} stored twice` });
		}
		room.set(r.seq, r);
		if (r.id !== undefined) {
			const key = idKey(r.room, r.from, r.id);
			const other = byId.get(key);
			if (other) {
				v.push({
					kind: "duplicate-id",
					room: r.room,
					seqs: [other.seq, r.seq],
					detail: `id ${r.id} of ${r.from} stored twice`,
				});
			}
			byId.set(key, r);
		}
	}
	stats.rooms = stored.size;
	const lastSeq = new Map<string, number>();
	/** Per room, the seq below which retention (--keep-messages) removed the history: those cannot be checked. */
	const floor = new Map<string, number>();
	for (const [room, seqs] of stored) {
		const max = Math.max(...seqs.keys());
		const min = Math.min(...seqs.keys());
		lastSeq.set(room, max);
		floor.set(room, min - 1);
		const missing: number[] = [];
		for (let s = min; s <= max; s++) if (!seqs.has(s)) missing.push(s);
		if (missing.length > 0) {
			v.push({ kind: "store-gap", room, seqs: ranges(missing), detail: `store lacks seqs ${show(missing)}` });
		}
	}

	const ground: Ground = { stored, byId, lastSeq, floor, heard: new Map(), ids: new Map() };
	for (const log of logs) checkClient(log, ground, v, stats);
	return { violations: v, stats };
}

interface Stream {
	/** Highest seq of the room this connection has been handed in order; undefined before `joined`. */
	head?: number;
}

interface View {
	/** Seqs the client holds for the room since it last joined afresh. */
	seen: Set<number>;
	/** The first seq of this view: older ones the client never asked for. */
	start: number;
	/** Ranges (inclusive) the server said it did not send: `more: true` on a resume. */
	told: [number, number][];
}

/** What every client is judged against. */
interface Ground {
	stored: Map<string, Map<number, StoredRow>>;
	byId: Map<string, StoredRow>;
	lastSeq: Map<string, number>;
	floor: Map<string, number>;
	/** (room, seq) → what the first client to hear it heard, so clients are compared also where the store pruned. */
	heard: Map<string, { client: string; m: Msg }>;
	/** (room, sender, id) → the seq it was heard with: one send is one message, also across retention. */
	ids: Map<string, number>;
}

function checkClient(log: ClientLog, ground: Ground, v: Violation[], stats: Verdict["stats"]): void {
	const { stored, byId, lastSeq, floor, heard, ids } = ground;
	const client = log.client;
	for (const detail of log.oddities ?? []) v.push({ kind: "odd-frame", client, detail });
	// Soak clients speak under their own names.
	const name = client;
	const views = new Map<string, View>();
	let streams = new Map<string, Stream>();
	/** Per connection: the since of each join in flight, by room, oldest first. */
	let joins = new Map<string, (number | undefined)[]>();
	/** Ids this connection sent, per room: their echo may come again, out of the live order. */
	let sentHere = new Map<string, Set<string>>();
	/** Rooms left on this connection and not yet confirmed: their frames in flight are not judged. */
	let leaving = new Set<string>();
	/** id → seq it was acknowledged with, per room. */
	const acked = new Map<string, number>();
	const sent = new Map<string, { room: string; id: string }>();
	const refused = new Set<string>();
	/** --auth accounts: per room, what the client shows for each seq: the newest version it got, as the page keeps it. */
	const held = new Map<string, Map<number, Msg>>();
	/** A version replaces the held one only when its change is higher; `add` takes seqs not held yet (an update does not). */
	const hold = (room: string, ms: Msg[], add: boolean) => {
		const shown = held.get(room) ?? new Map<number, Msg>();
		held.set(room, shown);
		for (const m of ms) {
			const had = shown.get(m.seq);
			if (had ? (m.change ?? 0) > (had.change ?? 0) : add) shown.set(m.seq, m);
		}
	};
	/** Per room on this connection: the last change handed to it in order (joined.change, then each update). */
	let changeHeads = new Map<string, number>();
	/** Refs of this client's own edit, delete and react requests: their answers may repeat a change already shown. */
	const myRefs = new Set<string>();

	const agree = (room: string, m: Msg, where: string) => {
		stats.received++;
		// Versions of one message (its edits, its deletion) are told apart by their change number.
		const version = m.change ?? 0;
		const at = `${room}\u0000${m.seq}\u0000${version}`;
		const other = heard.get(at);
		if (m.deleted && m.text !== "") {
			v.push({
				kind: "deleted-shown",
				client,
				room,
				seqs: [m.seq],
				detail: `${where}: seq ${m.seq} deleted but still carries ${JSON.stringify(m.text)}`,
			});
		}
		if (!other) heard.set(at, { client, m });
		else if (
			other.m.from !== m.from ||
			other.m.text !== m.text ||
			other.m.id !== m.id ||
			!!other.m.deleted !== !!m.deleted
		) {
			v.push({
				kind: "disagree",
				client,
				room,
				seqs: [m.seq],
				detail: `${where}: seq ${m.seq} is ${m.from}/${m.id}/${JSON.stringify(m.text)} here but ${other.m.from}/${other.m.id}/${JSON.stringify(other.m.text)} for ${other.client}`,
			});
		}
		if (m.id !== undefined) {
			const sent = idKey(room, m.from, m.id);
			const seq = ids.get(sent);
			if (seq === undefined) ids.set(sent, m.seq);
			else if (seq !== m.seq) {
				v.push({
					kind: "duplicate-id",
					client,
					room,
					seqs: [seq, m.seq],
					detail: `${where}: id ${m.id} of ${m.from} heard as seq ${seq} and as seq ${m.seq}: one send shown twice`,
				});
			}
		}
		const row = stored.get(room)?.get(m.seq);
		if (!row && m.seq <= (floor.get(room) ?? 0)) stats.pruned++;
		else if (!row) {
			v.push({
				kind: "not-stored",
				client,
				room,
				seqs: [m.seq],
				detail: `${where}: seq ${m.seq} (${m.from}: ${JSON.stringify(m.text)}) is not in the store`,
			});
		} else if (
			row.from !== m.from ||
			row.id !== m.id ||
			version > (row.change ?? 0) ||
			// An older version's text is not in the store any more: only clients are compared for it (above).
			(version === (row.change ?? 0) && (row.text !== m.text || !!row.deleted !== !!m.deleted))
		) {
			v.push({
				kind: "disagree",
				client,
				room,
				seqs: [m.seq],
				detail: `${where}: seq ${m.seq} is ${m.from}/${m.id}/${JSON.stringify(m.text)} (change ${version}${m.deleted ? ", deleted" : ""}) here but ${row.from}/${row.id}/${JSON.stringify(row.text)} (change ${row.change ?? 0}${row.deleted ? ", deleted" : ""}) in the store`,
			});
		}
		if (m.from === name && m.id !== undefined) {
			const key = `${room}\u0000${m.id}`;
			const before = acked.get(key);
			if (before === undefined) {
				acked.set(key, m.seq);
				stats.acknowledged++;
			} else if (before !== m.seq) {
				v.push({
					kind: "ack-mismatch",
					client,
					room,
					seqs: [before, m.seq],
					detail: `id ${m.id} acknowledged as seq ${before} and as seq ${m.seq}`,
				});
			}
		}
	};

	const view = (room: string): View | undefined => views.get(room);

	/** Every view gap-free from where it starts, apart from ranges the server said it skipped; judged when it ends. */
	const judgeView = (room: string, w: View) => {
		if (w.seen.size === 0) return;
		const max = Math.max(...w.seen);
		const holes: number[] = [];
		for (let s = w.start; s <= max; s++) {
			if (!w.seen.has(s) && !w.told.some(([lo, hi]) => s >= lo && s <= hi)) holes.push(s);
		}
		if (holes.length > 0) {
			v.push({
				kind: "untold-gap",
				client,
				room,
				seqs: ranges(holes),
				detail: `never saw seqs ${show(holes)} and was never told`,
			});
		}
		for (const [lo, hi] of w.told) {
			let filled = true;
			for (let s = lo; s <= hi && filled; s++) filled = w.seen.has(s);
			if (filled) stats.toldGapsFilled++;
		}
	};

	for (const e of log.entries) {
		switch (e.ev) {
			case "open":
				changeHeads = new Map();
				streams = new Map();
				joins = new Map();
				sentHere = new Map();
				leaving = new Set();
				break;
			case "welcome":
				break;
			case "join": {
				leaving.delete(e.room);
				const q = joins.get(e.room) ?? [];
				q.push(e.since);
				joins.set(e.room, q);
				break;
			}
			case "joined": {
				const since = joins.get(e.room)?.shift();
				const ms = e.messages;
				for (const m of ms) agree(e.room, m, `conn ${e.conn} joined`);
				if (leaving.has(e.room)) break;
				for (let i = 1; i < ms.length; i++) {
					if ((ms[i] as Msg).seq !== (ms[i - 1] as Msg).seq + 1) {
						v.push({
							kind: "joined-order",
							client,
							room: e.room,
							seqs: [(ms[i - 1] as Msg).seq, (ms[i] as Msg).seq],
							detail: `conn ${e.conn}: joined holds seq ${(ms[i - 1] as Msg).seq} then ${(ms[i] as Msg).seq}`,
						});
					}
				}
				const first = ms[0]?.seq;
				const last = ms.at(-1)?.seq;
				let w = view(e.room);
				if (since === undefined || e.reset || !w) {
					// A fresh view: the latest messages, older ones only if the client pages back (it need not).
					if (w) judgeView(e.room, w);
					held.set(e.room, new Map());
					w = { seen: new Set(), start: first ?? (since ?? 0) + 1, told: [] };
					if (since === undefined && first === undefined) w.start = 1;
					views.set(e.room, w);
				} else {
					stats.resumes++;
					if (first !== undefined && first !== since + 1) {
						if (e.more && first > since + 1) {
							w.told.push([since + 1, first - 1]);
							stats.toldGaps++;
						} else {
							v.push({
								kind: "joined-gap",
								client,
								room: e.room,
								seqs: [since, first],
								detail: `conn ${e.conn}: join since ${since} answered from seq ${first}${e.more ? " (more: true, but not a gap)" : " without more: true"}`,
							});
						}
					}
				}
				for (const m of ms) w.seen.add(m.seq);
				for (const m of e.updates ?? []) agree(e.room, m, `conn ${e.conn} joined.updates`);
				hold(e.room, ms, true);
				hold(e.room, e.updates ?? [], false);
				if (e.change !== undefined) changeHeads.set(e.room, e.change);
				streams.set(e.room, { head: last ?? (since !== undefined && !e.reset ? since : undefined) });
				if (last === undefined && since === undefined) {
					(streams.get(e.room) as Stream).head = 0;
				}
				break;
			}
			case "message": {
				const m = e.msg;
				agree(e.room, m, `conn ${e.conn} live`);
				if (leaving.has(e.room)) break;
				const s = streams.get(e.room);
				const w = view(e.room);
				if (!s || s.head === undefined || !w) {
					v.push({
						kind: "live-gap",
						client,
						room: e.room,
						seqs: [m.seq],
						detail: `conn ${e.conn}: seq ${m.seq} arrived before joined`,
					});
					break;
				}
				hold(e.room, [m], true);
				const ownEcho = m.from === name && m.id !== undefined && sentHere.get(e.room)?.has(m.id) === true;
				if (m.seq === s.head + 1) {
					s.head = m.seq;
					w.seen.add(m.seq);
				} else if (ownEcho && m.seq <= s.head) {
					// The stored copy of a send this connection repeated: allowed, shown once.
					stats.echoes++;
				} else if (ownEcho) {
					// The stored copy of a repeated send, ahead of the room's live order: a page shows it and then
					// takes the seqs before it, when they come, for ones already shown.
					v.push({
						kind: "echo-ahead",
						client,
						room: e.room,
						seqs: [s.head, m.seq],
						detail: `conn ${e.conn}: after seq ${s.head} came the stored copy of its repeated send ${m.id} as seq ${m.seq}, before seqs ${s.head + 1}–${m.seq - 1}`,
					});
				} else if (m.seq <= s.head) {
					v.push({
						kind: "live-duplicate",
						client,
						room: e.room,
						seqs: [m.seq],
						detail: `conn ${e.conn}: seq ${m.seq} again after seq ${s.head}`,
					});
				} else {
					v.push({
						kind: "live-gap",
						client,
						room: e.room,
						seqs: [s.head + 1, m.seq - 1],
						detail: `conn ${e.conn}: after seq ${s.head} came seq ${m.seq}: seqs ${s.head + 1}–${m.seq - 1} skipped`,
					});
					// Go on from here, so one skip is reported once.
					s.head = m.seq;
					w.seen.add(m.seq);
				}
				break;
			}
			case "history": {
				const w = view(e.room);
				let prev: number | undefined;
				for (const m of e.messages) {
					agree(e.room, m, `conn ${e.conn} history`);
					if (m.seq >= e.before || (prev !== undefined && m.seq !== prev + 1)) {
						v.push({
							kind: "history-order",
							client,
							room: e.room,
							seqs: [m.seq],
							detail: `conn ${e.conn}: history before ${e.before} holds seq ${m.seq}${prev !== undefined ? ` after ${prev}` : ""}`,
						});
					}
					prev = m.seq;
					w?.seen.add(m.seq);
				}
				if (w) hold(e.room, e.messages, true);
				const last = e.messages.at(-1)?.seq;
				if (last !== undefined && last !== e.before - 1) {
					v.push({
						kind: "history-order",
						client,
						room: e.room,
						seqs: [last, e.before],
						detail: `conn ${e.conn}: history before ${e.before} ends at seq ${last}`,
					});
				}
				break;
			}
			case "send": {
				sent.set(`${e.room}\u0000${e.id}`, { room: e.room, id: e.id });
				const ids = sentHere.get(e.room) ?? new Set<string>();
				sentHere.set(e.room, ids);
				ids.add(e.id);
				break;
			}
			case "error":
				if (e.ref !== undefined && e.code !== "server_error") {
					for (const s of sent.values()) if (s.id === e.ref) refused.add(`${s.room}\u0000${s.id}`);
				}
				break;
			case "leave": {
				const w = view(e.room);
				if (w) judgeView(e.room, w);
				views.delete(e.room);
				streams.delete(e.room);
				held.delete(e.room);
				changeHeads.delete(e.room);
				leaving.add(e.room);
				break;
			}
			case "left":
				leaving.delete(e.room);
				break;
			case "change":
				myRefs.add(e.ref);
				break;
			case "update": {
				stats.updates++;
				agree(e.room, e.msg, `conn ${e.conn} update ${e.change}`);
				if (leaving.has(e.room)) break;
				if (e.msg.change !== e.change) {
					v.push({
						kind: "update-order",
						client,
						room: e.room,
						seqs: [e.msg.seq],
						detail: `conn ${e.conn}: update ${e.change} carries seq ${e.msg.seq} at change ${e.msg.change}`,
					});
				}
				const head = changeHeads.get(e.room);
				if (head === undefined) {
					v.push({
						kind: "update-order",
						client,
						room: e.room,
						seqs: [e.msg.seq],
						detail: `conn ${e.conn}: update ${e.change} arrived before joined`,
					});
				} else if (e.change > head) {
					changeHeads.set(e.room, e.change);
				} else if (e.ref !== undefined && myRefs.has(e.ref)) {
					// The answer to its own request, after the change already came in order: shown once.
					stats.echoes++;
				} else {
					v.push({
						kind: "update-order",
						client,
						room: e.room,
						seqs: [e.msg.seq],
						detail: `conn ${e.conn}: update ${e.change} after update ${head}`,
					});
				}
				hold(e.room, [e.msg], false);
				break;
			}
			case "close":
				changeHeads = new Map();
				streams = new Map();
				leaving = new Set();
				break;
		}
	}

	for (const [room, w] of views) judgeView(room, w);

	// Acknowledged means stored, once, with that seq.
	for (const [key, seq] of acked) {
		const [room, id] = key.split("\u0000") as [string, string];
		const row = byId.get(idKey(room, name, id));
		if (!row && seq <= (floor.get(room) ?? 0)) continue; // removed by retention since
		if (!row) {
			v.push({
				kind: "false-ack",
				client,
				room,
				seqs: [seq],
				detail: `id ${id} acknowledged as seq ${seq} but not stored`,
			});
		} else if (row.seq !== seq) {
			v.push({
				kind: "false-ack",
				client,
				room,
				seqs: [seq, row.seq],
				detail: `id ${id} acknowledged as seq ${seq} but stored as seq ${row.seq}`,
			});
		}
	}
	for (const [key, s] of sent) {
		const row = byId.get(idKey(s.room, name, s.id));
		if (refused.has(key) && row) {
			v.push({
				kind: "refused-but-stored",
				client,
				room: s.room,
				seqs: [row.seq],
				detail: `id ${s.id} was refused with an error yet stored as seq ${row.seq}`,
			});
		}
	}
	for (const p of log.pending) {
		const row = byId.get(idKey(p.room, name, p.id));
		v.push({
			kind: "unacknowledged",
			client,
			room: p.room,
			seqs: row ? [row.seq] : [],
			detail: `id ${p.id} never acknowledged by the end${row ? ` (it is stored as seq ${row.seq})` : " (not stored)"}`,
		});
	}
	// At the end, in calm, every client shows every message it holds as the store has it now: no old text of
	// an edited message, no text of a deleted one.
	for (const room of log.finalRooms) {
		for (const [seq, m] of held.get(room) ?? []) {
			const row = stored.get(room)?.get(seq);
			if (!row) continue; // removed by retention since
			stats.finalChecked++;
			if ((m.change ?? 0) !== (row.change ?? 0) || m.text !== row.text || !!m.deleted !== !!row.deleted) {
				v.push({
					kind: row.deleted ? "deleted-shown" : "stale",
					client,
					room,
					seqs: [seq],
					detail: `ends showing seq ${seq} as ${JSON.stringify(m.text)} (change ${m.change ?? 0}${m.deleted ? ", deleted" : ""}); the store has ${JSON.stringify(row.text)} (change ${row.change ?? 0}${row.deleted ? ", deleted" : ""})`,
				});
			}
		}
	}
	// At the end, in calm, every client has caught up with every room it is in.
	for (const room of log.finalRooms) {
		const last = lastSeq.get(room) ?? 0;
		const w = views.get(room);
		const mine = w && w.seen.size > 0 ? Math.max(...w.seen) : 0;
		if (mine < last) {
			v.push({
				kind: "behind",
				client,
				room,
				seqs: [mine, last],
				detail: `ended at seq ${mine}; the store has up to seq ${last}`,
			});
		}
	}
}

function idKey(room: string, from: string, id: string): string {
	return `${room}\u0000${from.toLowerCase()}\u0000${id}`;
}

/** Sorted seqs folded to [lo, hi] pairs, flattened. */
function ranges(seqs: number[]): number[] {
	const out: number[] = [];
	for (const s of [...seqs].sort((a, b) => a - b)) {
		if (out.length > 0 && out[out.length - 1] === s - 1) out[out.length - 1] = s;
		else out.push(s, s);
	}
	return out;
}

function show(seqs: number[]): string {
	const r = ranges(seqs);
	const parts: string[] = [];
	for (let i = 0; i < r.length; i += 2) parts.push(r[i] === r[i + 1] ? `${r[i]}` : `${r[i]}–${r[i + 1]}`);
	return parts.length > 8 ? `${parts.slice(0, 8).join(", ")} … (${seqs.length} in all)` : parts.join(", ");
}

/** One line per violation, for the summary. */
export function describe(x: Violation): string {
	const where = [x.client && `client ${x.client}`, x.room && `room ${x.room}`].filter(Boolean).join(", ");
	return `${x.kind}${where ? ` (${where})` : ""}: ${x.detail}`;
}
