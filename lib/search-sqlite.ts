// Search in the SQLite store: two FTS5 indexes kept in step with `messages` by triggers, a trigram one for substrings and a word one for short terms.
import type { Database, Statement } from "bun:sqlite";
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

/** Forgets one text queued in search_forget (one write transaction; false when none is queued): 'delete' of the text it was indexed with, then the current text indexed again. */
export function eraseOne(d: Database): boolean {
	return d
		.transaction(() => {
			const row = d
				.query<{ doc: number; text: string }, []>("SELECT doc, text FROM search_forget ORDER BY doc LIMIT 1")
				.get();
			if (!row) return false;
			for (const t of ["search_trigrams", "search_words"])
				d.run(`INSERT INTO ${t} (${t}, rowid, text) VALUES ('delete', ?, ?)`, [row.doc, row.text]);
			const now = d
				.query<
					{ text: string },
					[number]
				>(`SELECT m.text FROM search_docs s JOIN messages m ON m.room = s.room AND m.seq = s.seq
					WHERE s.id = ? AND s.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'search_indexed')`)
				.get(row.doc);
			if (now && now.text !== "")
				for (const t of ["search_trigrams", "search_words"])
					d.run(`INSERT INTO ${t} (rowid, text) VALUES (?, ?)`, [row.doc, now.text]);
			d.run("DELETE FROM search_forget WHERE doc = ?", [row.doc]);
			return true;
		})
		.immediate();
}

/** Rows one catchUp call indexes by default (bench/search.ts fills its index in such steps). */
export const INDEX_STEP = 500;

/** A term as an FTS5 string (a phrase: the trigram tokenizer makes it a substring match). */
function quote(term: string): string {
	return `"${term.replaceAll('"', '""')}"`;
}

/** Index matches one step of a search's walk reads; between steps the event loop runs. */
const WALK_STEP = 2000;

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
	private readonly pending: Statement<{ id: number; text: string }, [number]>;
	private readonly docId: Statement<{ id: number }, [string, number]>;
	private readonly add: Record<"trigrams" | "words", Statement<unknown, [number, string]>>;

	constructor(private readonly db: Database) {
		this.docId = db.query("SELECT id FROM search_docs WHERE room = ? AND seq = ?");
		this.pending =
			db.query(`SELECT d.id, m.text FROM search_docs d JOIN messages m ON m.room = d.room AND m.seq = d.seq
			WHERE d.id > (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'search_indexed') ORDER BY d.id LIMIT ?`);
		this.add = {
			trigrams: db.query("INSERT INTO search_trigrams (rowid, text) VALUES (?, ?)"),
			words: db.query("INSERT INTO search_words (rowid, text) VALUES (?, ?)"),
		};
		// CROSS JOIN keeps the index's newest-first walk outside (SQLite never reorders it): a
		// primary-key probe per match gives its room.
		const walk = (table: string) =>
			db.query<{ pos: number; room: string }, [string, number, number]>(`
				SELECT ${table}.rowid AS pos, r.room FROM ${table} CROSS JOIN search_docs r ON r.id = ${table}.rowid
				WHERE ${table} MATCH ?1 AND ${table}.rowid < ?2 ORDER BY ${table}.rowid DESC LIMIT ?3`);
		this.walk = { trigrams: walk("search_trigrams"), words: walk("search_words") };
		this.rows = db.query(`
			SELECT d.id AS pos, m.room, m.seq, m.sender, m.client_id, m.text, m.ts
			FROM search_docs d JOIN messages m ON m.room = d.room AND m.seq = d.seq
			WHERE d.id IN (SELECT value FROM json_each(?1)) ORDER BY d.id DESC`);
	}

	/**
	 * Indexes up to `step` messages stored since the last call, in one
	 * write transaction, stopping early when `enough` says so (asked before
	 * each message with the number done); resolves how many (0 when there
	 * was nothing, or when another process holds the write lock: the next
	 * call does it).
	 */
	catchUp(step = INDEX_STEP, enough?: (done: number) => boolean): number {
		try {
			return this.db
				.transaction(() => {
					const rows = this.pending.all(step);
					let done = 0;
					for (const r of rows) {
						if (enough?.(done)) break;
						this.add.trigrams.run(r.id, r.text);
						this.add.words.run(r.id, r.text);
						done++;
					}
					const last = rows[done - 1];
					if (last) this.db.run("UPDATE meta SET value = ? WHERE key = 'search_indexed'", [String(last.id)]);
					return done;
				})
				.immediate();
		} catch (e) {
			if (String((e as { code?: unknown }).code).startsWith("SQLITE_BUSY")) return 0;
			throw e;
		}
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
				? [this.walk.trigrams, plan.long.map(quote).join(" ")]
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
