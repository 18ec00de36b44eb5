// The search thread of a SQLite store: indexes new messages for search and forgets edited and deleted texts
// (lib/search-sqlite.ts migrateSearchFile) in the index file beside the database, off the event loop. It
// writes only the index file: what the database needs afterwards (the queue's rows deleted, its WAL
// truncated) the store does on the main thread when told. The messages to index are read by the store
// too, and handed over: this thread reads the database only to erase.
import { Database } from "bun:sqlite";
import { setPriority } from "node:os";
import { openIndex, type PendingBatch, SqliteIndexer } from "./search-sqlite.ts";

/**
 * Main thread → worker: "index" a batch of messages (lib/search-sqlite.ts PendingReader), one at a
 * time; "erase" (numbered) when texts were queued for forgetting (the WALs are truncated after them);
 * "close" at the end.
 */
export type SearchWorkerRequest =
	| { type: "index"; path: string; batch: PendingBatch }
	| { type: "erase"; n: number; path: string }
	| { type: "close" };
/**
 * Worker → main thread: "indexed" once a batch is in the indexes (`ok`), or was stale or found the
 * index busy, or `failed` (the store reads it again, sooner or later); "erased" once every queued text
 * up to queue id `upTo` is forgotten from them (the store deletes those queue rows); "done" once every
 * text queued before request `n` is forgotten and the index's WAL truncated (`truncate`: the store
 * truncates the database's too); "error" when a round failed (it is tried again a second later).
 */
export type SearchWorkerReply =
	| { type: "indexed"; ok: boolean; failed?: boolean }
	| { type: "erased"; upTo: number }
	/** Every text queued before erase request `n` is out of the index (its WAL is truncated next: "done"). */
	| { type: "forgotten"; n: number }
	| { type: "done"; n: number; truncate: boolean }
	| { type: "error"; message: string }
	| { type: "closed" };

declare const self: Worker;

/**
 * Indexing costs 10–140 µs of CPU a message and erasing 0.1–3 s a long
 * text: work that must not take the CPU from the sends. On Linux this thread
 * lowers its own nice value to 19: it gets the CPU the event loop leaves,
 * and on a machine with a free core nothing changes. Running slowly costs
 * nobody a wait: the thread never holds the database's lock (its writes are
 * all in the index file), and it reads the database only in an erasure's few
 * short statements (the store reads what it indexes, so a thread waiting for
 * the CPU never keeps SQLite from restarting the database's WAL). Not
 * SCHED_IDLE (tried again with this design, through chrt): no better in the
 * rooms bench within its noise, and a thread of that class gets a fifth of
 * nice 19's share when another thread wants the core, so a search would wait
 * its full time for what was just sent. Elsewhere nothing is changed: a nice
 * value there would lower the whole process.
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
	// Checkpoints of the index's WAL ten times rarer than SQLite's default (1,000 pages): each syncs the
	// index file, and on a shared disk (ext4's ordered journal) the sends' commits wait behind those syncs.
	// The rooms bench's p99 at 2,500 msg/s: 12 ms → 10–11 ms. The WAL takes up to 40 MB of disk for it.
	index.run("PRAGMA wal_autocheckpoint = 10000");
	return { read, index };
}

let path = "";
let db: { read: Database; index: Database } | undefined;
let search: SqliteIndexer | undefined;
/** This thread's indexer, on its connections (opened on first need). */
function indexer(): SqliteIndexer {
	db ??= open(path);
	search ??= new SqliteIndexer(db.read, db.index);
	return search;
}
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
		let truncated = false;
		while (!closing) {
			const target = requested;
			// A few texts at a time (a long one alone: it takes 0.1–3 s); the batches handed over meanwhile are
			// indexed between them (onmessage), so new messages never wait for erasures.
			for (;;) {
				// Read again after each await: a "close" between two steps closes the files.
				const upTo = closing ? undefined : indexer().eraseSome();
				if (upTo === undefined) break;
				self.postMessage({ type: "erased", upTo } satisfies SearchWorkerReply);
				await Bun.sleep(0);
			}
			// A search waits for this, not for the truncation below (a reader elsewhere can hold that up a minute).
			if (!closing) self.postMessage({ type: "forgotten", n: target } satisfies SearchWorkerReply);
			if (truncateDue && !closing) {
				truncateDue = false;
				truncated = true;
				// A reader (a search, another process) can hold it up: try again a little later.
				for (let i = 0; i < 60 && !closing && db && !truncateIndexWal(db.index); i++) await Bun.sleep(1000);
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
	if (m.type === "index") {
		let ok = false;
		let failed = false;
		try {
			ok = !closing && indexer().indexBatch(m.batch) !== undefined;
		} catch (e) {
			failed = true;
			self.postMessage({ type: "error", message: (e as Error).message } satisfies SearchWorkerReply);
		}
		self.postMessage({ type: "indexed", ok, failed } satisfies SearchWorkerReply);
		return;
	}
	truncateDue = true;
	requested = Math.max(requested, m.n);
	void run().catch(() => {});
};
