// The Store's edits, tombstones, reactions and change counter (protocol 1.2), run against SQLite and PostgreSQL.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SQL } from "bun";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { LIMITS, type Message } from "../protocol.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { tempDir } from "./helpers.ts";

interface Backend {
	/** A fresh history (optionally made by `old` first, as an older hubbub left it), and a way to open handles on it. */
	fresh(old?: OldSchema): Promise<{ open(): Promise<Store>; [Symbol.asyncDispose](): Promise<void> }>;
}

/** The first schema hubbub wrote, with one message in it. */
interface OldSchema {
	sqlite: string[];
	postgres: string[];
}
const SCHEMA_1: OldSchema = {
	sqlite: [
		"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
		`CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,
			sender_key TEXT NOT NULL, client_id TEXT, text TEXT NOT NULL, ts INTEGER NOT NULL,
			PRIMARY KEY (room, seq)) WITHOUT ROWID`,
		"CREATE UNIQUE INDEX messages_client_id ON messages (room, sender_key, client_id) WHERE client_id IS NOT NULL",
		"INSERT INTO meta (key, value) VALUES ('epoch', 'oldepoch'), ('schema', '1')",
		"INSERT INTO messages VALUES ('general', 1, 'Ann', 'ann', 'a1', 'from long ago', 1600000000000)",
	],
	postgres: [
		"CREATE TABLE hubbub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
		"CREATE TABLE hubbub_rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
		`CREATE TABLE hubbub_messages (room TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,
			sender_key TEXT NOT NULL, client_id TEXT, text TEXT NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (room, seq))`,
		"CREATE UNIQUE INDEX hubbub_messages_client_id ON hubbub_messages (room, sender_key, client_id) WHERE client_id IS NOT NULL",
		"INSERT INTO hubbub_meta (key, value) VALUES ('epoch', 'oldepoch'), ('schema', '1')",
		"INSERT INTO hubbub_rooms VALUES ('general', 1)",
		"INSERT INTO hubbub_messages VALUES ('general', 1, 'Ann', 'ann', 'a1', 'from long ago', 1600000000000)",
	],
};

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

const backends: [string, Backend][] = [
	[
		"sqlite",
		{
			async fresh(old) {
				const dir = tempDir("hubbub-changes-");
				const path = join(dir.path, "store.db");
				if (old) {
					const db = new Database(path);
					for (const statement of old.sqlite) db.run(statement);
					db.close();
				}
				return {
					open: async () => new SqliteStore(path),
					[Symbol.asyncDispose]: async () => dir[Symbol.dispose](),
				};
			},
		},
	],
	[
		"postgres",
		{
			async fresh(old) {
				const url = await pg.database();
				if (old) {
					const sql = new SQL(url);
					for (const statement of old.postgres) await sql.unsafe(statement);
					await sql.close();
				}
				return { open: () => PostgresStore.open(url), [Symbol.asyncDispose]: async () => {} };
			},
		},
	],
];

const msg = (room: string, from: string, text: string) => ({ room, from, text, ts: Date.now() });

describe.each(backends)("%s store changes", (_, backend) => {
	test("edits, deletions and reactions take consecutive change numbers and every read shows them", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		for (let i = 1; i <= 4; i++) await store.append(msg("r", "Alice", `text ${i}`));
		await store.append(msg("other", "Bob", "elsewhere"));
		expect(await store.lastChange("r")).toBe(0);

		const edited = await store.edit("r", 2, "text 2, corrected", 1234);
		expect(edited).toEqual({
			ok: true,
			message: expect.objectContaining({ seq: 2, text: "text 2, corrected", edited: 1234, change: 1 }),
		});
		const up = await store.react("r", 3, "👍", "Bob", true);
		const up2 = await store.react("r", 3, "🎉", "Carol", true);
		const up3 = await store.react("r", 3, "👍", "carol", true);
		expect(up3.ok && up3.message.reactions).toEqual([
			{ emoji: "👍", names: ["Bob", "carol"] },
			{ emoji: "🎉", names: ["Carol"] },
		]);
		// The same person again (by name key) adds nothing, but is an accepted request with its own number.
		const again = await store.react("r", 3, "👍", "BOB", true);
		expect(again.ok && again.message.reactions?.[0]?.names).toEqual(["Bob", "carol"]);
		const off = await store.react("r", 3, "🎉", "CAROL", false);
		expect(off.ok && off.message.reactions).toEqual([{ emoji: "👍", names: ["Bob", "carol"] }]);
		const removed = await store.remove("r", 1);
		expect(removed.ok && removed.message).toEqual({
			type: "message",
			room: "r",
			seq: 1,
			from: "Alice",
			text: "",
			ts: expect.any(Number),
			deleted: true,
			change: 7,
		});
		expect([up, up2, up3, again, off].map((o) => o.ok && o.message.change)).toEqual([2, 3, 4, 5, 6]);
		expect(await store.lastChange("r")).toBe(7);
		expect(await store.lastChange("other")).toBe(0);

		const latest = (await store.latest("r", 10)).messages;
		expect(latest.map((m) => [m.seq, m.text, m.deleted, m.edited, m.change])).toEqual([
			[1, "", true, undefined, 7],
			[2, "text 2, corrected", undefined, 1234, 1],
			[3, "text 3", undefined, undefined, 6],
			[4, "text 4", undefined, undefined, undefined],
		]);
		// One shape from every read.
		expect((await store.since("r", 0, 10)).messages).toEqual(latest);
		expect((await store.after("r", 0, 10)).messages).toEqual(latest);
		expect((await store.before("r", 5, 10)).messages).toEqual(latest);

		// Messages by their last change: seq 3's earlier changes (2–5) are only seen as its latest (6).
		const all = await store.changes("r", 0, 10);
		expect(all.messages.map((m) => [m.seq, m.change])).toEqual([
			[2, 1],
			[3, 6],
			[1, 7],
		]);
		expect(all.more).toBe(false);
		expect((await store.changes("r", 1, 1)).messages.map((m) => m.seq)).toEqual([3]);
		expect((await store.changes("r", 1, 1)).more).toBe(true);
		expect((await store.changes("r", 0, 10, 2)).messages.map((m) => m.seq)).toEqual([2, 1]);
		expect((await store.changes("r", 7, 10)).messages).toEqual([]);
		await store.close();
	});

	test("refusals store nothing and take no number: no such message, a deleted one, too many emoji", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		await store.append(msg("r", "Alice", "one"));
		await store.append(msg("r", "Alice", "two"));
		expect(await store.edit("r", 9, "x", 1)).toEqual({ ok: false, reason: "not_found" });
		expect(await store.remove("nowhere", 1)).toEqual({ ok: false, reason: "not_found" });
		expect((await store.remove("r", 1)).ok).toBe(true);
		expect(await store.edit("r", 1, "back from the dead", 2)).toEqual({ ok: false, reason: "deleted" });
		expect(await store.react("r", 1, "👍", "Bob", true)).toEqual({ ok: false, reason: "deleted" });
		// Deleting again changes nothing: refused, no number taken (no update goes out).
		expect(await store.remove("r", 1)).toEqual({ ok: false, reason: "deleted" });
		const emoji = [
			"😀",
			"😃",
			"😄",
			"😁",
			"😆",
			"😅",
			"🤣",
			"😂",
			"🙂",
			"🙃",
			"🫠",
			"😉",
			"😊",
			"😇",
			"🥰",
			"😍",
		];
		const many = [...emoji, "🤩", "😘", "😗", "☺️", "😚"];
		// Four people fill the message's slots, each up to their own cap.
		const people = ["Bob", "Carol", "Dan", "Eve"];
		for (const [i, e] of many.slice(0, LIMITS.reactionsPerMessage).entries())
			expect(
				(await store.react("r", 2, e, people[Math.floor(i / LIMITS.reactionsPerPerson)] as string, true)).ok,
			).toBe(true);
		// One person past their own cap is refused even before the message's.
		expect(await store.react("r", 2, "😙", "Bob", true)).toEqual({
			ok: false,
			reason: "too_many_own_reactions",
		});
		expect(await store.react("r", 2, "😙", "Fay", true)).toEqual({ ok: false, reason: "too_many_reactions" });
		// An emoji already there can still be added to.
		expect((await store.react("r", 2, "😀", "Fay", true)).ok).toBe(true);
		expect(await store.lastChange("r")).toBe(1 + LIMITS.reactionsPerMessage + 1);
		const [m] = (await store.after("r", 1, 1)).messages;
		expect(m?.reactions).toHaveLength(LIMITS.reactionsPerMessage);
		expect(m?.reactions?.[0]).toEqual({ emoji: "😀", names: ["Bob", "Fay"] });
		// Extra or missing variation selectors (U+FE0F) make the same reaction, not a look-alike second one.
		await store.append(msg("r", "Alice", "three"));
		for (const [who, e] of [
			["Bob", "❤"],
			["Carol", "❤\ufe0f\ufe0f\ufe0f"],
			["Dan", "❤\ufe0f"],
		] as const)
			expect((await store.react("r", 3, e, who, true)).ok).toBe(true);
		const [hearts] = (await store.after("r", 2, 1)).messages;
		expect(hearts?.reactions).toEqual([{ emoji: "❤\ufe0f", names: ["Bob", "Carol", "Dan"] }]);
		await store.close();
	});

	test("two handles (two processes) changing one room at once get each number once, with no gap", async () => {
		await using h = await backend.fresh();
		const a = await h.open();
		const b = await h.open();
		for (let i = 1; i <= 10; i++) await a.append(msg("r", "Alice", `m${i}`));
		const outcomes = await Promise.all(
			Array.from({ length: 60 }, (_, i) =>
				i % 3 === 0
					? (i % 2 ? a : b).edit("r", (i % 10) + 1, `edit ${i}`, i)
					: (i % 2 ? a : b).react("r", (i % 10) + 1, "👍", `u${i}`, i % 4 !== 1),
			),
		);
		const numbers = outcomes.map((o) => (o.ok ? o.message.change : -1)).sort((x, y) => x - y);
		expect(numbers).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
		// What the store holds agrees with the outcome that took each message's last number.
		const now = await a.changes("r", 0, 100);
		for (const m of now.messages) {
			const last = outcomes.find((o) => o.ok && o.message.change === m.change);
			expect(last?.ok ? (last.message as Message) : undefined).toEqual(m);
		}
		await a.close();
		await b.close();
	});

	test("search finds an edited message by its new text only, and a deleted one not at all", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		await store.append(msg("r", "Alice", "the launch code is swordfish"));
		await store.append(msg("r", "Alice", "meeting at noon"));
		const query = (text: string) => ({ text, limit: 10 });
		const found = async (text: string) =>
			(await store.search(query(text), undefined)).hits.map((hit) => hit.seq);
		expect(await found("swordfish")).toEqual([1]);
		expect(await found("noon")).toEqual([2]);
		await store.remove("r", 1);
		await store.edit("r", 2, "meeting moved to three", 5);
		expect(await found("swordfish")).toEqual([]);
		expect(await found("noon")).toEqual([]);
		expect(await found("moved")).toEqual([2]);
		expect(await found("meeting")).toEqual([2]);
		await store.close();
	});

	test("a database from the first hubbub opens, its messages can be edited and the counter starts at 1", async () => {
		await using h = await backend.fresh(SCHEMA_1);
		const store = await h.open();
		expect((await store.latest("general", 5)).messages).toEqual([
			{
				type: "message",
				room: "general",
				seq: 1,
				id: "a1",
				from: "Ann",
				text: "from long ago",
				ts: 1600000000000,
			},
		]);
		const edited = await store.edit("general", 1, "from long ago, edited", 5);
		expect(edited.ok && edited.message.change).toBe(1);
		expect((await store.append(msg("general", "Ann", "new"))).message.seq).toBe(2);
		await store.close();
	});
});

test("a deleted or edited-away text is gone from the SQLite files: database, WAL and shared memory", async () => {
	using dir = tempDir("hubbub-erase-");
	const path = join(dir.path, "erase.db");
	const store = new SqliteStore(path);
	const marker = "zqxv7secretmarker";
	for (let i = 0; i < 20; i++) await store.append(msg("r", "Alice", `filler ${i} `.repeat(20)));
	await store.append(msg("r", "Alice", `my password is ${marker} oops`));
	// Longer than a page: its text sits in overflow pages, which a delete frees (PRAGMA secure_delete zeroes them).
	const long = "qjw3longmarker";
	await store.append(msg("r", "Alice", `${"x".repeat(9000)} ${long}`));
	// Edited away: as secret as a deleted text (MEDIUM 4 of the hostile report: it stayed in the WAL).
	const edited = "vk8editedmarker";
	await store.append(msg("r", "Alice", `the key is ${edited} sorry`));
	for (let i = 0; i < 5; i++) await store.append(msg("r", "Alice", `after ${i}`));
	// Indexed for search (both FTS5 indexes hold its words and trigrams).
	expect((await store.search({ text: marker, limit: 5 }, undefined)).hits).toHaveLength(1);
	// The database and its search index (lib/search-sqlite.ts), each with its WAL and shared memory.
	const files = ["", "-wal", "-shm", "-search", "-search-wal", "-search-shm"].map(
		(suffix) => `${path}${suffix}`,
	);
	const holding = (markers = [marker, long, edited]) =>
		files.filter(
			(f) => existsSync(f) && markers.some((m) => readFileSync(f).includes(Buffer.from(m.slice(2)))),
		);
	// The test can fail: the text is in the files before the delete.
	expect(holding().length).toBeGreaterThan(0);
	expect(holding([edited]).length).toBeGreaterThan(0);
	expect((await store.edit("r", 23, "the key is (removed)", 1)).ok).toBe(true);
	await store.settled();
	expect(holding([edited])).toEqual([]);
	expect((await store.remove("r", 21)).ok).toBe(true);
	expect((await store.remove("r", 22)).ok).toBe(true);
	// The search indexes forget it on the search thread, which then truncates the WAL.
	await store.settled();
	expect(holding()).toEqual([]);
	// Still gone once the store is closed (its last checkpoint) and reopened.
	await store.close();
	expect(holding()).toEqual([]);
	const again = new SqliteStore(path);
	expect((await again.search({ text: marker, limit: 5 }, undefined)).hits).toEqual([]);
	expect((await again.search({ text: edited, limit: 5 }, undefined)).hits).toEqual([]);
	expect((await again.search({ text: "(removed)", limit: 5 }, undefined)).hits.map((h) => h.seq)).toEqual([
		23,
	]);
	expect((await again.after("r", 20, 1)).messages[0]).toMatchObject({ seq: 21, text: "", deleted: true });
	await again.close();
	expect(holding()).toEqual([]);
	// The indexes forgot it cleanly (FTS5's 'delete' given a wrong text would corrupt them).
	const raw = new Database(`${path}-search`);
	for (const t of ["search_trigrams", "search_words"])
		raw.run(`INSERT INTO ${t} (${t}) VALUES ('integrity-check')`);
	raw.close();
});
