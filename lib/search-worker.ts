// The search thread of a SQLite store: indexes new messages for search and forgets edited and deleted texts
// (lib/search-sqlite.ts migrateSearchFile) in the index file beside the database, off the event loop.
import { Database } from "bun:sqlite";
import { setPriority } from "node:os";
import { openIndex, SqliteSearch } from "./search-sqlite.ts";
import { stepEnded, stepTurn } from "./write-turns.ts";

/**
 * Main thread → worker: "work" (numbered) after commits, searches, edits, deletes and prunes; `erase`
 * when texts were queued for forgetting (the WAL is truncated after them); "close" at the end.
 * `turns` is shared with the store (lib/write-turns.ts): its sends write the database first.
 */
export type SearchWorkerRequest =
	| { type: "work"; n: number; path: string; erase: boolean; turns: Int32Array }
	| { type: "close" };
/**
 * Worker → main thread: "indexed" once every message committed before request `n` is in the
 * indexes; "done" once, besides, every text queued before it is forgotten (and the WALs truncated
 * if it was asked); "error" when a round failed (it is tried again a second later).
 */
export type SearchWorkerReply =
	| { type: "indexed"; n: number }
	| { type: "done"; n: number }
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
/** How long a write of the database (the queue's deletions, the WAL's truncation) waits for this process's sends. */
const YIELD_MAX_MS = 100;

/*
 * Indexing costs 10–140 µs of CPU a message and erasing 0.1–3 s a long
 * text: work that must not take the CPU from the sends, now that it no
 * longer takes their write lock (the index has a file of its own). The
 * lowest priority (a thread's own nice value on Linux) gives this thread the
 * time the event loop leaves; on a machine with a free core it changes
 * nothing. Its writes of the database are short and take their turn anyway.
 */
try {
	// Linux gives each thread its own nice value; elsewhere it would lower the whole process.
	if (process.platform === "linux") setPriority(19);
} catch {
	// Not allowed or not supported: the thread runs at the process's priority.
}

function open(path: string): Database {
	const db = new Database(path, { strict: true });
	// This thread may block: waiting for the main thread's short transactions is what it should do.
	db.run("PRAGMA busy_timeout = 10000");
	// synchronous = FULL (the default) for the database: this thread's writes to it (the queue's deletions)
	// are synced here; left unsynced, the next send's commit would sync them on the event loop.
	db.run("PRAGMA secure_delete = ON");
	openIndex(db, path);
	return db;
}

let path = "";
let db: Database | undefined;
let search: SqliteSearch | undefined;
let turns: Int32Array | undefined;
let requested = 0;
let truncateDue = false;
let running = false;
let closing = false;

/** Runs one write of the database by this thread in its turn (lib/write-turns.ts); the index file's are its own. */
async function inTurn<T>(work: () => T): Promise<T> {
	if (!turns) return work();
	await stepTurn(turns, YIELD_MAX_MS);
	try {
		return work();
	} finally {
		stepEnded(turns);
	}
}

/** A WAL's older frames still hold the old texts (and the edited row's old page): checkpoint and truncate it. */
function truncateWal(d: Database, schema: "main" | "idx"): boolean {
	return (d.query(`PRAGMA ${schema}.wal_checkpoint(TRUNCATE)`).get() as { busy: number }).busy === 0;
}

async function run(): Promise<void> {
	if (running) return;
	running = true;
	try {
		let indexed = 0;
		/** Indexes what was stored before the latest request, if it is not done yet: new messages never wait for erasures. */
		const indexNew = async (d: Database): Promise<void> => {
			const target = requested;
			if (target <= indexed) return;
			search ??= new SqliteSearch(d);
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
			search ??= new SqliteSearch(d);
			const eraser = search;
			for (;;) {
				const handled = closing ? [] : eraser.eraseSome();
				if (handled.length === 0) break;
				await inTurn(() => closing || eraser.dequeue(handled));
				// The thread's messages are read (a search's request), then what they asked for is indexed.
				await Bun.sleep(0);
				await indexNew(d);
			}
			if (truncateDue && !closing) {
				truncateDue = false;
				// Truncating the database's WAL waits for writers and keeps new ones out: in a turn. A reader (a
				// search) can hold either up: try again a little later, indexing meanwhile.
				for (let i = 0; i < 60 && !closing; i++) {
					if (truncateWal(d, "idx") && (await inTurn(() => closing || truncateWal(d, "main")))) break;
					await Bun.sleep(1000);
					await indexNew(d);
				}
			}
			if (closing) break;
			if (requested === target) {
				self.postMessage({ type: "done", n: target } satisfies SearchWorkerReply);
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
		db?.close();
		db = undefined;
		self.postMessage({ type: "closed" } satisfies SearchWorkerReply);
		return;
	}
	path = m.path;
	turns = m.turns;
	if (m.erase) truncateDue = true;
	requested = Math.max(requested, m.n);
	void run().catch(() => {});
};
