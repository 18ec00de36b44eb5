// The search thread of a SQLite store: indexes new messages for search and forgets edited and deleted texts
// (lib/search-sqlite.ts migrateSearchFile) in the index file beside the database, off the event loop. It
// writes only the index file: what the database needs afterwards (the queue's rows deleted, its WAL
// truncated) the store does on the main thread when told.
import { Database } from "bun:sqlite";
import { setPriority } from "node:os";
import { openIndex, SqliteIndexer } from "./search-sqlite.ts";

/**
 * Main thread → worker: "work" (numbered) after commits, searches, edits, deletes and prunes; `erase`
 * when texts were queued for forgetting (the WALs are truncated after them); "close" at the end.
 */
export type SearchWorkerRequest =
	| { type: "work"; n: number; path: string; erase: boolean }
	| { type: "close" };
/**
 * Worker → main thread: "indexed" once every message committed before request `n` is in the
 * indexes; "erased" once every queued text up to queue id `upTo` is forgotten from them (the store
 * deletes those queue rows); "done" once, besides, every text queued before request `n` is
 * forgotten and the index's WAL truncated (`truncate`: the store truncates the database's too);
 * "error" when a round failed (it is tried again a second later).
 */
export type SearchWorkerReply =
	| { type: "indexed"; n: number }
	| { type: "erased"; upTo: number }
	| { type: "done"; n: number; truncate: boolean }
	| { type: "error"; message: string }
	| { type: "closed" };

declare const self: Worker;

/**
 * Messages indexed in one transaction of the index file at most: a
 * transaction's own cost (a new index segment, merges) is spread over many,
 * so larger steps write less and take less CPU a message (100 rather than
 * 25: half the thread's CPU and two thirds of the writes).
 */
const STEP = 1000;

/**
 * Indexing costs 10–140 µs of CPU a message and erasing 0.1–3 s a long
 * text: work that must not take the CPU from the sends. On Linux this thread
 * lowers its own nice value to 19: it gets the CPU the event loop leaves,
 * and on a machine with a free core nothing changes. It never holds the
 * database's lock (its writes are all in the index file), so running slowly
 * costs nobody else a wait. Not SCHED_IDLE (tried): a thread that can starve
 * for seconds mid-read keeps SQLite from restarting the database's WAL,
 * which then grows (37 MB in a 20 s saturated bench step). Elsewhere nothing
 * is changed: a nice value there would lower the whole process.
 */
function lowestPriority(): void {
	try {
		if (process.platform === "linux") setPriority(19);
	} catch {
		// Not allowed or not supported: the thread runs at the process's priority.
	}
}
lowestPriority();

/**
 * Two connections (lib/search-sqlite.ts SqliteIndexer): one reads the database, in statements of their
 * own; the other has nothing but the index file attached, so this thread can never hold the
 * database's lock, nor keep a read of it open while it works.
 */
function open(path: string): { read: Database; index: Database } {
	const read = new Database(path, { strict: true, readonly: true });
	const index = new Database(":memory:", { strict: true });
	// This thread may block: waiting for another process's index transaction is what it should do.
	for (const db of [read, index]) db.run("PRAGMA busy_timeout = 10000");
	openIndex(index, path);
	return { read, index };
}

let path = "";
let db: { read: Database; index: Database } | undefined;
let search: SqliteIndexer | undefined;
let requested = 0;
let truncateDue = false;
let running = false;
let closing = false;

/** The index's WAL's older frames still hold forgotten trigrams: checkpoint and truncate it. */
function truncateIndexWal(d: Database): boolean {
	return (d.query("PRAGMA idx.wal_checkpoint(TRUNCATE)").get() as { busy: number }).busy === 0;
}

async function run(): Promise<void> {
	if (running) return;
	running = true;
	try {
		let indexed = 0;
		let truncated = false;
		/** Indexes what was stored before the latest request, if it is not done yet: new messages never wait for erasures. */
		const indexNew = async (d: { read: Database; index: Database }): Promise<void> => {
			const target = requested;
			if (target <= indexed || closing) return;
			search ??= new SqliteIndexer(d.read, d.index);
			const indexer = search;
			for (;;) {
				// Read again after each await: a "close" between two steps closes the file.
				if (closing) return;
				if (indexer.catchUp(STEP) === 0) break;
				// Between steps the thread reads its messages (a "close" is never kept waiting by a long backlog).
				await Bun.sleep(0);
			}
			indexed = target;
			self.postMessage({ type: "indexed", n: target } satisfies SearchWorkerReply);
		};
		while (!closing) {
			const target = requested;
			db ??= open(path);
			const d = db;
			await indexNew(d);
			// A few texts at a time (a long one alone: it takes 0.1–3 s), indexing what was stored meanwhile between them.
			search ??= new SqliteIndexer(d.read, d.index);
			const eraser = search;
			for (;;) {
				const upTo = closing ? undefined : eraser.eraseSome();
				if (upTo === undefined) break;
				self.postMessage({ type: "erased", upTo } satisfies SearchWorkerReply);
				// The thread's messages are read (a search's request), then what they asked for is indexed.
				await Bun.sleep(0);
				await indexNew(d);
			}
			if (truncateDue && !closing) {
				truncateDue = false;
				truncated = true;
				// A reader (a search, another process) can hold it up: try again a little later, indexing meanwhile.
				for (let i = 0; i < 60 && !closing && !truncateIndexWal(d.index); i++) {
					await Bun.sleep(1000);
					await indexNew(d);
				}
			}
			if (closing) break;
			if (requested === target) {
				self.postMessage({ type: "done", n: target, truncate: truncated } satisfies SearchWorkerReply);
				return;
			}
		}
	} catch (e) {
		self.postMessage({ type: "error", message: (e as Error).message } satisfies SearchWorkerReply);
		truncateDue = true;
		if (!closing) setTimeout(() => void run().catch(() => {}), 1000);
	} finally {
		running = false;
	}
}

self.onmessage = (event: MessageEvent<SearchWorkerRequest>) => {
	const m = event.data;
	if (m.type === "close") {
		closing = true;
		// Between two steps (this thread runs one transaction at a time): a transaction in progress finished first.
		search = undefined;
		db?.read.close();
		db?.index.close();
		db = undefined;
		self.postMessage({ type: "closed" } satisfies SearchWorkerReply);
		return;
	}
	path = m.path;
	if (m.erase) truncateDue = true;
	requested = Math.max(requested, m.n);
	void run().catch(() => {});
};
