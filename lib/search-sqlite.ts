// Search in the SQLite store: two FTS5 indexes kept in step with `messages` by triggers, a trigram one for substrings and a word one for short terms.
import type { Database, Statement } from "bun:sqlite";
import { BadCursor, type Candidate, type SearchPlan } from "./search.ts";
import type { StoredRow } from "./store.ts";

/**
 * Schema 3. `messages` has no integer rowid (WITHOUT ROWID), which FTS5 needs,
 * so `search_docs` gives each message one, in arrival order (newest first =
 * highest id). Both indexes are contentless (the text lives once, in
 * `messages`) with contentless_delete, so retention, deletes and edits remove
 * a message from them: the triggers below are the only writers, so any path
 * that changes `messages` keeps the index right.
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
	db.run(`CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
		INSERT INTO search_docs (room, seq) VALUES (new.room, new.seq);
		INSERT INTO search_trigrams (rowid, text) VALUES (last_insert_rowid(), new.text);
		INSERT INTO search_words (rowid, text) VALUES (last_insert_rowid(), new.text);
	END`);
	db.run(`CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
		DELETE FROM search_trigrams WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		DELETE FROM search_words WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		DELETE FROM search_docs WHERE room = old.room AND seq = old.seq;
	END`);
	db.run(`CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages BEGIN
		DELETE FROM search_trigrams WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		DELETE FROM search_words WHERE rowid = (SELECT id FROM search_docs WHERE room = old.room AND seq = old.seq);
		INSERT INTO search_trigrams (rowid, text) SELECT id, new.text FROM search_docs WHERE room = new.room AND seq = new.seq;
		INSERT INTO search_words (rowid, text) SELECT id, new.text FROM search_docs WHERE room = new.room AND seq = new.seq;
	END`);
	// Messages stored before this version, oldest first so ids follow arrival.
	db.run("INSERT INTO search_docs (room, seq) SELECT room, seq FROM messages ORDER BY ts, room, seq");
	for (const table of ["search_trigrams", "search_words"])
		db.run(
			`INSERT INTO ${table} (rowid, text) SELECT d.id, m.text FROM search_docs d JOIN messages m ON m.room = d.room AND m.seq = d.seq`,
		);
}

/** A term as an FTS5 string (a phrase: the trigram tokenizer makes it a substring match). */
function quote(term: string): string {
	return `"${term.replaceAll('"', '""')}"`;
}

type Params = [string, number, string | null, string | null, number, number, number];

/** Reads candidates for lib/search.ts's runSearch, newest first by arrival. */
export class SqliteSearch {
	private readonly q: Record<"trigrams" | "words", Statement<StoredRow & { pos: number }, Params>>;

	constructor(db: Database) {
		const query = (table: string) =>
			db.query<StoredRow & { pos: number }, Params>(`
				SELECT ${table}.rowid AS pos, m.room, m.seq, m.sender, m.client_id, m.text, m.ts
				FROM ${table}
				JOIN search_docs d ON d.id = ${table}.rowid
				JOIN messages m ON m.room = d.room AND m.seq = d.seq
				WHERE ${table} MATCH ?1 AND ${table}.rowid < ?2
					AND (?3 IS NULL OR m.room = ?3) AND (?4 IS NULL OR m.sender_key = ?4)
					AND m.ts < ?5 AND m.ts >= ?6
				ORDER BY ${table}.rowid DESC LIMIT ?7`);
		this.q = { trigrams: query("search_trigrams"), words: query("search_words") };
	}

	candidates(plan: SearchPlan, cursor: string | undefined, n: number): Candidate[] {
		let below = Number.MAX_SAFE_INTEGER;
		if (cursor !== undefined) {
			if (!/^s\d{1,16}$/.test(cursor)) throw new BadCursor();
			below = Number(cursor.slice(1));
		}
		// Long terms drive through the trigram index; short ones are then checked by the matcher.
		const [statement, match] =
			plan.long.length > 0
				? [this.q.trigrams, plan.long.map(quote).join(" ")]
				: [this.q.words, plan.short.map((t) => `${quote(t)}*`).join(" ")];
		return statement
			.all(match, below, plan.room ?? null, plan.senderKey ?? null, plan.before, plan.after, n)
			.map((r) => ({ row: r, pos: `s${r.pos}` }));
	}
}
