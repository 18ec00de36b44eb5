// Search in the SQLite store: two FTS5 indexes in a file beside the database (a trigram one for substrings and a word one
// for short terms), kept in step with `messages` by the search thread (SqliteIndexer), and the searches that read them.
import type { Database, Statement } from "bun:sqlite";
import { realpathSync } from "node:fs";
import { BadCursor, type Candidate, type SearchPlan } from "./search.ts";
import type { StoredRow } from "./store.ts";

/**
 * Schema 3. `messages` has no integer rowid (WITHOUT ROWID), which FTS5 needs,
 * so `search_docs` gives each message one, in arrival order (newest first =
 * highest id), through a trigger: every writer (a send, `hubbub import`,
 * another process on the file) gets one. The two FTS5 indexes are contentless
 * (the text lives once, in `messages`) with contentless_delete, so retention,
 * deletes and edits remove a message from them (the delete and update
 * triggers); schema 4 makes them erase it too (migrateSearchErasure). They are filled by `catchUp`, not by an insert trigger: FTS5
 * writes a segment per statement inside a trigger, which made each send's
 * commit 20–50 times dearer; written in batches of top-level statements it
 * costs a few tens of µs a message, off the send's path.
 */
export function migrateSearch(db: Database): void {
	db.run(`CREATE TABLE search_docs (
		id INTEGER PRIMARY KEY,
		room TEXT NOT NULL,
		seq INTEGER NOT NULL,
		UNIQUE (room, seq)
	)`);
	// Trigram: any substring of 3+ characters, also in text without spaces (Japanese, ERR_SOCKET_TIMEOUT).
	db.run(
		"CREATE VIRTUAL TABLE search_trigrams USING fts5(text, tokenize = 'trigram', content = '', contentless_delete = 1)",
	);
	// Words: 1–2 character terms (a trigram index cannot find them); single-token prefix queries need no positions.
	db.run(
		"CREATE VIRTUAL TABLE search_words USING fts5(text, tokenize = 'unicode61', content = '', contentless_delete = 1, detail = none)",
	);
	// Merging segments less eagerly than the default (4) keeps an indexing batch's cost near the tokenizing alone.
	for (const table of ["search_trigrams", "search_words"])
		db.run(`INSERT INTO ${table} (${table}, rank) VALUES ('automerge', 16)`);
	// Every search_docs id up to this one is in both indexes.
	db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('search_indexed', '0')");
	db.run(`CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
		INSERT INTO search_docs (room, seq) VALUES (new.room, new.seq);
	END`);
	// Deleting a rowid an index never got is a no-op for a contentless_delete table.
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
		DELETE FROM search_trigrams WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		DELETE FROM search_words WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		DELETE FROM search_docs WHERE room = old.room AND seq = old.seq;
	END`);
	// An edit: the new text replaces the old in the indexes under the same id (its place in the order stays);
	// a message not indexed yet is left to catchUp, which reads the text as it is then.
	db.run(`CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages BEGIN
		DELETE FROM search_trigrams WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		DELETE FROM search_words WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		INSERT INTO search_trigrams (rowid, text) SELECT id, new.text FROM search_docs
			WHERE room = new.room AND seq = new.seq AND id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'search_indexed');
		INSERT INTO search_words (rowid, text) SELECT id, new.text FROM search_docs
			WHERE room = new.room AND seq = new.seq AND id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'search_indexed');
	END`);
	// Messages stored before this version, oldest first so ids follow arrival; catchUp indexes them.
	db.run("INSERT INTO search_docs (room, seq) SELECT room, seq FROM messages ORDER BY ts, room, seq");
}

/**
 * Schema 4. A deleted (or edited) message must not stay findable by its old
 * text, nor readable in the file. A contentless_delete table cannot forget a
 * text: it only marks the row deleted and its tokens stay in the index pages
 * until a merge happens to rewrite them. So the two indexes become plain
 * contentless tables with FTS5's secure-delete option, and the triggers
 * remove a row with FTS5's 'delete' command, given the text the row was
 * indexed with (`old.text`: the text is only ever changed through these
 * triggers, so it is what was indexed); secure-delete then takes its tokens
 * out of the index pages at once, and PRAGMA secure_delete (set at every
 * open, lib/store-sqlite.ts) zeroes the space they leave. The indexes are
 * filled again from the start by catchUp, in steps, after the migration.
 * `search_docs` ids become AUTOINCREMENT: an id given again after retention
 * removed the newest one would sit below `search_indexed` unindexed, and a
 * 'delete' of it would corrupt the index.
 */
export function migrateSearchErasure(db: Database): void {
	for (const trigger of ["insert", "delete", "update"]) db.run(`DROP TRIGGER messages_search_${trigger}`);
	for (const table of ["search_docs", "search_trigrams", "search_words"]) db.run(`DROP TABLE ${table}`);
	db.run(`CREATE TABLE search_docs (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		room TEXT NOT NULL,
		seq INTEGER NOT NULL,
		UNIQUE (room, seq)
	)`);
	db.run("INSERT INTO search_docs (room, seq) SELECT room, seq FROM messages ORDER BY ts, room, seq");
	db.run(`CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
		INSERT INTO search_docs (room, seq) VALUES (new.room, new.seq);
	END`);
	db.run("CREATE VIRTUAL TABLE search_trigrams USING fts5(text, tokenize = 'trigram', content = '')");
	db.run(
		"CREATE VIRTUAL TABLE search_words USING fts5(text, tokenize = 'unicode61', content = '', detail = none)",
	);
	for (const table of ["search_trigrams", "search_words"]) {
		db.run(`INSERT INTO ${table} (${table}, rank) VALUES ('automerge', 16)`);
		db.run(`INSERT INTO ${table} (${table}, rank) VALUES ('secure-delete', 1)`);
	}
	db.run("UPDATE meta SET value = '0' WHERE key = 'search_indexed'");
	// Only rows catchUp has indexed are in the indexes: a 'delete' of any other would corrupt them.
	const indexed = (row: "old" | "new") =>
		`FROM search_docs WHERE room = ${row}.room AND seq = ${row}.seq
			AND id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'search_indexed')`;
	const forget = ["search_trigrams", "search_words"]
		.map((t) => `INSERT INTO ${t} (${t}, rowid, text) SELECT 'delete', id, old.text ${indexed("old")};`)
		.join("\n");
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
		${forget}
		DELETE FROM search_docs WHERE room = old.room AND seq = old.seq;
	END`);
	// An edit or deletion: the new text (also "") replaces the old under the same id, its place in the order kept.
	db.run(`CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages BEGIN
		${forget}
		INSERT INTO search_trigrams (rowid, text) SELECT id, new.text ${indexed("new")};
		INSERT INTO search_words (rowid, text) SELECT id, new.text ${indexed("new")};
	END`);
}

/**
 * Schema 6. FTS5's secure-delete of a long text costs 0.1–3 s (thousands of
 * trigram doclists rewritten), too much for the event loop. So the triggers
 * no longer forget a text themselves: they queue, in `search_forget`, the
 * text a message was indexed with (one row per message: the first change
 * after indexing; later ones before the erasure change nothing in the
 * index), and the search thread (lib/search-worker.ts) forgets it, indexes the
 * current text again, deletes the row and truncates the WAL. The queue's
 * rows are erased like any (PRAGMA secure_delete). Until then the index may
 * still match the old text: lib/search.ts's matcher re-checks every
 * candidate's current text, so it is never shown.
 */
export function migrateSearchQueue(db: Database): void {
	for (const trigger of ["delete", "update"]) db.run(`DROP TRIGGER messages_search_${trigger}`);
	// IF NOT EXISTS: a file rolled back to an older schema by hand (tests do) may still hold it.
	db.run("CREATE TABLE IF NOT EXISTS search_forget (doc INTEGER PRIMARY KEY, text TEXT NOT NULL)");
	const queue = `INSERT OR IGNORE INTO search_forget (doc, text) SELECT id, old.text FROM search_docs
		WHERE room = old.room AND seq = old.seq
		AND id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'search_indexed');`;
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
		${queue}
		DELETE FROM search_docs WHERE room = old.room AND seq = old.seq;
	END`);
	db.run(`CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages BEGIN
		${queue}
	END`);
}

/**
 * Schema 7. The two indexes move to a file of their own beside the database
 * (`<db>-search`, see openIndex): their pages went into the database's WAL,
 * so every send's commit, which syncs it, also synced them (4× the bytes
 * written at 10,000 msg/s, commits 3× slower). The messages keep
 * `search_docs` (ids in arrival order, given by the insert trigger) and the
 * erasure queue; a trigger cannot reach another file, so the queue now
 * takes the old text of every change of a stored message (not only of those
 * indexed: the index's position is in the other file; also "", as a message
 * of files only may get a text), one row per change in order, and the
 * search thread sorts out what the index holds (eraseSome). The old in-file indexes are dropped (PRAGMA secure_delete
 * zeroes their pages); the search thread builds the new file from the start.
 */
export function migrateSearchFile(db: Database): void {
	for (const trigger of ["delete", "update"]) db.run(`DROP TRIGGER IF EXISTS messages_search_${trigger}`);
	for (const table of ["search_trigrams", "search_words", "search_forget"])
		db.run(`DROP TABLE IF EXISTS ${table}`);
	db.run("DELETE FROM meta WHERE key = 'search_indexed'");
	db.run(
		"CREATE TABLE search_forget (id INTEGER PRIMARY KEY AUTOINCREMENT, doc INTEGER NOT NULL, text TEXT NOT NULL)",
	);
	const queue = `INSERT INTO search_forget (doc, text) SELECT id, old.text FROM search_docs
		WHERE room = old.room AND seq = old.seq;`;
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
		${queue}
		DELETE FROM search_docs WHERE room = old.room AND seq = old.seq;
	END`);
	db.run(`CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages WHEN old.text <> new.text BEGIN
		${queue}
	END`);
}

/**
 * The insert trigger of schema 8 (migrateSearchDocs): the message's id for search, in arrival order, is
 * kept in search_docs and in the message itself. AUTOINCREMENT: an id is never given again (see
 * migrateSearchErasure).
 */
const SEARCH_INSERT_TRIGGER = `CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
		INSERT INTO search_docs (room, seq) VALUES (new.room, new.seq);
		UPDATE messages SET doc = last_insert_rowid() WHERE room = new.room AND seq = new.seq;
	END`;

/**
 * Schema 8. `search_docs` had a unique index on (room, seq), for the
 * triggers to find a message's id: an index whose pages, like the
 * messages', are spread over the rooms, so each send's commit wrote about
 * as many pages again (16 MB/s of writes at 2,500 msg/s in the rooms
 * bench, 11 without search). The id now sits in the message's own row
 * (`doc`, written on the page the insert has just written), and
 * search_docs is appended to in id order only. Ids are kept: the index
 * file stays valid.
 */
export function migrateSearchDocs(db: Database): void {
	for (const trigger of ["insert", "delete", "update"])
		db.run(`DROP TRIGGER IF EXISTS messages_search_${trigger}`);
	db.run("ALTER TABLE messages ADD COLUMN doc INTEGER");
	db.run(
		"UPDATE messages SET doc = (SELECT id FROM search_docs s WHERE s.room = messages.room AND s.seq = messages.seq)",
	);
	const last = sequence(db, "search_docs");
	db.run(
		"CREATE TABLE search_docs_by_id (id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, seq INTEGER NOT NULL)",
	);
	db.run("INSERT INTO search_docs_by_id (id, room, seq) SELECT id, room, seq FROM search_docs ORDER BY id");
	db.run("DROP TABLE search_docs");
	db.run("ALTER TABLE search_docs_by_id RENAME TO search_docs");
	// The counter goes on from where it was (the newest ids may have been removed since they were given).
	db.run("DELETE FROM sqlite_sequence WHERE name = 'search_docs'");
	if (last > 0) db.run("INSERT INTO sqlite_sequence (name, seq) VALUES ('search_docs', ?)", [last]);
	db.run(SEARCH_INSERT_TRIGGER);
	// Every change of a stored message queues its old text (see migrateSearchFile).
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages WHEN old.doc IS NOT NULL BEGIN
		INSERT INTO search_forget (doc, text) VALUES (old.doc, old.text);
		DELETE FROM search_docs WHERE id = old.doc;
	END`);
	db.run(`CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages
		WHEN old.text <> new.text AND old.doc IS NOT NULL BEGIN
		INSERT INTO search_forget (doc, text) VALUES (old.doc, old.text);
	END`);
}

/**
 * Schema 9. The insert trigger of schema 8 cost a send 12–14 µs of the
 * event loop's time (an AUTOINCREMENT row, its counter, and the message's
 * row written again with its id): as much again as the message's own
 * insert. hubbub's writers now give the id in the INSERT itself, counting
 * on from `meta`'s `docs` (nextDocs), and a unique index of `doc`
 * (appended to at its end only: ids rise) replaces search_docs. A row
 * stored another way (raw SQL, an older hubbub still running during the
 * upgrade) has no id: the store finds and numbers it (numberUnnumbered;
 * schema 9 first had a trigger for that, see schema 10). Ids
 * and the counter are kept: the index file stays valid.
 */
export function migrateSearchDocIndex(db: Database): void {
	db.run("DROP TRIGGER IF EXISTS messages_search_insert");
	db.run("DROP TRIGGER IF EXISTS messages_search_delete");
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages WHEN old.doc IS NOT NULL BEGIN
		INSERT INTO search_forget (doc, text) VALUES (old.doc, old.text);
	END`);
	// The highest id ever given, not the highest held: the newest may have been removed since.
	db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('docs', ?)", [
		String(sequence(db, "search_docs")),
	]);
	db.run("DROP TABLE search_docs");
	ensureDocIndex(db);
}

/**
 * The index of messages' ids for search (schema 9 on). Unique: a numbering bug fails loudly instead of
 * giving FTS5 one rowid for two texts. Run at every open too: the store's lookups name it (INDEXED BY),
 * so one dropped by hand is made again.
 */
export function ensureDocIndex(db: Database): void {
	db.run("CREATE UNIQUE INDEX IF NOT EXISTS messages_doc ON messages (doc)");
}

/**
 * Schema 10: no insert trigger numbers a message stored without its id for search (schema 9 had one,
 * guarded by `WHEN new.doc IS NULL`). Even with its body never run, a row trigger cost every send's
 * insert 3–5 µs on the event loop (docs/PERFORMANCE.md); the store now finds such rows itself
 * (one lookup of this index a commit) and numbers them (numberUnnumbered).
 */
export function migrateNoNumberTrigger(db: Database): void {
	db.run("DROP TRIGGER IF EXISTS messages_search_number");
}

/** The highest message id for search given so far (schema 9: kept in `meta`). */
export function lastDoc(db: Database): number {
	return Number(
		db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'docs'").get()?.value ?? 0,
	);
}

/**
 * Gives the messages a writer is about to insert their ids for search:
 * returns the first of `n` and moves the counter past them. Call it inside
 * the write transaction of the inserts (so no other writer takes the same).
 */
export function nextDocs(db: Database, n: number): number {
	const first = lastDoc(db) + 1;
	if (n > 0) setLastDoc(db, first + n - 1);
	return first;
}

/**
 * Gives an id for search, in arrival order, to any message stored without
 * one (by plain SQL, or by an older hubbub during an upgrade: hubbub's
 * writers give it in their INSERT), and moves the counter past them, so the
 * search thread finds them and every store's cached seqs see that write.
 * Call it inside a write transaction (SqliteStore: at open, and at a commit
 * or a search that found such rows). One statement: a million such messages
 * are never held in memory.
 */
export function numberUnnumbered(db: Database): void {
	const n = db.query<{ n: number }, []>("SELECT count(*) AS n FROM messages WHERE doc IS NULL").get()?.n ?? 0;
	if (n === 0) return;
	const first = nextDocs(db, n);
	db.run(
		`UPDATE messages SET doc = ?1 + r.n - 1 FROM (
			SELECT room, seq, row_number() OVER (ORDER BY ts, room, seq) AS n FROM messages WHERE doc IS NULL
		) AS r WHERE messages.room = r.room AND messages.seq = r.seq`,
		[first],
	);
}

/** Moves the counter to `doc`, the last id a writer gave (SqliteStore counts as it inserts). */
export function setLastDoc(db: Database, doc: number): void {
	db.query<unknown, [string]>("UPDATE meta SET value = ? WHERE key = 'docs'").run(String(doc));
}

/** The search index of the database at `path`: a SQLite file beside it, named like its -wal and -shm. */
export function indexPath(path: string): string {
	if (path === "" || path === ":memory:") return ":memory:";
	// One index per database file, whatever path (a symbolic link) leads to it: two would share one queue.
	try {
		return `${realpathSync(path)}-search`;
	} catch {
		return `${path}-search`;
	}
}

/** One value of the index file's search_meta (format, epoch, position, erased), on a connection with it attached. */
export function indexMeta(db: Database, key: string): string | undefined {
	return db.query<{ value: string }, [string]>("SELECT value FROM idx.search_meta WHERE key = ?").get(key)
		?.value;
}

/** The highest id an AUTOINCREMENT table of the database has given (0: none yet). */
function sequence(db: Database, table: "search_docs" | "search_forget"): number {
	return (
		db.query<{ seq: number }, [string]>("SELECT seq FROM sqlite_sequence WHERE name = ?").get(table)?.seq ?? 0
	);
}

/**
 * The index's format: a file of another format is built anew (2: the tables without columnsize; 3: the
 * trigram table without positions).
 */
const INDEX_FORMAT = "3";

/**
 * Attaches the search index file as `idx` to a connection of the database
 * at `path` (an in-memory one for an in-memory database). Nothing the
 * connection writes in the database may begin with BEGIN IMMEDIATE once it
 * is attached: that takes the write lock of every attached file.
 */
export function openIndex(db: Database, path: string): void {
	db.run("ATTACH ? AS idx", [indexPath(path)]);
	db.run("PRAGMA idx.journal_mode = WAL");
	// The index can be built again from the messages: its commits need not be synced one by one (a crash
	// loses the newest, and its position with them). Erasures are synced (eraseSome).
	db.run("PRAGMA idx.synchronous = NORMAL");
	db.run("PRAGMA idx.secure_delete = ON");
}

/**
 * Makes the index file's tables if they are missing, and empties it when it
 * is not the index of this database (another epoch: restored or replaced;
 * or a position past the last message id: an older copy of the file put
 * back): its positions would name other messages. Run at the store's open,
 * with `idx` attached (openIndex).
 */
export function prepareIndex(db: Database, epoch: string): boolean {
	return db.transaction(() => {
		db.run("CREATE TABLE IF NOT EXISTS idx.search_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
		// The index's write lock before the database is read (SqliteIndexer.claim).
		db.run("DELETE FROM idx.search_meta WHERE 0");
		const meta = (key: string) => indexMeta(db, key);
		const lastGiven = lastDoc(db);
		const lastQueued = sequence(db, "search_forget");
		const erased = Number(meta("erased"));
		const waiting =
			db.query<{ n: number }, [number]>("SELECT count(*) AS n FROM search_forget WHERE id > ?").get(erased)
				?.n ?? 0;
		if (
			meta("format") === INDEX_FORMAT &&
			meta("epoch") === epoch &&
			Number(meta("position")) <= lastGiven &&
			// Every queued change after the last one this index handled is still queued: none was handled by
			// another index (an older copy of this file put back) and the database is not older than the index.
			erased <= lastQueued &&
			waiting === lastQueued - erased
		)
			return false;
		for (const t of ["search_trigrams", "search_words", "search_indexed"])
			db.run(`DROP TABLE IF EXISTS idx.${t}`);
		// Trigram: any substring of 3+ characters, also in text without spaces (Japanese, ERR_SOCKET_TIMEOUT).
		// columnsize = 0: no table of each text's length (only bm25 ranking reads it; hits come newest first),
		// one row fewer to write a message in each index: 13–15 µs a message of indexing against 15–17.
		// detail = none: no positions, so a term is looked up as all of its trigrams (trigramMatch), anywhere
		// in the text; the Matcher (lib/search.ts) keeps only real substrings. Index 61 % smaller, indexing
		// a quarter cheaper (docs/PERFORMANCE.md, session 8).
		db.run(
			"CREATE VIRTUAL TABLE idx.search_trigrams USING fts5(text, tokenize = 'trigram', content = '', detail = none, columnsize = 0)",
		);
		// Words: 1–2 character terms (a trigram index cannot find them); single-token prefix queries need no positions.
		db.run(
			"CREATE VIRTUAL TABLE idx.search_words USING fts5(text, tokenize = 'unicode61', content = '', detail = none, columnsize = 0)",
		);
		for (const t of ["search_trigrams", "search_words"]) {
			// Merging segments less eagerly than the default (4) keeps an indexing step's cost near the tokenizing alone.
			db.run(`INSERT INTO idx.${t} (${t}, rank) VALUES ('automerge', 16)`);
			// A forgotten text's tokens leave the index pages at once (schema 4, migrateSearchErasure).
			db.run(`INSERT INTO idx.${t} (${t}, rank) VALUES ('secure-delete', 1)`);
		}
		// What each message was indexed with (the first 16 bytes of its text's SHA-256): eraseSome's rule.
		db.run("CREATE TABLE idx.search_indexed (doc INTEGER PRIMARY KEY, sha BLOB NOT NULL)");
		db.run("DELETE FROM idx.search_meta");
		const set = db.query("INSERT INTO idx.search_meta (key, value) VALUES (?, ?)");
		set.run("format", INDEX_FORMAT);
		set.run("epoch", epoch);
		// Every message id for search up to this one is indexed.
		set.run("position", "0");
		// The highest search_forget id handled: a new index indexes current texts, so what is queued is moot.
		set.run("erased", String(lastQueued));
		return true;
	})();
}

/**
 * Gives back the pages of an index just emptied (prepareIndex returned true; PRAGMA secure_delete zeroed
 * them as they were freed): VACUUM writes the empty index to the WAL, and the checkpoint cuts the file
 * and its WAL down to it. Each waits the connection's busy timeout for another process, once, at open; a
 * checkpoint still held up by a reader leaves the cut to SQLite's later ones. Best effort: the rebuild is
 * committed and no later open tries again, so what went wrong is returned for the caller to say.
 */
export function compactIndex(db: Database): string | undefined {
	try {
		db.run("VACUUM idx");
		db.run("PRAGMA idx.wal_checkpoint(TRUNCATE)");
		return undefined;
	} catch (e) {
		return (e as Error).message;
	}
}

/** What search_indexed keeps of a text. */
function textSha(text: string): Buffer {
	const sha = Bun.SHA256.hash(text) as Uint8Array;
	return Buffer.from(sha.buffer, sha.byteOffset, 16);
}

/** Characters one indexing step takes at most (besides its count of messages): 64 messages of 4,000. */
const STEP_CHARS = 256_000;

/** Texts one erasure transaction forgets at most, and their characters: a long text goes alone (0.1–3 s). */
const ERASE_ROWS = 50;
const ERASE_CHARS = 4000;

/** Rows one catchUp call indexes by default (bench/search.ts fills its index in such steps). */
export const INDEX_STEP = 500;

/** A term as an FTS5 string. */
function quote(term: string): string {
	return `"${term.replaceAll('"', '""')}"`;
}

/**
 * The trigram index's query for a term of 3 or more characters: each of its
 * trigrams (the tokenizer's: 3 code points, case folded by the index), all
 * required. The table keeps no positions (no phrase queries), so this finds
 * the texts holding them anywhere: a superset the Matcher narrows down.
 */
export function trigramMatch(term: string): string {
	const chars = [...term];
	const trigrams = new Set<string>();
	for (let i = 0; i + 3 <= chars.length; i++) trigrams.add(chars.slice(i, i + 3).join(""));
	return [...trigrams].map(quote).join(" ");
}

/** Index matches one step of a search's walk reads; between steps the event loop runs. */
const WALK_STEP = 2000;

/**
 * Messages stored after the index's position, read in one snapshot of both
 * files for SqliteIndexer.indexBatch: the store reads them on the event loop
 * and hands them to the search thread, so that thread, which may wait
 * seconds for the CPU, never holds a read of the database while it indexes
 * (a read left open keeps SQLite from restarting the database's WAL, which
 * then grows for as long: 130 MB in a 20 s saturated bench step).
 */
export interface PendingBatch {
	/** The index's position the rows follow. */
	from: number;
	/** The highest erasure queue id given when they were read (see indexBatch). */
	queued: number;
	rows: { id: number; text: string }[];
	/** Every message stored when it was read is in it (neither bound cut it short). */
	complete: boolean;
}

/** Reads PendingBatches through a connection with the index file attached (openIndex). */
export class PendingReader {
	private readonly rows: Statement<{ id: number; text: string }, [number, number]>;
	/** One transaction: the position, the rows and the queue's last id are of one moment. */
	private readonly inOneSnapshot: (step: number) => PendingBatch | undefined;

	constructor(db: Database) {
		this.rows = db.query("SELECT doc AS id, text FROM messages WHERE doc > ? ORDER BY doc LIMIT ?");
		this.inOneSnapshot = db.transaction((step: number) => {
			const from = Number(indexMeta(db, "position"));
			const rows: PendingBatch["rows"] = [];
			let chars = 0;
			let cut = false;
			// Leaving the loop early resets the statement: no read stays open.
			for (const row of this.rows.iterate(from, step)) {
				if (chars >= STEP_CHARS) {
					cut = true;
					break;
				}
				rows.push(row);
				chars += row.text.length;
			}
			if (rows.length === 0) return undefined;
			return { from, queued: sequence(db, "search_forget"), rows, complete: !cut && rows.length < step };
		});
	}

	/**
	 * Up to `step` messages, and no more once STEP_CHARS characters are read (a batch of long texts
	 * holds little memory); undefined when none is waiting. It runs on the event loop: 0.7–1.2 ms for
	 * 1,000 short messages (with a window function bounding the characters in SQL, 2.7 ms).
	 */
	read(step = INDEX_STEP): PendingBatch | undefined {
		return this.inOneSnapshot(step);
	}
}

/**
 * Keeps the index file in step with the database: indexes new messages
 * (indexBatch) and forgets edited and deleted texts (eraseSome). It writes
 * only the index file, through `index` (a connection with it attached as
 * `idx`), and reads the database (eraseSome only) through `read` in
 * statements of their own, each ended before the work they lead to (see
 * PendingBatch). For an in-memory database both are the one connection.
 */
export class SqliteIndexer {
	/** catchUp's reads, when `read` has the index attached too (the one-connection case). */
	private reader?: PendingReader;
	private readonly add: Record<"trigrams" | "words", Statement<unknown, [number, string]>>;
	private readonly addSha: Statement<unknown, [number, Buffer]>;
	/** Takes the index file's write lock before anything is read of the database (see claim). */
	private readonly lock: Statement<unknown, []>;
	private readonly position: Statement<unknown, [string]>;
	private readonly db: Database;

	constructor(
		private readonly read: Database,
		index: Database,
	) {
		this.db = index;
		this.add = {
			trigrams: index.query("INSERT INTO idx.search_trigrams (rowid, text) VALUES (?, ?)"),
			words: index.query("INSERT INTO idx.search_words (rowid, text) VALUES (?, ?)"),
		};
		this.addSha = index.query("INSERT OR REPLACE INTO idx.search_indexed (doc, sha) VALUES (?, ?)");
		this.lock = index.query("DELETE FROM idx.search_meta WHERE 0");
		this.position = index.query("UPDATE idx.search_meta SET value = ? WHERE key = 'position'");
	}

	private meta(key: string): number {
		return Number(indexMeta(this.db, key));
	}

	/**
	 * One transaction that writes the index file: its write lock is taken
	 * first (a statement that writes nothing), so whatever it then reads of
	 * the database is at least as new as what any earlier index transaction,
	 * of any process, read. Deferred, not IMMEDIATE: that would lock every
	 * file attached to the connection.
	 */
	private claim<T>(work: () => T): T {
		return this.db.transaction(() => {
			this.lock.run();
			return work();
		})();
	}

	/** Indexes one message's text (none for ""), replacing nothing: the caller forgot any earlier one. */
	private index(doc: number, text: string): void {
		if (text === "") {
			this.db.run("DELETE FROM idx.search_indexed WHERE doc = ?", [doc]);
			return;
		}
		this.add.trigrams.run(doc, text);
		this.add.words.run(doc, text);
		this.addSha.run(doc, textSha(text));
	}

	/**
	 * Indexes a batch read by a PendingReader, in one transaction of the
	 * index file, and returns how many messages it held; undefined when the
	 * batch is stale (read again): the index moved past its position (another
	 * process's thread), or an erasure queued after it was read was handled
	 * already (its rows' texts may be older than that erasure assumed), or
	 * another process holds the index's write lock. Otherwise any change
	 * since the read queued its old text after `queued`, and eraseSome,
	 * finding that text held, replaces it. Sends never wait for it: it
	 * writes no page of the database.
	 */
	indexBatch(batch: PendingBatch): number | undefined {
		try {
			return this.claim(() => {
				if (this.meta("position") !== batch.from || this.meta("erased") > batch.queued) return undefined;
				for (const r of batch.rows) this.index(r.id, r.text);
				const last = batch.rows.at(-1);
				if (last) this.position.run(String(last.id));
				return batch.rows.length;
			});
		} catch (e) {
			if (String((e as { code?: unknown }).code).startsWith("SQLITE_BUSY")) return undefined;
			throw e;
		}
	}

	/**
	 * Reads and indexes up to `step` messages stored since the last call, on
	 * one connection with the index attached (an in-memory store's, the
	 * search bench's); returns how many (0: none, or the index was busy).
	 */
	catchUp(step = INDEX_STEP): number {
		this.reader ??= new PendingReader(this.read);
		const batch = this.reader.read(step);
		return batch ? (this.indexBatch(batch) ?? 0) : 0;
	}

	/**
	 * Forgets the oldest texts queued in search_forget (migrateSearchFile)
	 * after the last one this index handled, in one synced transaction of the
	 * index file, and returns the queue id it handled up to (undefined: none
	 * was waiting); the store then deletes those rows. The index
	 * holds, for each message, the text it had when it was indexed; a queued
	 * old text is forgotten only when it is that text (the same SHA-256), and
	 * the message's current text is indexed in its place; otherwise the index
	 * never had it (the message was indexed later, with a newer text, or not
	 * yet: then the indexer reads its current text) and the entry is passed
	 * over. FTS5's 'delete' is so only ever given the exact text it indexed
	 * (any other would corrupt the index). The last id handled is kept with
	 * the index (`erased`), in the same transaction: a row handled but not
	 * yet deleted is never handled again, and prepareIndex tells an index
	 * that missed some (an older copy of the file).
	 */
	eraseSome(): number | undefined {
		this.db.run("PRAGMA idx.synchronous = FULL");
		try {
			return this.claim(() => {
				const position = this.meta("position");
				// The queue, and each message's current text below, in statements of their own (see the class): a
				// text read later than the queue is as good (any change since queued a row after these).
				const queued = this.read
					.query<{ id: number; doc: number; text: string }, [number, number]>(
						"SELECT id, doc, text FROM search_forget WHERE id > ? ORDER BY id LIMIT ?",
					)
					.all(this.meta("erased"), ERASE_ROWS);
				let upTo: number | undefined;
				let chars = 0;
				for (const entry of queued) {
					if (upTo !== undefined && chars + entry.text.length > ERASE_CHARS) break;
					chars += entry.text.length;
					upTo = entry.id;
					const held = this.db
						.query<{ sha: Uint8Array }, [number]>("SELECT sha FROM idx.search_indexed WHERE doc = ?")
						.get(entry.doc);
					if (held) {
						if (!textSha(entry.text).equals(held.sha)) continue;
						for (const t of ["search_trigrams", "search_words"])
							this.db.run(`INSERT INTO idx.${t} (${t}, rowid, text) VALUES ('delete', ?, ?)`, [
								entry.doc,
								entry.text,
							]);
					} else if (entry.doc > position) {
						// Not indexed yet: the indexer reads its current text.
						continue;
					}
					// Indexed and forgotten, or indexed with no text (a message of files only, given one since).
					const now = this.read
						.query<{ text: string }, [number]>("SELECT text FROM messages WHERE doc = ?")
						.get(entry.doc);
					this.index(entry.doc, now?.text ?? "");
				}
				if (upTo !== undefined)
					this.db.run("UPDATE idx.search_meta SET value = ? WHERE key = 'erased'", [String(upTo)]);
				return upTo;
			});
		} finally {
			this.db.run("PRAGMA idx.synchronous = NORMAL");
		}
	}
}

/**
 * Reads candidates for lib/search.ts's runSearch, newest first by arrival,
 * among the plan's readable rooms only (see SearchPlan.rooms). Each read
 * returns at most `n` readable index matches (the other filters are applied
 * by runSearch, which bounds a call by what it looked at); the matches of
 * rooms the reader may not read are passed over in steps of WALK_STEP with
 * the event loop free between them, and never counted.
 */
export class SqliteSearch {
	private readonly walk: Record<
		"trigrams" | "words",
		Statement<{ pos: number; room: string }, [string, number, number]>
	>;
	private readonly rows: Statement<StoredRow & { pos: number }, [string]>;
	private readonly docId: Statement<{ id: number }, [string, number]>;
	private readonly unindexedRow: Statement<unknown, []>;

	/** `db`: a connection of the database with the index file attached (openIndex). */
	constructor(db: Database) {
		this.docId = db.query("SELECT doc AS id FROM messages WHERE room = ? AND seq = ? AND doc IS NOT NULL");
		this.unindexedRow = db.query(
			"SELECT 1 FROM messages WHERE doc > (SELECT CAST(value AS INTEGER) FROM idx.search_meta WHERE key = 'position') LIMIT 1",
		);
		// CROSS JOIN keeps the index's newest-first walk outside (SQLite never reorders it): a
		// primary-key probe per match gives its room.
		const walk = (table: string) =>
			db.query<{ pos: number; room: string }, [string, number, number]>(`
				SELECT ${table}.rowid AS pos, r.room FROM idx.${table} CROSS JOIN messages r ON r.doc = ${table}.rowid
				WHERE ${table} MATCH ?1 AND ${table}.rowid < ?2 ORDER BY ${table}.rowid DESC LIMIT ?3`);
		this.walk = { trigrams: walk("search_trigrams"), words: walk("search_words") };
		this.rows = db.query(`
			SELECT doc AS pos, room, seq, sender, client_id, text, ts FROM messages
			WHERE doc IN (SELECT value FROM json_each(?1)) ORDER BY doc DESC`);
	}

	/** Some stored message (this process's, or another's on the same file) is not indexed yet. */
	unindexed(): boolean {
		return this.unindexedRow.get() !== null;
	}

	async candidates(plan: SearchPlan, cursor: string | undefined, n: number): Promise<Candidate[]> {
		let below = Number.MAX_SAFE_INTEGER;
		if (cursor !== undefined) {
			// A cursor names the last message looked at, not its index id: ids count every room's messages.
			const m = /^s(\d{1,16})\.([a-z0-9_-]{1,32})$/.exec(cursor);
			const at = m && this.docId.get(m[2] as string, Number(m[1]));
			if (!at) throw new BadCursor();
			below = at.id;
		}
		// Long terms drive through the trigram index; short ones are then checked by the matcher.
		const [walk, match] =
			plan.long.length > 0
				? [this.walk.trigrams, plan.long.map(trigramMatch).join(" ")]
				: [this.walk.words, plan.short.map((t) => `${quote(t)}*`).join(" ")];
		// Only the readable rooms' matches are kept, however many others the walk passes (see
		// SearchPlan.rooms: they must not shape the answer); it goes in steps so a search that
		// passes many never holds the event loop.
		const readable = plan.rooms === undefined ? undefined : new Set(plan.rooms);
		const step = readable === undefined ? n : WALK_STEP;
		const kept: number[] = [];
		for (;;) {
			const matches = walk.all(match, below, step);
			for (const { pos, room } of matches) {
				if (readable !== undefined && !readable.has(room)) continue;
				kept.push(pos);
				if (kept.length === n) break;
			}
			if (kept.length === n || matches.length < step) break;
			below = (matches.at(-1) as { pos: number }).pos;
			await Bun.sleep(0);
		}
		if (kept.length === 0) return [];
		return this.rows.all(JSON.stringify(kept)).map((r) => ({ row: r, pos: `s${r.seq}.${r.room}` }));
	}
}
