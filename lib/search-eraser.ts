// The search-erasure worker thread (lib/search-sqlite.ts migrateSearchQueue): forgets edited and deleted texts from the FTS5 indexes off the event loop.
import { Database } from "bun:sqlite";

/** Main thread → worker: "work" (with a request number) after each edit, delete or prune; "close" at the end. */
export type EraserRequest = { type: "work"; n: number; path: string } | { type: "close" };
/** Worker → main thread: every request up to `n` is done (queue empty, WAL truncated), or it failed and is retried. */
export type EraserReply =
	| { type: "done"; n: number }
	| { type: "error"; message: string }
	| { type: "closed" };

declare const self: Worker;

/**
 * FTS5's secure-delete of a 4000-character text rewrites the doclists of
 * thousands of trigrams: 0.1–3 s of synchronous work. Here it blocks only
 * this thread; the main thread's writes retry on a timer while this one
 * holds the write lock, one message per transaction, so they wait at most
 * one message's erasure.
 */
function open(path: string): Database {
	const db = new Database(path, { strict: true });
	// This thread may block: waiting for the main thread's short transactions is what it should do.
	db.run("PRAGMA busy_timeout = 10000");
	db.run("PRAGMA secure_delete = ON");
	return db;
}

let path = "";
let db: Database | undefined;
let requested = 0;
let running = false;
let closing = false;

/** Forgets one queued message: 'delete' of the text it was indexed with, then the current text indexed again. */
function eraseOne(d: Database): boolean {
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

/** The WAL's older frames still hold the old texts (and the edited row's old page): checkpoint and truncate it. */
function truncateWal(d: Database): boolean {
	return (d.query("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number }).busy === 0;
}

async function run(): Promise<void> {
	if (running) return;
	running = true;
	try {
		while (!closing) {
			const target = requested;
			db ??= open(path);
			while (eraseOne(db)) {}
			// A reader of another process can hold the checkpoint up: try again a little later.
			for (let i = 0; i < 60 && !closing && !truncateWal(db); i++) await Bun.sleep(1000);
			if (requested === target) {
				self.postMessage({ type: "done", n: target } satisfies EraserReply);
				return;
			}
		}
	} catch (e) {
		self.postMessage({ type: "error", message: (e as Error).message } satisfies EraserReply);
		if (!closing) setTimeout(() => void run().catch(() => {}), 1000);
	} finally {
		running = false;
	}
}

self.onmessage = (event: MessageEvent<EraserRequest>) => {
	const m = event.data;
	if (m.type === "close") {
		closing = true;
		// Between two steps (this thread runs one message at a time): a transaction in progress finished first.
		db?.close();
		db = undefined;
		self.postMessage({ type: "closed" } satisfies EraserReply);
		return;
	}
	path = m.path;
	requested = Math.max(requested, m.n);
	void run().catch(() => {});
};
