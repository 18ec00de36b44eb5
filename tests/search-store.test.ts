// Full-text search's contract (lib/search.ts), run against both stores: SQLite (FTS5) and PostgreSQL (pg_trgm).
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
	copyFileSync,
	existsSync,
	readdirSync,
	readFileSync,
	rmSync,
	statSync,
	writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { BadCursor, type SearchHit, type SearchQuery } from "../lib/search.ts";
import {
	migrateSearchQueue,
	nextDocs,
	openIndex,
	PendingReader,
	SqliteIndexer,
	trigramMatch,
} from "../lib/search-sqlite.ts";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { downgradeToSchema7, tempDir } from "./helpers.ts";
import { until } from "./until.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

interface Opened {
	store: Store;
	[Symbol.asyncDispose](): Promise<void>;
}

const backends: [string, () => Promise<Opened>][] = [
	[
		"sqlite",
		async () => {
			const dir = tempDir("hubbub-search-");
			const store = new SqliteStore(join(dir.path, "store.db"));
			return {
				store,
				[Symbol.asyncDispose]: async () => {
					await store.close();
					dir[Symbol.dispose]();
				},
			};
		},
	],
	[
		"postgres",
		async () => {
			const store = await PostgresStore.open(await pg.database());
			return { store, [Symbol.asyncDispose]: () => store.close() };
		},
	],
];

const T0 = Date.UTC(2026, 10, 1);
/** Every room readable (--auth none). */
const all = undefined;
const q = (text: string, more: Partial<SearchQuery> = {}): SearchQuery => ({ text, limit: 20, ...more });
const texts = (hits: SearchHit[]) => hits.map((h) => h.snippet);
/** The highlighted parts of a hit, as the page would show them. */
const marked = (h: SearchHit) => h.highlights.map(([s, e]) => h.snippet.slice(s, e));

/** A store's file holding room r's first message, `text`, closed again. */
async function fileWithFirst(path: string, text: string): Promise<void> {
	const store = new SqliteStore(path);
	await store.append({ room: "r", from: "a", text, ts: T0 });
	await store.close();
}

/** Appends in order, one ts a minute apart, so "newest first" is the reverse of this list. */
async function fill(store: Store, rows: [room: string, from: string, text: string][]): Promise<void> {
	for (const [i, [room, from, text]] of rows.entries())
		await store.append({ room, from, text, ts: T0 + i * 60_000 });
}

describe.each(backends)("%s search", (_, open) => {
	test("finds words, Japanese inside a sentence and code fragments, case-insensitively, highlighted", async () => {
		await using db = await open();
		const { store } = db;
		await fill(store, [
			["dev", "alice", "本番環境にデプロイしました。確認お願いします"],
			["dev", "bob", "got Error: ERR_SOCKET_TIMEOUT after 30s"],
			["ops", "carol", "start it with bun server.ts --max-payload 65536"],
			["ops", "dave", "nothing to see here"],
			["dev", "erin", "中文测试：部署完成了"],
		]);
		const ja = await store.search(q("デプロイ"), all);
		expect(texts(ja.hits)).toEqual(["本番環境にデプロイしました。確認お願いします"]);
		expect(marked(ja.hits[0] as SearchHit)).toEqual(["デプロイ"]);
		expect(texts((await store.search(q("部署完成"), all)).hits)).toEqual(["中文测试：部署完成了"]);
		// Two characters: a word start (here after the full-width colon).
		expect(texts((await store.search(q("部署"), all)).hits)).toEqual(["中文测试：部署完成了"]);
		const code = await store.search(q("socket_timeout"), all);
		expect(code.hits.map((h) => [h.room, h.seq, h.from])).toEqual([["dev", 2, "bob"]]);
		expect(marked(code.hits[0] as SearchHit)).toEqual(["SOCKET_TIMEOUT"]);
		const flag = await store.search(q("--max-payload"), all);
		expect(flag.hits.map((h) => h.from)).toEqual(["carol"]);
		expect(marked(flag.hits[0] as SearchHit)).toEqual(["--max-payload"]);
		expect((await store.search(q("nothing-like-this"), all)).hits).toEqual([]);
	});

	test("every term must match; a quoted phrase is one term; 1–2 letter terms match word starts only", async () => {
		await using db = await open();
		const { store } = db;
		await fill(store, [
			["r", "a", "deploy went fine"],
			["r", "a", "deploy failed again"],
			["r", "a", "the deploy is a go"],
			["r", "a", "a long time ago, it failed deploying"],
		]);
		expect(texts((await store.search(q("deploy failed"), all)).hits)).toEqual([
			"a long time ago, it failed deploying",
			"deploy failed again",
		]);
		expect(texts((await store.search(q('"deploy failed"'), all)).hits)).toEqual(["deploy failed again"]);
		// "go" is a word in the third message and only inside "ago" in the fourth.
		const go = await store.search(q("go"), all);
		expect(texts(go.hits)).toEqual(["the deploy is a go"]);
		expect(marked(go.hits[0] as SearchHit)).toEqual(["go"]);
		expect(texts((await store.search(q("deploy go"), all)).hits)).toEqual(["the deploy is a go"]);
		// A long term is a substring, not a set of trigrams: these hold every one of the term's, apart.
		await fill(store, [
			["r", "a", "abc zbcd"],
			["r", "a", "xabcdy"],
			["r", "a", "デプロはプロイ"],
			["r", "a", "今日は𠮷野家で昼ごはん"],
		]);
		expect(texts((await store.search(q("abcd"), all)).hits)).toEqual(["xabcdy"]);
		expect((await store.search(q("デプロイ"), all)).hits).toEqual([]);
		// Characters outside the BMP count as one (𠮷 is two UTF-16 units).
		expect(texts((await store.search(q("𠮷野家"), all)).hits)).toEqual(["今日は𠮷野家で昼ごはん"]);
		// Punctuation alone is not a term; an empty query finds nothing.
		expect((await store.search(q("-- ."), all)).hits).toEqual([]);
		expect((await store.search(q("   "), all)).hits).toEqual([]);
	});

	test("newest first, paged by cursor: every match once, none twice", async () => {
		await using db = await open();
		const { store } = db;
		const rows: [string, string, string][] = Array.from({ length: 45 }, (_, i) => [
			i % 3 === 0 ? "a" : "b",
			"u",
			i % 2 === 0 ? `needle number ${i}` : `hay ${i}`,
		]);
		await fill(store, rows);
		const seen: string[] = [];
		let cursor: string | undefined;
		let pages = 0;
		do {
			const page = await store.search(q("needle", { limit: 5, cursor }), all);
			expect(page.hits.length).toBeLessThanOrEqual(5);
			seen.push(...texts(page.hits));
			cursor = page.cursor;
			pages++;
		} while (cursor !== undefined && pages < 20);
		const expected = rows
			.map((r) => r[2])
			.filter((t) => t.startsWith("needle"))
			.reverse();
		expect(seen).toEqual(expected);
		await expect(store.search(q("needle", { cursor: "x1" }), all)).rejects.toBeInstanceOf(BadCursor);
	});

	test("filters: room, author (any case), before and after a date", async () => {
		await using db = await open();
		const { store } = db;
		await fill(store, [
			["dev", "Alice", "build 1 green"],
			["ops", "bob", "build 2 green"],
			["dev", "bob", "build 3 green"],
			["dev", "alice", "build 4 green"],
		]);
		const of = async (more: Partial<SearchQuery>) => texts((await store.search(q("build", more), all)).hits);
		expect(await of({ room: "dev" })).toEqual(["build 4 green", "build 3 green", "build 1 green"]);
		expect(await of({ from: "ALICE" })).toEqual(["build 4 green", "build 1 green"]);
		expect(await of({ room: "dev", from: "bob" })).toEqual(["build 3 green"]);
		expect(await of({ after: T0 + 60_000, before: T0 + 3 * 60_000 })).toEqual([
			"build 3 green",
			"build 2 green",
		]);
		expect(await of({ room: "nowhere" })).toEqual([]);
	});

	test("rooms the reader may not read are never returned, and paging goes on past them", async () => {
		await using db = await open();
		const { store } = db;
		await fill(
			store,
			Array.from({ length: 30 }, (_, i): [string, string, string] => [
				i < 25 ? "secret" : "open",
				"x",
				`key ${i}`,
			]),
		);
		const first = await store.search(q("key", { limit: 10 }), new Set(["open"]));
		expect(texts(first.hits)).toEqual(["key 29", "key 28", "key 27", "key 26", "key 25"]);
		expect(first.hits.every((h) => h.room === "open")).toBe(true);
		expect(first.cursor).toBeUndefined();
		expect((await store.search(q("key"), new Set())).hits).toEqual([]);
		expect((await store.search(q("key", { room: "secret" }), new Set(["open"]))).hits).toEqual([]);
	});

	test("rows the reader may not read change nothing in an answer: not its hits, its cursor or its cursor's value", async () => {
		// The hostile test's oracle: with limit 1, a cursor (or a scan bound reached) told whether
		// text the reader may not read existed, and the cursor's value counted every room's messages.
		await using quiet = await open();
		await using busy = await open();
		const own: [string, string, string][] = [
			["open", "mallory", "probe password is hunter2"],
			["open", "mallory", "probe password is hunter2 again"],
		];
		const put = async (store: Store, rows: [string, string, string][], first: number) => {
			for (const [i, [room, from, text]] of rows.entries())
				await store.append({ room, from, text, ts: first + i * 1000 });
		};
		await put(quiet.store, own, T0 + 3_600_000);
		const secrets = Array.from({ length: 1100 }, (_, i): [string, string, string] => [
			i % 2 ? "dm-secret" : "left-room",
			"alice",
			`password is hunter2 (${i})`,
		]);
		await put(busy.store, secrets.slice(0, 600), T0);
		await put(busy.store, own, T0 + 3_600_000);
		await put(busy.store, secrets.slice(600), T0 + 7_200_000);
		const readable = new Set(["open"]);
		for (const more of [
			{ limit: 1 },
			{ limit: 5 },
			{ limit: 1, from: "nobody" },
			{ limit: 1, room: "open" },
		]) {
			const a = await quiet.store.search(q("hunter2", more), readable);
			const b = await busy.store.search(q("hunter2", more), readable);
			expect(b).toEqual(a);
			if (a.cursor !== undefined) {
				const nextA = await quiet.store.search(q("hunter2", { ...more, cursor: a.cursor }), readable);
				const nextB = await busy.store.search(q("hunter2", { ...more, cursor: b.cursor }), readable);
				expect(nextB).toEqual(nextA);
			}
		}
	});

	test("a long message's snippet is a window around the match; text is returned as text, never as HTML", async () => {
		await using db = await open();
		const { store } = db;
		const long = `${"lorem ipsum ".repeat(40)}<b>MATCH</b> here ${"dolor sit ".repeat(40)}`;
		await fill(store, [["r", "a", long]]);
		const [hit] = (await store.search(q("match"), all)).hits;
		if (!hit) throw new Error("no hit");
		expect(hit.snippet.startsWith("…")).toBe(true);
		expect(hit.snippet.endsWith("…")).toBe(true);
		expect(hit.snippet.length).toBeLessThan(200);
		expect(hit.snippet).toContain("<b>MATCH</b>");
		expect(marked(hit)).toEqual(["MATCH"]);
	});

	test("messages removed by retention are not found", async () => {
		await using db = await open();
		const { store } = db;
		await fill(
			store,
			Array.from({ length: 10 }, (_, i): [string, string, string] => ["r", "a", `old secret ${i}`]),
		);
		expect((await store.search(q("secret"), all)).hits).toHaveLength(10);
		await store.prune({ keep: 3 });
		expect(texts((await store.search(q("secret"), all)).hits)).toEqual([
			"old secret 9",
			"old secret 8",
			"old secret 7",
		]);
	});
});

test("a SQLite database made before search opens with its messages searchable", async () => {
	using dir = tempDir("hubbub-search-migrate-");
	const path = join(dir.path, "old.db");
	const before = new SqliteStore(path);
	await before.append({ room: "r", from: "a", text: "written before search existed", ts: T0 });
	await before.close();
	// Make it the schema-2 file an older hubbub wrote: no search tables, no triggers.
	const raw = new Database(path);
	downgradeToSchema7(raw);
	raw.run("DROP TRIGGER messages_search_insert");
	raw.run("DROP TRIGGER messages_search_delete");
	raw.run("DROP TRIGGER messages_search_update");
	raw.run("DROP TABLE search_docs");
	// Nor the file tables of schema 4.
	for (const t of ["uploads", "message_files"]) raw.run(`DROP TABLE ${t}`);
	raw.run("ALTER TABLE messages DROP COLUMN files");
	// Nor what came after search (schema 5: edits and deletions).
	raw.run("DROP INDEX messages_change");
	for (const c of ["edited", "deleted", "reactions", "change_seq"])
		raw.run(`ALTER TABLE messages DROP COLUMN ${c}`);
	raw.run("ALTER TABLE room_floors DROP COLUMN changes");
	// Nor schema 6's erasure queue (lib/search-worker.ts), nor schema 7's index file beside it.
	raw.run("DROP TABLE search_forget");
	raw.run("UPDATE meta SET value = '2' WHERE key = 'schema'");
	raw.close();
	for (const suffix of ["-search", "-search-wal", "-search-shm"]) rmSync(`${path}${suffix}`, { force: true });
	const after = new SqliteStore(path);
	await after.append({ room: "r", from: "a", text: "written after", ts: T0 + 1 });
	expect(texts((await after.search(q("written"), all)).hits)).toEqual([
		"written after",
		"written before search existed",
	]);
	await after.close();
});

test("SQLite's index drops what retention removes (the triggers keep it in step, not only the join)", async () => {
	using dir = tempDir("hubbub-search-prune-");
	const path = join(dir.path, "s.db");
	const store = new SqliteStore(path);
	for (let i = 0; i < 10; i++) await store.append({ room: "r", from: "a", text: `entry ${i}`, ts: T0 + i });
	expect((await store.search(q("entry"), all)).hits).toHaveLength(10);
	await store.prune({ keep: 3 });
	await store.close();
	const raw = new Database(path, { readonly: true });
	const index = new Database(`${path}-search`, { readonly: true });
	const count = (db: Database, sql: string, ...args: string[]) =>
		(db.query(sql).get(...args) as { n: number }).n;
	expect(count(raw, "SELECT count(*) AS n FROM messages")).toBe(3);
	expect(
		count(
			index,
			"SELECT count(*) AS n FROM search_trigrams WHERE search_trigrams MATCH ?",
			trigramMatch("entry"),
		),
	).toBe(3);
	raw.close();
	index.close();
});

test("a schema-7 database upgrades to ids in the messages' rows, given by each INSERT: the same ids, its index file kept, the counter going on, edits forgotten", async () => {
	using dir = tempDir("hubbub-search-schema7-");
	const path = join(dir.path, "seven.db");
	const first = new SqliteStore(path);
	for (let i = 0; i < 4; i++)
		await first.append({ room: `r${i % 2}`, from: "a", text: `note ${i} kiwi`, ts: T0 + i });
	await first.settled();
	await first.close();
	const raw = new Database(path);
	downgradeToSchema7(raw);
	// The newest message removed (as retention or a room's removal can): its id must not be given again.
	raw.run("DELETE FROM messages WHERE room = 'r1' AND seq = 2");
	const ids = raw.query("SELECT id, room, seq FROM search_docs ORDER BY id").all();
	raw.close();
	// A mark in the index file that building it again would remove.
	const marked = new Database(`${path}-search`);
	marked.run("INSERT INTO search_meta (key, value) VALUES ('test-mark', 'kept')");
	marked.close();
	const after = new SqliteStore(path);
	const added = await after.append({ room: "r0", from: "a", text: "note 5 kiwi", ts: T0 + 5 });
	await after.edit("r0", 1, "note 0 plum", T0 + 6);
	await after.settled();
	expect(texts((await after.search(q("kiwi"), all)).hits)).toEqual([
		"note 5 kiwi",
		"note 2 kiwi",
		"note 1 kiwi",
	]);
	expect(texts((await after.search(q("plum"), all)).hits)).toEqual(["note 0 plum"]);
	await after.close();
	const check = new Database(path, { readonly: true });
	// Each message kept its id, now in its own row; the new one took the next after the removed one.
	expect(check.query("SELECT doc AS id, room, seq FROM messages WHERE doc <= 4 ORDER BY doc").all()).toEqual(
		ids,
	);
	expect(
		check.query("SELECT room, seq, doc FROM messages ORDER BY doc").all() as {
			room: string;
			seq: number;
			doc: number;
		}[],
	).toEqual([
		{ room: "r0", seq: 1, doc: 1 },
		{ room: "r1", seq: 1, doc: 2 },
		{ room: "r0", seq: 2, doc: 3 },
		{ room: added.message.room, seq: added.message.seq, doc: 5 },
	]);
	// No search_docs (its index of (room, seq) was what each send wrote twice), and no insert trigger (a
	// send's insert gives the id; the store numbers rows stored without one): the ids' own index, appended
	// to at its end, finds them.
	expect(check.query("SELECT name FROM sqlite_master WHERE name LIKE '%search_docs%'").all()).toEqual([]);
	expect(check.query("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all()).toEqual([
		{ name: "messages_search_delete" },
		{ name: "messages_search_update" },
	]);
	expect(
		check.query("SELECT name FROM pragma_index_list('messages') WHERE name = 'messages_doc'").all(),
	).toEqual([{ name: "messages_doc" }]);
	check.close();
	// The index file was not built again, and the edited-away text left it.
	const index = new Database(`${path}-search`, { readonly: true });
	expect(
		index
			.query("SELECT key, value FROM search_meta WHERE key IN ('test-mark', 'position') ORDER BY key")
			.all(),
	).toEqual([
		{ key: "position", value: "5" },
		{ key: "test-mark", value: "kept" },
	]);
	expect(
		index
			.query("SELECT rowid FROM search_trigrams WHERE search_trigrams MATCH ?")
			.all(trigramMatch("note 0 kiwi")),
	).toEqual([]);
	index.close();
});

test("a schema-6 database (its indexes inside it, a deleted text still queued) upgrades: searchable from the index file, the old index's pages zeroed", async () => {
	using dir = tempDir("hubbub-search-schema6-");
	const path = join(dir.path, "six.db");
	const first = new SqliteStore(path);
	await first.append({ room: "r", from: "a", text: "kept: the release notes", ts: T0 });
	const gone = await first.append({ room: "r", from: "a", text: "to delete", ts: T0 + 1 });
	await first.close();
	// What schema 6 left: both indexes in the file holding every text, and a deletion whose text the
	// thread had not forgotten yet (queued in search_forget, still in the indexes).
	const marker = "qzv9oldindexmarker";
	const raw = new Database(path);
	downgradeToSchema7(raw);
	raw.run("UPDATE messages SET text = ? WHERE seq = ?", [`to delete ${marker}`, gone.message.seq]);
	raw.run("UPDATE messages SET text = '', deleted = 1 WHERE seq = ?", [gone.message.seq]);
	raw.run("DROP TABLE search_forget");
	raw.run("CREATE VIRTUAL TABLE search_trigrams USING fts5(text, tokenize = 'trigram', content = '')");
	raw.run(
		"CREATE VIRTUAL TABLE search_words USING fts5(text, tokenize = 'unicode61', content = '', detail = none)",
	);
	raw.run("INSERT INTO meta (key, value) VALUES ('search_indexed', '2')");
	migrateSearchQueue(raw);
	for (const t of ["search_trigrams", "search_words"]) {
		raw.run(`INSERT INTO ${t} (rowid, text) VALUES (1, 'kept: the release notes')`);
		raw.run(`INSERT INTO ${t} (rowid, text) VALUES (2, ?)`, [`to delete ${marker}`]);
	}
	raw.run("INSERT INTO search_forget (doc, text) VALUES (2, ?)", [`to delete ${marker}`]);
	raw.run("UPDATE meta SET value = '6' WHERE key = 'schema'");
	raw.run("PRAGMA wal_checkpoint(TRUNCATE)");
	raw.close();
	for (const suffix of ["-search", "-search-wal", "-search-shm"]) rmSync(`${path}${suffix}`, { force: true });
	const holds = () =>
		[path, `${path}-wal`].some((f) => existsSync(f) && readFileSync(f).includes(marker.slice(3)));
	// The test can fail: the old index and the queue hold the deleted text.
	expect(holds()).toBe(true);

	const store = new SqliteStore(path);
	expect(texts((await store.search(q("release"), all)).hits)).toEqual(["kept: the release notes"]);
	expect((await store.search(q(marker), all)).hits).toEqual([]);
	await store.settled();
	await store.close();
	expect(holds()).toBe(false);
	const check = new Database(path, { readonly: true });
	expect(
		check.query("SELECT name FROM sqlite_master WHERE name LIKE 'search_%' ORDER BY name").all(),
	).toEqual([{ name: "search_forget" }]);
	check.close();
});

test("the index file's erasure rule: an entry handled twice, one for a text never indexed and several edits in a row leave a sound index of the current texts", async () => {
	using dir = tempDir("hubbub-search-rule-");
	const path = join(dir.path, "rule.db");
	const store = new SqliteStore(path);
	const one = await store.append({ room: "r", from: "a", text: "alpha original", ts: T0 });
	await store.search(q("alpha"), all); // indexed: the thread's work is done
	await store.close();
	// The search thread's view (the database with the index file attached), driven step by step.
	const db = new Database(path, { strict: true });
	openIndex(db, path);
	const search = new SqliteIndexer(db, db);
	const edit = (seq: number, text: string) =>
		db.run("UPDATE messages SET text = ? WHERE room = 'r' AND seq = ?", [text, seq]);
	const matches = (term: string) =>
		db.query("SELECT rowid FROM idx.search_trigrams WHERE search_trigrams MATCH ?").all(trigramMatch(term))
			.length;
	// Two edits in a row, both queued: the first names the indexed text, the second one the index never held.
	edit(one.message.seq, "beta second");
	edit(one.message.seq, "gamma third");
	// A message stored and edited before the thread indexed it: its entry names a text never indexed.
	db.run(
		"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts, doc) VALUES ('r', 2, 'a', 'a', NULL, 'delta first', 0, ?)",
		[nextDocs(db, 1)],
	);
	edit(2, "epsilon now");
	// All three handled, up to the third queue row; handled rows are not handled again.
	expect(search.eraseSome()).toBe(3);
	expect(search.eraseSome()).toBeUndefined();
	// Handled again all the same (as if the index had lost its mark): the same entries change nothing.
	db.run("UPDATE idx.search_meta SET value = '0' WHERE key = 'erased'");
	expect(search.eraseSome()).toBe(3);
	db.run("DELETE FROM search_forget WHERE id <= 3");
	while (search.catchUp() > 0);
	expect([matches("alpha"), matches("beta"), matches("gamma"), matches("delta"), matches("epsilon")]).toEqual(
		[0, 0, 1, 0, 1],
	);
	// FTS5's 'delete' given a text it did not index would have corrupted it.
	for (const t of ["search_trigrams", "search_words"])
		db.run(`INSERT INTO idx.${t} (${t}) VALUES ('integrity-check')`);
	db.close();
});

test("a database replaced by another (a copy put back by hand) gets a new index: the old file's index names other messages", async () => {
	using dir = tempDir("hubbub-search-replaced-");
	const path = join(dir.path, "live.db");
	const live = new SqliteStore(path);
	for (let i = 0; i < 5; i++) await live.append({ room: "r", from: "a", text: `live line ${i}`, ts: T0 + i });
	await live.search(q("live"), all);
	await live.close();
	const other = join(dir.path, "other.db");
	const copy = new SqliteStore(other);
	// More messages than the live one had: only its epoch tells the index is not its own.
	for (let i = 0; i < 8; i++)
		await copy.append({ room: "r", from: "b", text: `copied line ${i}`, ts: T0 + i });
	await copy.close();
	// The database file is replaced; its search index beside it stays (the test can fail: it still matches "live").
	copyFileSync(other, path);
	expect(existsSync(`${path}-search`)).toBe(true);
	const store = new SqliteStore(path);
	expect((await store.search(q("live"), all)).hits).toEqual([]);
	expect(texts((await store.search(q("copied"), all)).hits)).toEqual(
		Array.from({ length: 8 }, (_, i) => `copied line ${7 - i}`),
	);
	await store.close();
});

test("a message of files only (no text) that is given a text by an edit is found by it", async () => {
	using dir = tempDir("hubbub-search-caption-");
	const store = new SqliteStore(join(dir.path, "c.db"));
	const bare = await store.append({ room: "r", from: "a", text: "", ts: T0 });
	await store.append({ room: "r", from: "a", text: "another line", ts: T0 + 1 });
	expect((await store.search(q("line"), all)).hits).toHaveLength(1); // both indexed, the first with no text
	expect((await store.edit("r", bare.message.seq, "caption: the zebra crossing", T0 + 2)).ok).toBe(true);
	expect(texts((await store.search(q("zebra"), all)).hits)).toEqual(["caption: the zebra crossing"]);
	await store.close();
});

test("an older copy of the index file put back is built anew: it would hold a text edited away since", async () => {
	using dir = tempDir("hubbub-search-older-");
	const path = join(dir.path, "o.db");
	const first = new SqliteStore(path);
	const m = await first.append({ room: "r", from: "a", text: "the vault code is qx7vaultword", ts: T0 });
	await first.search(q("vault"), all);
	await first.close();
	const older = join(dir.path, "older-search");
	copyFileSync(`${path}-search`, older);
	const second = new SqliteStore(path);
	expect((await second.edit("r", m.message.seq, "the vault code is (removed)", T0 + 1)).ok).toBe(true);
	await second.settled();
	await second.close();
	const holds = () => readFileSync(`${path}-search`).includes("vaultword");
	expect(holds()).toBe(false);
	// The copy from before the edit comes back (a restore of the folder, a file copied by hand).
	copyFileSync(older, `${path}-search`);
	expect(holds()).toBe(true);
	const third = new SqliteStore(path);
	expect(texts((await third.search(q("removed"), all)).hits)).toEqual(["the vault code is (removed)"]);
	await third.settled();
	await third.close();
	expect(holds()).toBe(false);
});

test("a damaged index file is deleted and built anew: the store opens and finds", async () => {
	using dir = tempDir("hubbub-search-damaged-");
	const path = join(dir.path, "d.db");
	const first = new SqliteStore(path);
	await first.append({ room: "r", from: "a", text: "still findable after the damage", ts: T0 });
	await first.search(q("findable"), all);
	await first.close();
	writeFileSync(`${path}-search`, Buffer.alloc(8192, 0x5a));
	const store = new SqliteStore(path);
	expect(texts((await store.search(q("findable"), all)).hits)).toEqual(["still findable after the damage"]);
	await store.close();
});

test("a batch read for the search thread is not indexed once it is stale: an edit's erasure handled first, or the index moved on", async () => {
	using dir = tempDir("hubbub-search-stale-");
	const path = join(dir.path, "stale.db");
	const store = new SqliteStore(path);
	await store.append({ room: "r", from: "a", text: "alpha secret", ts: T0 });
	await store.close(); // before the search thread's turn: the message is not indexed
	const db = new Database(path, { strict: true });
	openIndex(db, path);
	const indexer = new SqliteIndexer(db, db);
	const matches = (term: string) =>
		db.query("SELECT rowid FROM idx.search_trigrams WHERE search_trigrams MATCH ?").all(trigramMatch(term))
			.length;
	// The store reads the batch; before the thread indexes it, the message is edited and the thread handles
	// that edit's erasure (the index holds nothing of it yet, so nothing is forgotten).
	const early = new PendingReader(db).read();
	expect(early?.rows.map((r) => r.text)).toEqual(["alpha secret"]);
	db.run("UPDATE messages SET text = 'beta public' WHERE room = 'r' AND seq = 1");
	expect(indexer.eraseSome()).toBe(1);
	// Indexed now, the batch's old text would stay findable (and in the file) for good: it is refused.
	expect(indexer.indexBatch(early as NonNullable<typeof early>)).toBeUndefined();
	expect(matches("alpha")).toBe(0);
	// Read again, the current text is indexed; a batch the index has moved past is refused too (no double entry).
	const late = new PendingReader(db).read();
	const stale = new PendingReader(db).read();
	expect(indexer.indexBatch(late as NonNullable<typeof late>)).toBe(1);
	expect(indexer.indexBatch(stale as NonNullable<typeof stale>)).toBeUndefined();
	expect([matches("alpha"), matches("beta")]).toEqual([0, 1]);
	db.close();
	// And the store finds it by its text of now only.
	const reopened = new SqliteStore(path);
	expect(texts((await reopened.search(q("public"), all)).hits)).toEqual(["beta public"]);
	expect((await reopened.search(q("secret"), all)).hits).toEqual([]);
	await reopened.close();
});

test.if(process.platform === "linux")(
	"on Linux the search thread runs at nice 19 (it gets the CPU the sends leave), the event loop at the process's",
	async () => {
		using dir = tempDir("hubbub-search-nice-");
		const store = new SqliteStore(join(dir.path, "nice.db"));
		await store.append({ room: "r", from: "a", text: "wakes the thread", ts: T0 });
		await store.settled();
		// The nice value of each of this process's threads (/proc: field 19 of stat).
		const nice = readdirSync("/proc/self/task").map((t) => {
			const stat = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
			return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
		});
		expect(nice).toContain(19);
		expect(nice[0]).toBe(0);
		await store.close();
	},
);

test("an index file of an older format is built anew at open (format 3: the trigram table keeps no positions)", async () => {
	using dir = tempDir("hubbub-search-format-");
	const path = join(dir.path, "f.db");
	const first = new SqliteStore(path);
	await first.append({ room: "r", from: "a", text: "kept through the rebuild", ts: T0 });
	await first.settled();
	await first.close();
	const tables = () => {
		const index = new Database(`${path}-search`, { readonly: true });
		const { sql } = index.query("SELECT sql FROM sqlite_master WHERE name = 'search_trigrams'").get() as {
			sql: string;
		};
		const format = (
			index.query("SELECT value FROM search_meta WHERE key = 'format'").get() as { value: string }
		).value;
		index.close();
		return { format, positions: !sql.includes("detail = none") };
	};
	expect(tables()).toEqual({ format: "3", positions: false });
	// As a hubbub of format 2 left it: its trigram table kept positions (phrase queries), and held the text
	// (and, here, a large old index: the rebuilt file gives its pages back).
	const old = new Database(`${path}-search`);
	old.run("DROP TABLE search_trigrams");
	old.run(
		"CREATE VIRTUAL TABLE search_trigrams USING fts5(text, tokenize = 'trigram', content = '', columnsize = 0)",
	);
	old.run("INSERT INTO search_trigrams (rowid, text) VALUES (1, 'kept through the rebuild')");
	const filler = old.query("INSERT INTO search_trigrams (rowid, text) VALUES (?, ?)");
	old.transaction(() => {
		for (let i = 2; i < 3000; i++) filler.run(i, `${i} ${crypto.randomUUID()} ${crypto.randomUUID()}`);
	})();
	old.run("UPDATE search_meta SET value = '2' WHERE key = 'format'");
	old.close();
	expect(tables()).toEqual({ format: "2", positions: true });
	const oldSize = statSync(`${path}-search`).size;
	const after = new SqliteStore(path);
	// Given back at open, not only once the last connection closes: the file and its WAL.
	for (const file of [`${path}-search`, `${path}-search-wal`])
		expect(statSync(file, { throwIfNoEntry: false })?.size ?? 0).toBeLessThan(oldSize / 4);
	expect(texts((await after.search(q("rebuild"), all)).hits)).toEqual(["kept through the rebuild"]);
	await after.settled();
	await after.close();
	expect(tables()).toEqual({ format: "3", positions: false });
	expect(statSync(`${path}-search`).size).toBeLessThan(oldSize / 4);
});

test("a search thread that dies before it answers an erasure is replaced: searches do not each wait their full time, settled() ends", async () => {
	using dir = tempDir("hubbub-search-died-");
	const path = join(dir.path, "died.db");
	const store = new SqliteStore(path);
	const sent = await store.append({ room: "r", from: "a", text: "alpha draft", ts: T0 });
	await store.settled();
	const inside = store as unknown as { worker: Worker };
	const first = inside.worker;
	// Its answers are lost from here on (as they are when it dies), and it dies once it has erased.
	first.onmessage = null;
	await store.edit("r", sent.message.seq, "beta final", T0 + 1);
	const index = new Database(`${path}-search`, { readonly: true });
	const erased = () =>
		(index.query("SELECT value FROM search_meta WHERE key = 'erased'").get() as { value: string }).value;
	while (erased() !== "1") await Bun.sleep(10);
	index.close();
	first.terminate();
	first.onerror?.(new ErrorEvent("error", { message: "the test's thread ended" }));
	const timedOut = Symbol("timed out");
	const raced = await Promise.race([store.settled(), Bun.sleep(8000).then(() => timedOut)]);
	expect(raced).not.toBe(timedOut);
	expect(texts((await store.search(q("final"), all)).hits)).toEqual(["beta final"]);
	await store.close();
}, 20_000);

test("rows another process's thread erased but whose store never deleted them (it died) leave the queue with this process's next round", async () => {
	using dir = tempDir("hubbub-search-orphans-");
	const path = join(dir.path, "o.db");
	const store = new SqliteStore(path);
	await store.append({ room: "r", from: "a", text: "secret words here", ts: T0 });
	await store.settled();
	// Another process edits the message; its search thread erases the old text, and it dies before its store
	// deletes the queue row (which still holds the old text, in the database file).
	const other = new Database(path, { strict: true });
	other.run("PRAGMA busy_timeout = 5000");
	other.run("UPDATE messages SET text = 'public words' WHERE room = 'r' AND seq = 1");
	const read = new Database(path, { strict: true, readonly: true });
	const index = new Database(":memory:", { strict: true });
	openIndex(index, path);
	expect(new SqliteIndexer(read, index).eraseSome()).toBe(1);
	for (const db of [read, index, other]) db.close();
	const queued = () => {
		const check = new Database(path, { readonly: true });
		const n = (check.query("SELECT count(*) AS n FROM search_forget").get() as { n: number }).n;
		check.close();
		return n;
	};
	expect(queued()).toBe(1);
	await store.append({ room: "r", from: "a", text: "another line", ts: T0 + 1 });
	await store.settled();
	expect(queued()).toBe(0);
	await store.close();
});

test("an in-memory SQLite store (--db :memory:) finds and forgets like a file: no thread can open it, so it indexes in line", async () => {
	const store = new SqliteStore(":memory:");
	await store.append({ room: "r", from: "a", text: "kept in memory only", ts: T0 });
	const edited = await store.append({ room: "r", from: "a", text: "a first draft", ts: T0 + 1 });
	expect(texts((await store.search(q("memory"), all)).hits)).toEqual(["kept in memory only"]);
	expect(texts((await store.search(q("draft"), all)).hits)).toEqual(["a first draft"]);
	await store.edit("r", edited.message.seq, "the final words", T0 + 2);
	expect((await store.search(q("draft"), all)).hits).toEqual([]);
	expect(texts((await store.search(q("final"), all)).hits)).toEqual(["the final words"]);
	await store.close();
});

test("a backlog left unindexed is indexed by the search thread while sends go on, each with the next seq", async () => {
	using dir = tempDir("hubbub-search-backlog-");
	const path = join(dir.path, "s.db");
	await fileWithFirst(path, "seed");
	// 5,000 messages stored as by an older hubbub or another writer, none of them in the indexes yet.
	const raw = new Database(path);
	raw.transaction(() => {
		const insert = raw.query(
			"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts) VALUES ('r', ?, 'b', 'b', NULL, ?, ?)",
		);
		for (let seq = 2; seq <= 5001; seq++)
			insert.run(
				seq,
				seq === 2 ? "the oldest line mentions zanzibar" : `backlog line ${seq} about the deploy`,
				T0 + seq,
			);
	})();
	raw.close();
	const store = new SqliteStore(path);
	// Sends while the thread indexes: every one is stored, in order, and found.
	const sent = await Promise.all(
		Array.from({ length: 200 }, (_, i) =>
			store.append({ room: "r", from: "c", text: `live ${i}`, ts: T0 + 10_000 + i }),
		),
	);
	expect(sent.map((s) => s.message.seq)).toEqual(Array.from({ length: 200 }, (_, i) => 5002 + i));
	expect((await store.search({ ...q("live"), limit: 50 }, all)).hits).toHaveLength(50);
	// The oldest of the backlog too: the search waited for the thread to index everything stored before it.
	expect(texts((await store.search(q("zanzibar"), all)).hits)).toEqual(["the oldest line mentions zanzibar"]);
	await store.close();
});

test("a message sent while long deleted texts are being erased is found at once, not after the erasure", async () => {
	using dir = tempDir("hubbub-search-erasing-");
	const store = new SqliteStore(join(dir.path, "s.db"));
	// Random words: forgetting one such 4000-character text rewrites thousands of trigram lists (0.1–3 s).
	const words = () =>
		Array.from({ length: 800 }, () => Math.random().toString(36).slice(2, 7))
			.join(" ")
			.slice(0, 4000);
	const long = [];
	for (let i = 0; i < 60; i++)
		long.push(await store.append({ room: "r", from: "a", text: words(), ts: T0 + i }));
	expect((await store.search(q("quokka"), all)).hits).toEqual([]); // indexes them, so deleting queues erasures
	for (const m of long) await store.remove("r", m.message.seq);
	await store.append({ room: "r", from: "b", text: "the quokka arrived", ts: T0 + 100 });
	expect(texts((await store.search(q("quokka"), all)).hits)).toEqual(["the quokka arrived"]);
	await store.close();
}, 60_000);

/** Which messages (ids for search) the index file holds for `term`, read beside the store. */
function indexed(path: string, term: string): number[] {
	const index = new Database(`${path}-search`, { readonly: true });
	try {
		return index
			.query<{ rowid: number }, [string]>("SELECT rowid FROM search_trigrams WHERE search_trigrams MATCH ?")
			.all(trigramMatch(term))
			.map((r) => r.rowid);
	} finally {
		index.close();
	}
}

test("while sends keep the event loop busy, indexing waits (a search still finds what was just sent), and runs once the loop has room", async () => {
	using dir = tempDir("hubbub-search-busy-");
	const path = join(dir.path, "busy.db");
	let busy = true;
	let looks = 0;
	const store = new SqliteStore(path, {
		loopLoad: () => {
			looks++;
			return busy ? 0.9 : 0.05;
		},
	});
	try {
		await store.append({ room: "r", from: "a", text: "first kiwi", ts: T0 });
		// The hand-over's second came twice (one look as it was set, one each time it came), on a busy loop.
		await until(() => looks >= 3, 5000, "two looks at the loop's load");
		expect(indexed(path, "kiwi")).toEqual([]);
		// A search does not wait for the loop: it hands over first.
		expect(texts((await store.search(q("kiwi"), all)).hits)).toEqual(["first kiwi"]);
		expect(indexed(path, "kiwi")).toEqual([1]);
		await store.append({ room: "r", from: "a", text: "second kiwi", ts: T0 + 1 });
		const before = looks;
		busy = false;
		await until(() => indexed(path, "kiwi").length === 2, 5000, "the second message indexed");
		expect(looks).toBeGreaterThan(before);
	} finally {
		await store.close();
	}
});

test("indexing waits on a busy event loop only so long, however steadily sends go on: then it runs whatever the load", async () => {
	using dir = tempDir("hubbub-search-lag-");
	const path = join(dir.path, "lag.db");
	let looks = 0;
	const store = new SqliteStore(path, {
		loopLoad: () => {
			looks++;
			return 1;
		},
		indexMaxLagMs: 2500,
	});
	try {
		const t0 = performance.now();
		await store.append({ room: "r", from: "a", text: "plum at last", ts: T0 });
		// Sends keep coming (each commit asks for a hand-over again): the wait still ends at its bound.
		let n = 0;
		await until(
			async () => {
				await store.append({ room: "r", from: "a", text: `steady ${n++}`, ts: T0 + n });
				return indexed(path, "plum").length === 1;
			},
			10_000,
			"indexed after the longest wait",
		);
		// It waited (the loop was busy at every look), and not past its bound and the next second.
		expect(looks).toBeGreaterThanOrEqual(2);
		expect(performance.now() - t0).toBeGreaterThanOrEqual(1500);
	} finally {
		await store.close();
	}
});

test("a search that could not wait for the newest messages to be indexed says so (first pages only), and finds them a moment later", async () => {
	using dir = tempDir("hubbub-search-behind-");
	const path = join(dir.path, "behind.db");
	// A busy server: nothing handed over yet, and no time for a search to wait for it.
	const store = new SqliteStore(path, { loopLoad: () => 1, indexMaxLagMs: 60_000, searchWaitMs: 0 });
	try {
		for (let i = 0; i < 30; i++) await store.append({ room: "r", from: "a", text: `fig ${i}`, ts: T0 + i });
		const first = await store.search(q("fig", { limit: 5 }), all);
		expect(first.behind).toBe(true);
		// A search with nothing to look for does not say so.
		expect((await store.search(q("!!"), all)).behind).toBeUndefined();
		await store.settled();
		const again = await store.search(q("fig", { limit: 5 }), all);
		expect(again.behind).toBeUndefined();
		expect(texts(again.hits)).toEqual(["fig 29", "fig 28", "fig 27", "fig 26", "fig 25"]);
		await store.append({ room: "r", from: "a", text: "fig 30", ts: T0 + 30 });
		// A later page walks older, indexed messages: it never says so.
		const next = await store.search(q("fig", { limit: 5, cursor: again.cursor }), all);
		expect(next.behind).toBeUndefined();
		expect(texts(next.hits)).toEqual(["fig 24", "fig 23", "fig 22", "fig 21", "fig 20"]);
	} finally {
		await store.close();
	}
});

test("after an edit, a search waits for the old text to leave the index, not for the index's WAL to be truncated (another reader can hold that up)", async () => {
	using dir = tempDir("hubbub-search-held-");
	const path = join(dir.path, "held.db");
	const store = new SqliteStore(path, { searchWaitMs: 2000 });
	const reader = new Database(`${path}-search`, { readonly: true });
	try {
		const m = await store.append({ room: "r", from: "a", text: "draft lemon", ts: T0 });
		await store.settled();
		// A reader elsewhere (another process, a backup tool) holds a snapshot of the index: its WAL cannot be
		// truncated until it lets go (the thread retries for a minute).
		reader.run("BEGIN");
		reader.query("SELECT count(*) FROM search_meta").get();
		await store.edit("r", m.message.seq, "final lime", T0 + 1);
		const page = await store.search(q("lime"), all);
		expect(texts(page.hits)).toEqual(["final lime"]);
		expect(page.behind).toBeUndefined();
		expect((await store.search(q("lemon"), all)).hits).toEqual([]);
	} finally {
		reader.run("ROLLBACK");
		reader.close();
		await store.close();
	}
});

test("on a busy event loop an edit's and a deletion's old texts still leave the index at once", async () => {
	using dir = tempDir("hubbub-search-busy-erase-");
	const path = join(dir.path, "erase.db");
	const store = new SqliteStore(path, { loopLoad: () => 1, indexMaxLagMs: 60_000 });
	try {
		const one = await store.append({ room: "r", from: "a", text: "quince secret", ts: T0 });
		const two = await store.append({ room: "r", from: "a", text: "quince draft", ts: T0 + 1 });
		await store.settled();
		expect(indexed(path, "quince").toSorted()).toEqual([1, 2]);
		await store.remove("r", one.message.seq);
		await store.edit("r", two.message.seq, "final words", T0 + 3);
		// No search asks: the erasures do not wait for the loop.
		await until(() => indexed(path, "quince").length === 0, 5000, "the old texts forgotten");
		expect(indexed(path, "final")).toEqual([2]);
	} finally {
		await store.close();
	}
});

/** A store at `path` with one message sent through it ("first via the store", room r seq 1). */
async function storeWithFirst(path: string): Promise<SqliteStore> {
	const store = new SqliteStore(path);
	await store.append({ room: "r", from: "a", text: "first via the store", ts: T0 });
	return store;
}

/** Stores room r's seq 2 with plain SQL, as another writer would: without an id for search. */
function storeByHand(path: string, text: string): void {
	const raw = new Database(path);
	raw.run("PRAGMA busy_timeout = 5000");
	raw.run(
		"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts) VALUES ('r', 2, 'b', 'b', NULL, ?, ?)",
		[text, T0 + 1],
	);
	raw.close();
}

test("a message stored with plain SQL is found by a search even when nothing was sent after it", async () => {
	using dir = tempDir("hubbub-search-raw-");
	const path = join(dir.path, "raw.db");
	const store = await storeWithFirst(path);
	try {
		storeByHand(path, "written by hand");
		expect(texts((await store.search(q("by hand"), all)).hits)).toEqual(["written by hand"]);
		expect((await store.append({ room: "r", from: "a", text: "and on", ts: T0 + 2 })).message.seq).toBe(3);
	} finally {
		await store.close();
	}
});

test("a search that cannot number a message stored with plain SQL (the file is locked) says it is behind, and finds it once it can", async () => {
	using dir = tempDir("hubbub-search-raw-");
	const path = join(dir.path, "raw.db");
	const store = await storeWithFirst(path);
	storeByHand(path, "written by hand");
	const raw = new Database(path);
	try {
		raw.run("BEGIN IMMEDIATE");
		const locked = await store.search(q("by hand"), all);
		expect(locked).toMatchObject({ hits: [], behind: true });
		raw.run("ROLLBACK");
		const found = await store.search(q("by hand"), all);
		expect(texts(found.hits)).toEqual(["written by hand"]);
		expect(found.behind).toBeUndefined();
	} finally {
		raw.close();
		await store.close();
	}
});

test("schema 9's insert trigger is gone after the upgrade to 10, and a row stored without an id is still numbered", async () => {
	using dir = tempDir("hubbub-search-raw-");
	const path = join(dir.path, "nine.db");
	await fileWithFirst(path, "before the upgrade");
	const raw = new Database(path);
	raw.run(`CREATE TRIGGER messages_search_number AFTER INSERT ON messages WHEN new.doc IS NULL BEGIN
		UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'docs';
		UPDATE messages SET doc = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'docs')
			WHERE room = new.room AND seq = new.seq;
	END`);
	raw.run("UPDATE meta SET value = '9' WHERE key = 'schema'");
	raw.close();
	const store = new SqliteStore(path);
	try {
		const check = new Database(path);
		expect(check.query("SELECT value FROM meta WHERE key = 'schema'").get()).toEqual({ value: "11" });
		expect(check.query("SELECT name FROM sqlite_master WHERE name = 'messages_search_number'").all()).toEqual(
			[],
		);
		check.run(
			"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts) VALUES ('r', 2, 'b', 'b', NULL, 'after the upgrade', ?)",
			[T0 + 1],
		);
		// No trigger numbered it: the store does.
		expect(check.query("SELECT doc FROM messages WHERE seq = 2").get()).toEqual({ doc: null });
		check.close();
		expect(texts((await store.search(q("the upgrade"), all)).hits)).toEqual([
			"after the upgrade",
			"before the upgrade",
		]);
	} finally {
		await store.close();
	}
});

test("a message another writer stores with plain SQL while a store runs is numbered for search, and the store's next send takes the next seq", async () => {
	using dir = tempDir("hubbub-search-raw-");
	const path = join(dir.path, "raw.db");
	const store = await storeWithFirst(path);
	try {
		storeByHand(path, "second by hand");
		const third = await store.append({ room: "r", from: "a", text: "third via the store", ts: T0 + 2 });
		expect(third.message.seq).toBe(3);
		// That send's commit gave the stray its id (between the two it was stored between), for the thread to index.
		const check = new Database(path, { readonly: true });
		expect(check.query("SELECT seq, doc FROM messages ORDER BY seq").all()).toEqual([
			{ seq: 1, doc: 1 },
			{ seq: 2, doc: 2 },
			{ seq: 3, doc: 3 },
		]);
		check.close();
		expect(texts((await store.search(q("the store"), all)).hits)).toEqual([
			"third via the store",
			"first via the store",
		]);
		expect(texts((await store.search(q("by hand"), all)).hits)).toEqual(["second by hand"]);
	} finally {
		await store.close();
	}
});

test("an index of ids for search dropped by hand is made again at open: the store opens, finds, and goes on", async () => {
	using dir = tempDir("hubbub-search-docindex-");
	const path = join(dir.path, "d.db");
	await fileWithFirst(path, "before the index went");
	const raw = new Database(path);
	raw.run("DROP INDEX messages_doc");
	raw.close();
	const again = new SqliteStore(path);
	await again.append({ room: "r", from: "a", text: "after the index went", ts: T0 + 1 });
	expect(texts((await again.search(q("index went"), all)).hits)).toEqual([
		"after the index went",
		"before the index went",
	]);
	await again.close();
});
