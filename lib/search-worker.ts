// The search thread of a SQLite store: indexes new messages for search and forgets edited and deleted texts
// (lib/search-sqlite.ts migrateSearchQueue), off the event loop and behind this process's sends.
import { Database } from "bun:sqlite";
import { eraseOne, SqliteSearch } from "./search-sqlite.ts";
import { sendsAreWaiting, stepEnded, stepTurn } from "./write-turns.ts";

/**
 * Main thread → worker: "work" (numbered) after commits, searches, edits, deletes and prunes; `erase`
 * when texts were queued for forgetting (the WAL is truncated after them); "close" at the end.
 * `turns` is shared with the store (lib/write-turns.ts): its sends write the file first.
 */
export type SearchWorkerRequest =
	| { type: "work"; n: number; path: string; erase: boolean; turns: Int32Array }
	| { type: "close" };
/**
 * Worker → main thread: "indexed" once every message committed before request `n` is in the
 * indexes; "done" once, besides, every text queued before it is forgotten (and the WAL truncated
 * if it was asked); "error" when a round failed (it is tried again a second later).
 */
export type SearchWorkerReply =
	| { type: "indexed"; n: number }
	| { type: "done"; n: number }
	| { type: "error"; message: string }
	| { type: "closed" };

declare const self: Worker;

/**
 * Messages indexed in one write transaction at most: a transaction's own
 * cost (a new index segment, merges) is spread over many, so larger steps
 * write less and take less CPU a message (100 rather than 25: half the
 * thread's CPU and two thirds of the writes). A step ends after MIN_STEP as
 * soon as sends wait for the write lock, so a send seldom waits long for one.
 */
const STEP = 100;
const MIN_STEP = 5;
/** How long a step waits for this process's sends before it writes anyway (so indexing never stops). */
const YIELD_MAX_MS = 100;

function open(path: string): Database {
	const db = new Database(path, { strict: true });
	// This thread may block: waiting for the main thread's short transactions is what it should do.
	db.run("PRAGMA busy_timeout = 10000");
	db.run("PRAGMA secure_delete = ON");
	// synchronous = FULL (the default) here too: this thread syncs what it writes (a long text's erasure
	// rewrites thousands of pages); left unsynced, the next send's commit would sync them on the event loop.
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

/** A step ends early, once it has done a few messages, when sends start waiting for the write lock. */
function yieldNow(done: number): boolean {
	return done >= MIN_STEP && turns !== undefined && sendsAreWaiting(turns);
}

/** Runs one write transaction of this thread in its turn (lib/write-turns.ts). */
async function inTurn<T>(work: () => T): Promise<T> {
	if (!turns) return work();
	await stepTurn(turns, YIELD_MAX_MS);
	try {
		return work();
	} finally {
		stepEnded(turns);
	}
}

/** The WAL's older frames still hold the old texts (and the edited row's old page): checkpoint and truncate it. */
function truncateWal(d: Database): boolean {
	return (d.query("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number }).busy === 0;
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
				// `closing` is read again in each turn: the file may have been closed while the turn was awaited.
				const got = await inTurn(() => (closing ? 0 : indexer.catchUp(STEP, yieldNow)));
				if (closing) return;
				if (got === 0) break;
			}
			indexed = target;
			self.postMessage({ type: "indexed", n: target } satisfies SearchWorkerReply);
		};
		while (!closing) {
			const target = requested;
			db ??= open(path);
			const d = db;
			await indexNew(d);
			// One text at a time (a long one takes 0.1–3 s), indexing what was stored meanwhile between them.
			while (await inTurn(() => !closing && eraseOne(d))) await indexNew(d);
			if (truncateDue && !closing) {
				truncateDue = false;
				// Truncating waits for writers and keeps new ones out: in a turn. A reader of another process can
				// hold it up: try again a little later, indexing meanwhile.
				for (let i = 0; i < 60 && !(await inTurn(() => closing || truncateWal(d))); i++) {
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
