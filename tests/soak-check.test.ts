// The soak's checker against hand-made logs: it must pass a clean run and name every kind of broken one.
import { describe, expect, test } from "bun:test";
import { type ClientLog, check, type Entry, type Msg, type StoredRow } from "../soak/check.ts";

const ROOM = "general";
const msg = (seq: number, from = "bob", id?: string): Msg => ({
	seq,
	from,
	text: `${from} #${seq}`,
	ts: 1000 + seq,
	...(id ? { id } : {}),
});
const rowsUpTo = (n: number, extra: Partial<Record<number, Msg>> = {}): StoredRow[] =>
	Array.from({ length: n }, (_, i) => {
		const m = extra[i + 1] ?? msg(i + 1);
		return { room: ROOM, seq: m.seq, from: m.from, text: m.text, ...(m.id ? { id: m.id } : {}) };
	});
const log = (client: string, entries: Entry[], finalRooms: string[] = []): ClientLog => ({
	client,
	entries,
	finalRooms,
	pending: [],
});
const open = (conn: number): Entry[] => [
	{ ev: "open", conn, process: 0 },
	{ ev: "welcome", conn, epoch: "e1" },
];
const live = (conn: number, ...seqs: number[]): Entry[] =>
	seqs.map((seq) => ({ ev: "message", conn, room: ROOM, msg: msg(seq) }));
const kinds = (l: ClientLog[], rows: StoredRow[]) => check(l, rows).violations.map((v) => v.kind);

describe("soak checker", () => {
	test("a clean run across a reconnect passes, with its figures", () => {
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), msg(2)], more: false },
			...live(1, 3, 4),
			{ ev: "close", conn: 1, code: 1006, why: "dropped" },
			...open(2),
			{ ev: "join", conn: 2, room: ROOM, since: 4 },
			{ ev: "joined", conn: 2, room: ROOM, messages: [msg(5), msg(6)], more: false },
			...live(2, 7),
		];
		const verdict = check([log("alice", entries, [ROOM])], rowsUpTo(7));
		expect(verdict.violations).toEqual([]);
		expect(verdict.stats).toMatchObject({ clients: 1, stored: 7, received: 7, resumes: 1 });
	});

	test("a seq skipped in the live stream is named with the client, room and seqs", () => {
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), msg(2)], more: false },
			...live(1, 3, 5),
		];
		const { violations } = check([log("alice", entries)], rowsUpTo(5));
		expect(violations.map((v) => v.kind).sort()).toEqual(["live-gap", "untold-gap"]);
		const gap = violations.find((v) => v.kind === "live-gap");
		expect(gap).toMatchObject({ client: "alice", room: ROOM, seqs: [4, 4] });
		expect(gap?.detail).toContain("after seq 3 came seq 5");
	});

	test("a seq delivered twice is a duplicate", () => {
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1)], more: false },
			...live(1, 2, 3, 3),
		];
		const { violations } = check([log("alice", entries)], rowsUpTo(3));
		expect(violations).toHaveLength(1);
		expect(violations[0]).toMatchObject({ kind: "live-duplicate", client: "alice", room: ROOM, seqs: [3] });
	});

	test("the stored copy of a repeated send may come again; another's message may not", () => {
		const mine = msg(2, "alice", "a-1");
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), mine], more: false },
			{ ev: "send", conn: 1, room: ROOM, id: "a-1", text: mine.text },
			{ ev: "message", conn: 1, room: ROOM, msg: mine },
		];
		expect(kinds([log("alice", entries)], rowsUpTo(2, { 2: mine }))).toEqual([]);
		expect(kinds([log("carol", entries)], rowsUpTo(2, { 2: mine }))).toEqual(["live-duplicate"]);
	});

	test("the stored copy of a repeated send ahead of the live order is named once, and the order goes on", () => {
		const mine = msg(4, "alice", "a-1");
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1)], more: false },
			{ ev: "send", conn: 1, room: ROOM, id: "a-1", text: mine.text },
			{ ev: "message", conn: 1, room: ROOM, msg: mine },
			...live(1, 2, 3),
			{ ev: "message", conn: 1, room: ROOM, msg: mine },
		];
		const { violations } = check([log("alice", entries)], rowsUpTo(4, { 4: mine }));
		expect(violations).toHaveLength(1);
		expect(violations[0]).toMatchObject({ kind: "echo-ahead", client: "alice", room: ROOM, seqs: [1, 4] });
	});

	test("a resume that starts later is a gap unless `more` said so; a told gap may be filled from history", () => {
		const resume = (more: boolean): Entry[] => [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), msg(2)], more: false },
			{ ev: "close", conn: 1, code: 1001, why: "server" },
			...open(2),
			{ ev: "join", conn: 2, room: ROOM, since: 2 },
			{ ev: "joined", conn: 2, room: ROOM, messages: [msg(6), msg(7)], more },
		];
		expect(kinds([log("alice", resume(false))], rowsUpTo(7)).sort()).toEqual(["joined-gap", "untold-gap"]);
		const told = check([log("alice", resume(true))], rowsUpTo(7));
		expect(told.violations).toEqual([]);
		expect(told.stats.toldGaps).toBe(1);
		const filled = check(
			[
				log("alice", [
					...resume(true),
					{ ev: "history", conn: 2, room: ROOM, before: 6, messages: [msg(3), msg(4), msg(5)], more: true },
				]),
			],
			rowsUpTo(7),
		);
		expect(filled.violations).toEqual([]);
		expect(filled.stats.toldGapsFilled).toBe(1);
	});

	test("a view is judged when it ends, not only at the end: a hole in a room left later is still named", () => {
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), msg(2)], more: false },
			{ ev: "close", conn: 1, code: 1006, why: "dropped" },
			...open(2),
			{ ev: "join", conn: 2, room: ROOM, since: 2 },
			{ ev: "joined", conn: 2, room: ROOM, messages: [msg(4)], more: false },
			{ ev: "leave", conn: 2, room: ROOM },
			{ ev: "left", conn: 2, room: ROOM },
		];
		const { violations } = check([log("alice", entries)], rowsUpTo(4));
		expect(violations.map((v) => v.kind).sort()).toEqual(["joined-gap", "untold-gap"]);
		expect(violations.find((v) => v.kind === "untold-gap")).toMatchObject({ seqs: [3, 3] });
	});

	test("an acknowledgement the store does not back is false; clients that disagree are named", () => {
		const mine = msg(2, "alice", "a-1");
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1)], more: false },
			{ ev: "send", conn: 1, room: ROOM, id: "a-1", text: mine.text },
			{ ev: "message", conn: 1, room: ROOM, msg: mine },
		];
		// The store lost seq 2 (and so has a gap before 3).
		const lost = [...rowsUpTo(1), { room: ROOM, seq: 3, from: "bob", text: "bob #3" }];
		expect(kinds([log("alice", entries)], lost).sort()).toEqual(["false-ack", "not-stored", "store-gap"]);
		// The store holds someone else's message at seq 2.
		const other = check([log("alice", entries)], rowsUpTo(2));
		expect(other.violations.map((v) => v.kind).sort()).toEqual(["disagree", "false-ack"]);
		expect(other.violations.find((v) => v.kind === "disagree")).toMatchObject({ client: "alice", seqs: [2] });
	});

	test("below the floor retention pruned, clients are checked against each other instead of the store", () => {
		const heard = (client: string, second: Msg): ClientLog =>
			log(client, [
				...open(1),
				{ ev: "join", conn: 1, room: ROOM },
				{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), second, msg(3)], more: false },
				...live(1, 4, 5),
			]);
		const kept = rowsUpTo(5).filter((r) => r.seq >= 4);
		const agreeing = check([heard("alice", msg(2)), heard("bob", msg(2))], kept);
		expect(agreeing.violations).toEqual([]);
		expect(agreeing.stats.pruned).toBe(6);
		const { violations } = check([heard("alice", msg(2)), heard("bob", msg(2, "mallory"))], kept);
		expect(violations).toHaveLength(1);
		expect(violations[0]).toMatchObject({ kind: "disagree", client: "bob", seqs: [2] });
	});

	test("the store itself: a seq twice, an id twice, a hole", () => {
		const rows: StoredRow[] = [
			{ room: ROOM, seq: 1, from: "a", id: "x", text: "1" },
			{ room: ROOM, seq: 1, from: "a", text: "1 again" },
			{ room: ROOM, seq: 3, from: "A", id: "x", text: "3" },
		];
		expect(kinds([], rows).sort()).toEqual(["duplicate-id", "store-duplicate", "store-gap"]);
	});

	test("at the end every client has heard the whole room and has nothing pending; a crash is a violation", () => {
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1)], more: false },
		];
		const behind = check(
			[{ ...log("alice", entries, [ROOM]), pending: [{ room: ROOM, id: "a-9" }] }],
			rowsUpTo(3),
			[{ process: 1, detail: "status 1" }],
		);
		expect(behind.violations.map((v) => v.kind).sort()).toEqual(["behind", "crash", "unacknowledged"]);
		expect(behind.violations.find((v) => v.kind === "behind")).toMatchObject({ seqs: [1, 3] });
	});

	test("frames of a room in flight after a leave are not judged; a reset starts the view afresh", () => {
		const entries: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1)], more: false },
			{ ev: "leave", conn: 1, room: ROOM },
			...live(1, 3),
			{ ev: "left", conn: 1, room: ROOM },
			{ ev: "join", conn: 1, room: ROOM, since: 9 },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(4), msg(5)], more: true, reset: true },
			...live(1, 6),
		];
		expect(kinds([log("alice", entries, [ROOM])], rowsUpTo(6))).toEqual([]);
	});

	describe("edits and deletions (--auth accounts)", () => {
		const edited = (seq: number, change: number, text: string): Msg => ({ ...msg(seq), text, change });
		const gone = (seq: number, change: number): Msg => ({ ...msg(seq), text: "", change, deleted: true });
		// The store: seq 1 edited (change 1), seq 2 deleted (change 2), seq 3 as sent.
		const rows = (): StoredRow[] => [
			{ room: ROOM, seq: 1, from: "bob", text: "better", change: 1 },
			{ room: ROOM, seq: 2, from: "bob", text: "", change: 2, deleted: true },
			{ room: ROOM, seq: 3, from: "bob", text: "bob #3" },
		];
		const joinedFresh: Entry[] = [
			...open(1),
			{ ev: "join", conn: 1, room: ROOM },
			{ ev: "joined", conn: 1, room: ROOM, messages: [msg(1), msg(2), msg(3)], more: false, change: 0 },
		];

		test("a client that got every update in order ends showing the store's texts: clean", () => {
			const entries: Entry[] = [
				...joinedFresh,
				{ ev: "update", conn: 1, room: ROOM, change: 1, msg: edited(1, 1, "better") },
				{ ev: "update", conn: 1, room: ROOM, change: 2, msg: gone(2, 2) },
			];
			const verdict = check([log("alice", entries, [ROOM])], rows());
			expect(verdict.violations).toEqual([]);
			expect(verdict.stats).toMatchObject({ updates: 2, finalChecked: 3 });
		});

		test("an update missed: the old text and the deleted text it ends showing are named", () => {
			const entries: Entry[] = [
				...joinedFresh,
				{ ev: "update", conn: 1, room: ROOM, change: 2, msg: gone(2, 2) },
			];
			expect(kinds([log("alice", entries, [ROOM])], rows())).toEqual(["stale"]);
			const none: Entry[] = [...joinedFresh];
			expect(kinds([log("alice", none, [ROOM])], rows()).sort()).toEqual(["deleted-shown", "stale"]);
		});

		test("a resume with changes brings them in joined.updates; without them the client stays stale", () => {
			const resumed = (updates: Msg[]): Entry[] => [
				...joinedFresh,
				{ ev: "close", conn: 1, code: 1006, why: "dropped" },
				...open(2),
				{ ev: "join", conn: 2, room: ROOM, since: 3, changes: 0 },
				{ ev: "joined", conn: 2, room: ROOM, messages: [], more: false, change: 2, updates },
			];
			expect(kinds([log("alice", resumed([edited(1, 1, "better"), gone(2, 2)]), [ROOM])], rows())).toEqual(
				[],
			);
			expect(kinds([log("alice", resumed([edited(1, 1, "better")]), [ROOM])], rows())).toEqual([
				"deleted-shown",
			]);
		});

		test("updates out of order, a deleted version with text, and an older version after a newer one", () => {
			const backwards: Entry[] = [
				...joinedFresh,
				{ ev: "update", conn: 1, room: ROOM, change: 2, msg: gone(2, 2) },
				{ ev: "update", conn: 1, room: ROOM, change: 1, msg: edited(1, 1, "better") },
			];
			expect(kinds([log("alice", backwards, [ROOM])], rows())).toEqual(["update-order"]);
			const leaky: Entry[] = [
				...joinedFresh,
				{ ev: "update", conn: 1, room: ROOM, change: 1, msg: edited(1, 1, "better") },
				{ ev: "update", conn: 1, room: ROOM, change: 2, msg: { ...gone(2, 2), text: "bob #2" } },
			];
			// Named where it came, and again for what the client ends showing.
			expect(kinds([log("alice", leaky, [ROOM])], rows()).sort()).toEqual([
				"deleted-shown",
				"deleted-shown",
				"disagree",
			]);
			// Its own request's answer may repeat a change it already has: not a violation.
			const ack: Entry[] = [
				...joinedFresh,
				{ ev: "change", conn: 1, room: ROOM, seq: 1, kind: "edit", ref: "x1" },
				{ ev: "update", conn: 1, room: ROOM, change: 1, msg: edited(1, 1, "better") },
				{ ev: "update", conn: 1, room: ROOM, change: 2, msg: gone(2, 2) },
				{ ev: "update", conn: 1, room: ROOM, change: 1, msg: edited(1, 1, "better"), ref: "x1" },
			];
			expect(kinds([log("alice", ack, [ROOM])], rows())).toEqual([]);
		});
	});
});
