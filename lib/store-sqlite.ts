// The embedded store: one SQLite file in WAL mode, appends committed in batches.
import { Database, type Statement } from "bun:sqlite";
import { rmSync, statSync } from "node:fs";
import { LIMITS } from "../protocol.ts";
import { loopLoad } from "./loop-load.ts";
import { nameKey } from "./names.ts";
import { parseTerms, runSearch, type SearchPage, type SearchQuery } from "./search.ts";
import {
	compactIndex,
	ensureDocIndex,
	indexMeta,
	indexPath,
	lastDoc,
	migrateNoNumberTrigger,
	migrateSearch,
	migrateSearchDocIndex,
	migrateSearchDocs,
	migrateSearchErasure,
	migrateSearchFile,
	migrateSearchQueue,
	numberUnnumbered,
	openIndex,
	type PendingBatch,
	PendingReader,
	prepareIndex,
	SqliteIndexer,
	SqliteSearch,
	setLastDoc,
} from "./search-sqlite.ts";
import type { SearchWorkerReply, SearchWorkerRequest } from "./search-worker.ts";
import {
	type Appended,
	type ChangeOutcome,
	type ChangeRefusal,
	FORGET_STEP,
	filesColumn,
	MESSAGE_COLUMNS,
	messageFromRow,
	type NewMessage,
	newEpoch,
	type Page,
	PRUNE_STEP,
	QuotaExceeded,
	type QuotaOptions,
	quotaDay,
	type Retention,
	type Store,
	type StoredRow,
	StoreError,
	toggleReaction,
	UnknownFile,
	type UploadRow,
	uploadFromRow,
} from "./store.ts";

/**
 * 11 changes nothing in the database itself: it marks the search index file's format 3
 * (lib/search-sqlite.ts), whose table an older process's queries fail on, so that an older
 * executable refuses to start beside it instead of failing every search (docs/OPERATING.md).
 */
const SCHEMA_VERSION = 11;

/**
 * The search thread's module. In an executable built by `bun build --compile` (package.json's build lists it
 * as a second entrypoint) import.meta.url is the executable's own, and the worker is found by its path from
 * the project root; from source, next to this file.
 */
const SEARCH_WORKER_URL = import.meta.url.startsWith("file:///$bunfs/")
	? "./lib/search-worker.ts"
	: new URL("./search-worker.ts", import.meta.url).href;

/**
 * How long a search waits for the search thread to index what was committed before it (and, after an
 * edit, to index the new text): bounded, so a search on a saturated server answers from what is indexed.
 */
const SEARCH_WAITS_FOR_INDEX_MS = 3000;
/** Deletes the erasure queue's rows up to a queue id the index has handled (lib/search-sqlite.ts eraseSome). */
const DEQUEUE = "DELETE FROM search_forget WHERE id <= ?";

/**
 * How long after a commit its messages are handed to the search thread (one request serves a busy
 * while). A search does not wait for it (it hands over what is waiting first); a second rather than
 * 100 ms makes fewer, larger index segments: a third less of the thread's CPU and fewer index writes.
 */
const INDEX_DELAY_MS = 1000;

/**
 * While the event loop spent more than this share of the last second on the CPU (sends keep it busy),
 * the hand-over waits another second: the thread's indexing, even at nice 19 on a core of its own,
 * made the rooms bench's p99 at 10,000 msg/s 1.5–1.8 times search off's (cache and disk it shares with
 * the sends), while a team's server, a few messages a second, is far below it.
 */
const INDEX_BUSY_SHARE = 0.25;

/**
 * How long the hand-over waits on a busy loop at most after the first commit it would hand over: then
 * it runs whatever the load. A search hands over what is waiting first and waits
 * SEARCH_WAITS_FOR_INDEX_MS for it; past that it answers, saying the index is behind (SearchPage).
 * Not bounded by a count as well: a hand-over of 50,000 messages in the middle of a busy while
 * (every 5 s at 10,000 msg/s) took the rooms bench's p99 at that rate from 31–47 ms to 112–169 ms
 * in 4 runs of 5: one catch-up burst costs more than the steady trickle it replaces.
 */
const INDEX_MAX_LAG_MS = 30_000;

/**
 * Messages handed to the search thread at a time (and at most 256,000 characters: PendingReader): its
 * index transaction's own cost (a new segment, merges) is spread over many, so larger batches write
 * less and take less CPU a message (100 rather than 25: half the CPU and two thirds of the writes).
 */
const SEARCH_STEP = 1000;

interface Pending {
	input: NewMessage;
	resolve: (a: Appended) => void;
	reject: (e: Error) => void;
}

export interface SqliteOptions extends QuotaOptions {
	/** How long a batch keeps retrying while another process holds the write lock. */
	busyTimeoutMs?: number;
	/** Told the duration of every committed batch. */
	onCommit?: (seconds: number, messages: number) => void;
	/** How long sends gather before one commit takes them all (0: the next turn of the event loop). */
	commitWindowMs?: number;
	/** Told of each retry of a batch while another process holds the write lock (hubbub logs it at debug). */
	onBusy?: (waitMs: number, messages: number) => void;
	/**
	 * Told when the search thread failed a round (it tries again a second later) or died (the next request
	 * starts another), or when the store's part of an erasure failed (the next erasure retries it).
	 */
	onSearchThreadError?: (message: string) => void;
	/** The event loop's load since the last call, 0–1 (lib/loop-load.ts; a test's stands in). */
	loopLoad?: () => number;
	/** How long indexing waits on a busy event loop at most (INDEX_MAX_LAG_MS). */
	indexMaxLagMs?: number;
	/** How long a search waits for what is not indexed yet (SEARCH_WAITS_FOR_INDEX_MS). */
	searchWaitMs?: number;
}

/** How far the search thread has got with a request: indexed what came before it, forgot the texts queued before it, and then truncated the index's WAL. */
type Phase = "indexed" | "forgotten" | "done";

/** Thrown inside a change's transaction to roll it back (the change number with it). */
class Refused {
	constructor(readonly reason: ChangeRefusal) {}
}

function isBusy(e: unknown): boolean {
	const code = (e as { code?: unknown })?.code;
	return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED" || String(code).startsWith("SQLITE_BUSY");
}

/** How long and how often to try again while another process holds the file's write lock. */
interface BusyPolicy {
	timeoutMs: number;
	/** First wait; each next one doubles, up to `maxMs`. */
	firstMs: number;
	maxMs: number;
	/** Told of each wait. */
	onWait?: (ms: number) => void;
}

/**
 * Runs `work`, and again after a wait each time it finds the file locked by
 * another process (SQLite does not always wait by itself), until it succeeds
 * or `policy.timeoutMs` passes; then the last error is thrown. `sleep` is
 * Bun.sleep, or Bun.sleepSync where a caller cannot await (opening the file).
 */
function whileBusy<T>(work: () => T, policy: BusyPolicy, sleep: (ms: number) => void): T;
function whileBusy<T>(work: () => T, policy: BusyPolicy, sleep: (ms: number) => Promise<void>): Promise<T>;
function whileBusy<T>(work: () => T, policy: BusyPolicy, sleep: (ms: number) => unknown): T | Promise<T> {
	const deadline = Date.now() + policy.timeoutMs;
	let wait = policy.firstMs;
	const attempt = (): T | Promise<T> => {
		for (;;) {
			try {
				return work();
			} catch (e) {
				if (!isBusy(e) || Date.now() + wait > deadline) throw e;
				policy.onWait?.(wait);
				const slept = sleep(wait);
				wait = Math.min(wait * 2, policy.maxMs);
				if (slept instanceof Promise) return slept.then(attempt);
			}
		}
	};
	return attempt();
}

/** At start-up another process may be opening the same file: waiting (blocking) is fine then. */
const OPENING: BusyPolicy = { timeoutMs: 10_000, firstMs: 10, maxMs: 200 };

function fileIdentity(path: string): { dev: number; ino: number } | undefined {
	if (path === "" || path === ":memory:" || path.startsWith("file:")) return undefined;
	try {
		const st = statSync(path);
		return { dev: st.dev, ino: st.ino };
	} catch {
		return undefined;
	}
}

/**
 * SQLite store. Sends that arrive within a short window (1 ms) are committed
 * in one transaction, so one fsync serves a burst of messages.
 * Each seq is taken inside the write transaction, so processes sharing the
 * file still get a gap-free sequence per room.
 */
export class SqliteStore implements Store {
	readonly epoch: string;
	readonly id: string;
	private readonly db: Database;
	/**
	 * Searches read through a second connection, with the index file attached (lib/search-sqlite.ts
	 * openIndex): attached to `db`, it would make every send's BEGIN IMMEDIATE take its lock too.
	 */
	private readonly reader: Database;
	private readonly busyTimeoutMs: number;
	private readonly onCommit?: (seconds: number, messages: number) => void;
	private readonly onBusy?: (waitMs: number, messages: number) => void;
	private readonly path: string;
	private queue: Pending[] = [];
	private scheduled = false;
	private readonly commitWindowMs: number;
	/** Last seq per room as of our last commit; valid while no other connection has stored a message (appendMark). */
	private readonly seqs = new Map<string, number>();
	/**
	 * The highest message id for search given when our last commit ended. Every message stored, by any
	 * writer, takes the next one (lib/search-sqlite.ts lastDoc), so while it is unchanged nobody else has
	 * appended and the cached seqs hold. (PRAGMA data_version would also change with writes that touch
	 * no seq: edits, reactions, the erasure queue's deletions.)
	 */
	private appendMark = -1;
	/** The id for search the commit under way gave last (insert). */
	private givenDoc = 0;
	private flushing: Promise<void> = Promise.resolve();
	/** The file's identity at open: a file deleted or replaced under us would keep nothing we write. */
	private readonly identity: { dev: number; ino: number } | undefined;
	private readonly dailyQuota: number;
	/** Rooms appended to through this handle since the last prune: only they can have grown past `keep`. */
	private readonly touched = new Set<string>();
	private readonly searcher: SqliteSearch;
	/** An in-memory database's indexer, on this thread (no other can open it). */
	private inlineIndexer?: SqliteIndexer;
	/** The request that will hand the latest commits to the search thread, while one is due. */
	private indexTimer?: ReturnType<typeof setTimeout>;
	private closed = false;
	private readonly q: {
		bySenderId: Statement<StoredRow, [string, string, string]>;
		lastSeq: Statement<{ seq: number | null }, [string]>;
		anyStray: Statement<{ one: number }, []>;
		insert: Statement<
			unknown,
			[string, number, string, string, string | null, string, number, string | null, number]
		>;
		link: Statement<unknown, [string, string, number]>;
		markSent: Statement<unknown, [string, string]>;
		charge: Statement<unknown, [string, number, number, number]>;
		latest: Statement<StoredRow, [string, number]>;
		since: Statement<StoredRow, [string, number, number]>;
		before: Statement<StoredRow, [string, number, number]>;
		after: Statement<StoredRow, [string, number, number]>;
		one: Statement<StoredRow, [string, number]>;
		bumpChange: Statement<{ changes: number }, [string]>;
		lastChange: Statement<{ changes: number }, [string]>;
		setText: Statement<unknown, [string, number, number, string, number]>;
		setReactions: Statement<unknown, [string | null, number, string, number]>;
		tombstone: Statement<unknown, [number, string, number]>;
		changes: Statement<StoredRow, [string, number, number, number]>;
	};
	/** The search thread (lib/search-worker.ts): indexes and erases for search, off the event loop. */
	private worker?: Worker;
	/** Reads the messages the search thread indexes, on this thread (lib/search-sqlite.ts PendingBatch). */
	private pending?: PendingReader;
	/** A batch is with the search thread (one at a time). */
	private batchOut = false;
	private pumpTimer?: ReturnType<typeof setTimeout>;
	/** This open migrated an existing database to this version's schema. */
	private upgraded = false;
	/** Search threads that failed in a row (onerror): the next one starts later. */
	private threadFailures = 0;
	/** Requests to the search thread so far, and how far it has indexed and finished (request numbers). */
	private requests = 0;
	private indexed = 0;
	private forgotten = 0;
	private done = 0;
	/** The batch with the thread held everything stored when it was read, for requests up to this one. */
	private batchUpTo?: number;
	/** Commits not yet handed to the search thread, and since when (performance.now()). */
	private unindexed = false;
	private unindexedSince = 0;
	private readonly loopLoad: () => number;
	private readonly indexMaxLagMs: number;
	private readonly searchWaitMs: number;
	/** The request of the last erasure (close waits for it) and of the last edit (a search waits for that one). */
	private lastErase = 0;
	private lastEdit = 0;
	private waiting: { n: number; phase: Phase; resolve: () => void }[] = [];
	/** The database's part of the erasures the search thread reported, in order (afterErasure). */
	private erasing: Promise<void> = Promise.resolve();
	/** The highest erasure queue id the index has handled, and the highest deleted from the queue. */
	private erasedUpTo = 0;
	private dequeued = 0;
	/** The connections are closed (a late report of the search thread finds nothing to do). */
	private dbClosed = false;
	private workerClosed?: () => void;
	private readonly onSearchThreadError?: (message: string) => void;

	constructor(path: string, options: SqliteOptions = {}) {
		this.busyTimeoutMs = options.busyTimeoutMs ?? 3000;
		this.onCommit = options.onCommit;
		this.onBusy = options.onBusy;
		this.onSearchThreadError = options.onSearchThreadError;
		this.loopLoad = options.loopLoad ?? loopLoad();
		this.indexMaxLagMs = options.indexMaxLagMs ?? INDEX_MAX_LAG_MS;
		this.searchWaitMs = options.searchWaitMs ?? SEARCH_WAITS_FOR_INDEX_MS;
		this.commitWindowMs = options.commitWindowMs ?? 1;
		this.dailyQuota = options.dailyQuota ?? 0;
		this.path = path;
		try {
			this.db = new Database(path, { create: true, strict: true });
			// At start-up another process may be opening the same file: waiting is fine here.
			this.db.run("PRAGMA busy_timeout = 5000");
			this.epoch = whileBusy(
				() => {
					this.db.run("PRAGMA journal_mode = WAL");
					// FULL: an acknowledged message survives power loss, not only a crash; batching pays for the fsync.
					this.db.run("PRAGMA synchronous = FULL");
					// A deleted message's text is overwritten in the file, not only unlinked (Store.remove).
					this.db.run("PRAGMA secure_delete = ON");
					return this.migrate();
				},
				OPENING,
				Bun.sleepSync,
			);
			this.id = whileBusy(
				() => {
					// Not a migration: every database gets its id the first time it is opened, whatever its schema.
					this.db.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('deployment', ?)", [newEpoch()]);
					return (this.db.query("SELECT value FROM meta WHERE key = 'deployment'").get() as { value: string })
						.value;
				},
				OPENING,
				Bun.sleepSync,
			);
			// A migration may have rewritten every message (schema 8: the database's size again in the WAL).
			if (this.upgraded) this.db.run("PRAGMA wal_checkpoint(TRUNCATE)");
			// From here on a busy database must not stall the event loop: writes retry on a timer instead.
			this.db.run("PRAGMA busy_timeout = 0");
		} catch (e) {
			throw new StoreError(`cannot open database ${JSON.stringify(path)}: ${(e as Error).message}`);
		}
		this.identity = fileIdentity(path);
		try {
			this.reader = this.openReader(false);
		} catch (e) {
			this.db.close();
			throw new StoreError(
				`cannot open the search index of ${JSON.stringify(path)}: ${(e as Error).message}`,
			);
		}
		this.searcher = new SqliteSearch(this.reader);
		const cols = MESSAGE_COLUMNS;
		this.q = {
			bySenderId: this.db.query(
				`SELECT ${cols} FROM messages WHERE room = ? AND sender_key = ? AND client_id = ?`,
			),
			// A room's floor outlives the messages retention removed, so their seqs are never given again.
			lastSeq: this.db.query(`SELECT MAX(
				COALESCE((SELECT MAX(seq) FROM messages WHERE room = ?1), 0),
				COALESCE((SELECT floor FROM room_floors WHERE room = ?1), 0)) AS seq`),
			insert: this.db.query(
				"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts, files, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			),
			// Rows stored without an id for search (numberUnnumbered): found through the index of that id.
			anyStray: this.db.query(
				"SELECT 1 AS one FROM messages INDEXED BY messages_doc WHERE doc IS NULL LIMIT 1",
			),
			link: this.db.query("INSERT OR IGNORE INTO message_files (hash, room, seq) VALUES (?, ?, ?)"),
			markSent: this.db.query("UPDATE uploads SET sent = 1 WHERE account = ? AND hash = ?"),
			charge: this.db.query(
				`INSERT INTO usage (sender_key, day, bytes) VALUES (?1, ?2, ?3) ON CONFLICT (sender_key, day)
				DO UPDATE SET bytes = bytes + excluded.bytes WHERE bytes + excluded.bytes <= ?4`,
			),
			latest: this.db.query(`SELECT ${cols} FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?`),
			since: this.db.query(
				`SELECT ${cols} FROM messages WHERE room = ? AND seq > ? ORDER BY seq DESC LIMIT ?`,
			),
			before: this.db.query(
				`SELECT ${cols} FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
			),
			after: this.db.query(`SELECT ${cols} FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?`),
			one: this.db.query(`SELECT ${cols} FROM messages WHERE room = ? AND seq = ?`),
			// The counter lives in the room's floor row (created at 0 on the first change).
			bumpChange: this.db.query(
				"INSERT INTO room_floors (room, floor, changes) VALUES (?, 0, 1) ON CONFLICT (room) DO UPDATE SET changes = changes + 1 RETURNING changes",
			),
			lastChange: this.db.query("SELECT changes FROM room_floors WHERE room = ?"),
			setText: this.db.query(
				"UPDATE messages SET text = ?, edited = ?, change_seq = ? WHERE room = ? AND seq = ?",
			),
			// Files are released by the caller (lib/attachments*.ts releaseMessage); the tombstone shows none at once.
			tombstone: this.db.query(
				"UPDATE messages SET text = '', edited = NULL, deleted = 1, reactions = NULL, files = NULL, change_seq = ? WHERE room = ? AND seq = ?",
			),
			// Not `text`: the search triggers fire on an update of it.
			setReactions: this.db.query(
				"UPDATE messages SET reactions = ?, change_seq = ? WHERE room = ? AND seq = ?",
			),
			changes: this.db.query(
				`SELECT ${cols} FROM messages WHERE room = ? AND change_seq > ? AND seq <= ? ORDER BY change_seq LIMIT ?`,
			),
		};
		try {
			// Rows a closed (or killed) process's index handled but did not delete from the queue.
			this.erasedUpTo = this.erasedMark();
			whileBusy(() => this.db.run(DEQUEUE, [this.erasedUpTo]), OPENING, Bun.sleepSync);
			this.dequeued = this.erasedUpTo;
		} catch (e) {
			if (this.reader !== this.db) this.reader.close();
			this.db.close();
			throw new StoreError(`cannot open database ${JSON.stringify(path)}: ${(e as Error).message}`);
		}
		// Messages a migration or another writer left unindexed, and texts a closed (or killed) process left to forget.
		if (this.db.query("SELECT 1 FROM search_forget LIMIT 1").get()) this.erase();
		else if (this.searcher.unindexed()) this.indexSoon();
	}

	private migrate(): string {
		const db = this.db;
		return db
			.transaction(() => {
				db.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
				const row = db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema'").get();
				const version = row ? Number(row.value) : 0;
				if (version > SCHEMA_VERSION) {
					throw new Error(`schema version ${version} is newer than this hubbub understands`);
				}
				if (version < 1) {
					db.run(`CREATE TABLE messages (
						room TEXT NOT NULL,
						seq INTEGER NOT NULL,
						sender TEXT NOT NULL,
						sender_key TEXT NOT NULL,
						client_id TEXT,
						text TEXT NOT NULL,
						ts INTEGER NOT NULL,
						PRIMARY KEY (room, seq)
					) WITHOUT ROWID`);
					db.run(
						"CREATE UNIQUE INDEX messages_client_id ON messages (room, sender_key, client_id) WHERE client_id IS NOT NULL",
					);
					db.run("INSERT INTO meta (key, value) VALUES ('epoch', ?)", [newEpoch()]);
				}
				if (version < 2) {
					// Retention and quotas: every seq up to a room's floor was removed; bytes per sender and day.
					db.run("CREATE TABLE room_floors (room TEXT PRIMARY KEY, floor INTEGER NOT NULL) WITHOUT ROWID");
					db.run(`CREATE TABLE usage (
						sender_key TEXT NOT NULL,
						day INTEGER NOT NULL,
						bytes INTEGER NOT NULL,
						PRIMARY KEY (sender_key, day)
					) WITHOUT ROWID`);
					db.run("CREATE INDEX messages_ts ON messages (ts)");
				}
				if (version < 3) migrateSearch(db);
				if (version < 4) {
					// Files: a message's files (JSON), who uploaded what, and which messages hold each file.
					db.run("ALTER TABLE messages ADD COLUMN files TEXT");
					db.run(`CREATE TABLE uploads (
						account TEXT NOT NULL,
						hash TEXT NOT NULL,
						name TEXT NOT NULL,
						type TEXT NOT NULL,
						size INTEGER NOT NULL,
						width INTEGER,
						height INTEGER,
						inline INTEGER NOT NULL,
						created INTEGER NOT NULL,
						sent INTEGER NOT NULL DEFAULT 0,
						PRIMARY KEY (account, hash)
					) WITHOUT ROWID`);
					db.run("CREATE INDEX uploads_hash ON uploads (hash)");
					db.run(`CREATE TABLE message_files (
						hash TEXT NOT NULL,
						room TEXT NOT NULL,
						seq INTEGER NOT NULL,
						PRIMARY KEY (hash, room, seq)
					) WITHOUT ROWID`);
					db.run("CREATE INDEX message_files_message ON message_files (room, seq)");
				}
				if (version < 5) {
					// Protocol 1.2: edits, tombstones, reactions, and each room's change counter.
					db.run("ALTER TABLE messages ADD COLUMN edited INTEGER");
					db.run("ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0");
					db.run("ALTER TABLE messages ADD COLUMN reactions TEXT");
					db.run("ALTER TABLE messages ADD COLUMN change_seq INTEGER");
					db.run("ALTER TABLE room_floors ADD COLUMN changes INTEGER NOT NULL DEFAULT 0");
					db.run("CREATE INDEX messages_change ON messages (room, change_seq) WHERE change_seq IS NOT NULL");
					migrateSearchErasure(db);
				}
				// Edited and deleted texts are forgotten from the search indexes by a worker thread (lib/search-worker.ts).
				if (version < 6) migrateSearchQueue(db);
				// The search indexes in a file of their own beside the database (lib/search-sqlite.ts).
				if (version < 7) migrateSearchFile(db);
				// A message's id for search in its own row, not in an index of (room, seq) (lib/search-sqlite.ts).
				if (version < 8) migrateSearchDocs(db);
				// Each send gives that id in its INSERT; an index of it replaces search_docs (lib/search-sqlite.ts).
				if (version < 9) migrateSearchDocIndex(db);
				// Rows stored without that id are numbered by the store, not by a trigger on every insert.
				if (version < 10) migrateNoNumberTrigger(db);
				ensureDocIndex(db);
				numberUnnumbered(db);
				if (version < SCHEMA_VERSION) {
					this.upgraded = version > 0;
					db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", [String(SCHEMA_VERSION)]);
				}
				const epoch = db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'epoch'").get();
				if (!epoch) throw new Error("database has no epoch");
				return epoch.value;
			})
			.immediate();
	}

	append(input: NewMessage): Promise<Appended> {
		return new Promise((resolve, reject) => {
			this.queue.push({ input, resolve, reject });
			if (!this.scheduled) {
				this.scheduled = true;
				// Chained so a batch that waits out a lock keeps its place ahead of later ones.
				const go = () => {
					this.flushing = this.flushing.then(() => this.commitQueue());
				};
				// A short window lets one fsync serve every send of a busy millisecond.
				if (this.commitWindowMs > 0) setTimeout(go, this.commitWindowMs);
				else setImmediate(go);
			}
		});
	}

	private async commitQueue(): Promise<void> {
		const batch = this.queue;
		this.queue = [];
		this.scheduled = false;
		if (batch.length === 0) return;
		const gone = this.fileProblem();
		if (gone) {
			// Acknowledging into an unlinked file would lose the message at the next restart.
			for (const p of batch) p.reject(new StoreError(gone));
			return;
		}
		let results: (Appended | QuotaExceeded | UnknownFile)[];
		let t0 = 0;
		try {
			results = await whileBusy(
				() => {
					t0 = performance.now();
					const mark = this.appendMark;
					try {
						return this.commit(batch);
					} catch (e) {
						// The transaction rolled back, and with it any seqs it cached (not when it never began:
						// the file was locked by another process).
						if (this.appendMark !== mark || !isBusy(e)) {
							this.seqs.clear();
							this.appendMark = -1;
						}
						throw e;
					}
				},
				{
					timeoutMs: this.busyTimeoutMs,
					firstMs: 2,
					maxMs: 50,
					onWait: (ms) => this.onBusy?.(ms, batch.length),
				},
				Bun.sleep,
			);
		} catch (e) {
			const error = new StoreError(
				isBusy(e) ? "database is locked by another process" : `write failed: ${(e as Error).message}`,
			);
			for (const p of batch) p.reject(error);
			return;
		}
		this.onCommit?.((performance.now() - t0) / 1000, batch.length);
		this.indexSoon();
		for (let i = 0; i < batch.length; i++) {
			const result = results[i] as Appended | QuotaExceeded | UnknownFile;
			if (result instanceof Error) batch[i]?.reject(result);
			else batch[i]?.resolve(result);
		}
	}

	/** One transaction for the batch; a message over its sender's quota is refused alone, the rest commit. */
	private commit(batch: Pending[]): (Appended | QuotaExceeded | UnknownFile)[] {
		return this.db
			.transaction(() => {
				// Rows another writer stored without an id for search are numbered first (that moves the counter).
				if (this.q.anyStray.get() !== null) numberUnnumbered(this.db);
				// The counter of ids for search, read once and written once a commit.
				const mark = lastDoc(this.db);
				if (mark !== this.appendMark || this.seqs.size > 10_000) {
					// Another writer stored messages since our last commit (or the cache grew large): start it afresh.
					this.seqs.clear();
				}
				this.givenDoc = mark;
				const results = batch.map((p) => {
					try {
						return this.insert(p.input);
					} catch (e) {
						if (e instanceof QuotaExceeded || e instanceof UnknownFile) return e;
						throw e;
					}
				});
				if (this.givenDoc !== mark) setLastDoc(this.db, this.givenDoc);
				this.appendMark = this.givenDoc;
				return results;
			})
			.immediate();
	}

	/**
	 * Before a search: messages stored without an id for search are numbered even when no send has come
	 * since (numberUnnumbered; the next commit sees the counter moved). False when some are left (the file
	 * is locked): the search then says it is behind.
	 */
	private numberStraysNow(): boolean {
		if (this.q.anyStray.get() === null) return true;
		if (this.closed || this.fileProblem()) return false;
		try {
			this.db.transaction(() => numberUnnumbered(this.db)).immediate();
		} catch (e) {
			// Locked by another writer: the next commit numbers them. Anything else is said.
			if (!isBusy(e)) this.onSearchThreadError?.(`numbering messages for search: ${(e as Error).message}`);
			return false;
		}
		this.unindexed = true;
		return true;
	}

	private insert(input: NewMessage): Appended {
		const key = input.from.toLowerCase();
		const clientId = input.id ?? null;
		if (clientId !== null) {
			const existing = this.q.bySenderId.get(input.room, key, clientId);
			if (existing) return { message: messageFromRow(existing), created: false };
		}
		if (input.files?.length) this.checkFiles(input);
		if (this.dailyQuota > 0) this.charge(input);
		const seq = (this.seqs.get(input.room) ?? this.q.lastSeq.get(input.room)?.seq ?? 0) + 1;
		const files = filesColumn(input.files);
		// The message's id for search, in arrival order: the search thread indexes in that order.
		this.q.insert.run(
			input.room,
			seq,
			input.from,
			key,
			clientId,
			input.text,
			input.ts,
			files,
			++this.givenDoc,
		);
		for (const file of input.files ?? []) {
			this.q.link.run(file.id, input.room, seq);
			if (input.account !== undefined) this.q.markSent.run(input.account, file.id);
		}
		this.seqs.set(input.room, seq);
		this.touched.add(input.room);
		return {
			message: messageFromRow({
				room: input.room,
				seq,
				sender: input.from,
				client_id: clientId,
				text: input.text,
				ts: input.ts,
				files,
			}),
			created: true,
		};
	}

	async latest(room: string, limit: number): Promise<Page> {
		return this.page(this.q.latest.all(room, limit + 1), limit);
	}

	async since(room: string, since: number, limit: number): Promise<Page> {
		const page = this.page(this.q.since.all(room, since, limit + 1), limit);
		if (!page.more && since < this.floor(room)) page.more = true;
		return page;
	}

	/** Every seq at or below it was removed by retention. */
	private floor(room: string): number {
		return (
			this.db.query<{ floor: number }, [string]>("SELECT floor FROM room_floors WHERE room = ?").get(room)
				?.floor ?? 0
		);
	}

	/**
	 * The sender's uploads of the message's files are still there: a deletion
	 * (forgetFiles) that took one since the send resolved it committed first,
	 * and this write transaction is the only one now. Throws UnknownFile.
	 */
	private checkFiles(input: NewMessage): void {
		const ids = (input.files ?? []).map((f) => f.id);
		const found =
			input.account === undefined
				? 0
				: (this.db
						.query<{ n: number }, string[]>(
							`SELECT COUNT(*) AS n FROM uploads WHERE account = ? AND hash IN (${ids.map(() => "?").join(", ")})`,
						)
						.get(input.account, ...ids)?.n ?? 0);
		if (found !== ids.length)
			throw new UnknownFile("a file of this message was deleted meanwhile: upload it again");
	}

	/** Counts the text against its sender's quota for the day, inside the append's transaction; throws QuotaExceeded. */
	private charge(input: NewMessage): void {
		const bytes = Buffer.byteLength(input.text);
		const key = nameKey(input.from);
		const day = quotaDay(input.ts);
		// One statement: the day's total grows only while it stays within the quota (no row changed: it would not).
		if (bytes > this.dailyQuota || this.q.charge.run(key, day, bytes, this.dailyQuota).changes !== 1)
			throw new QuotaExceeded(this.dailyQuota);
	}

	async prune(policy: Retention, now = Date.now()): Promise<number> {
		// Rooms over their count, and rooms holding messages past their age (found through the ts index).
		const cutoffs = new Map<string, number>();
		if (policy.keep) {
			for (const room of this.touched) {
				const top = this.q.lastSeq.get(room)?.seq ?? 0;
				if (top > policy.keep) cutoffs.set(room, top - policy.keep);
				else this.touched.delete(room);
			}
		} else {
			this.touched.clear();
		}
		if (policy.maxAgeMs) {
			const old = this.db
				.query<{ room: string; seq: number }, [number]>(
					"SELECT room, MAX(seq) AS seq FROM messages WHERE ts < ? GROUP BY room",
				)
				.all(now - policy.maxAgeMs);
			for (const { room, seq } of old) cutoffs.set(room, Math.max(seq, cutoffs.get(room) ?? 0));
		}
		let removed = 0;
		try {
			this.db
				.transaction(() => {
					for (const [room, cutoff] of cutoffs) {
						const floor = this.floor(room);
						const upTo = Math.min(cutoff, floor + PRUNE_STEP);
						if (upTo <= floor) continue;
						removed += this.db.run("DELETE FROM messages WHERE room = ? AND seq <= ?", [room, upTo]).changes;
						// Their files are no longer held by them; lib/attachments-index.ts sweeps files nothing holds.
						this.db.run("DELETE FROM message_files WHERE room = ? AND seq <= ?", [room, upTo]);
						this.db.run(
							"INSERT INTO room_floors (room, floor) VALUES (?, ?) ON CONFLICT (room) DO UPDATE SET floor = MAX(floor, excluded.floor)",
							[room, upTo],
						);
						if (upTo >= cutoff && this.touched.has(room)) this.touched.delete(room);
					}
				})
				.immediate();
		} catch (e) {
			// Busy: another process writes; the next round prunes.
			if (isBusy(e)) return 0;
			throw new StoreError(`prune failed: ${(e as Error).message}`);
		}
		// Their texts are still in the search indexes (and the WAL): the search thread forgets them.
		if (removed > 0) this.erase();
		return removed;
	}

	/**
	 * Hands what was committed to the search thread a moment later (one
	 * request for a busy while), and later still while sends keep the event
	 * loop busy (INDEX_BUSY_SHARE, at most INDEX_MAX_LAG_MS); a search
	 * first hands over and waits for what is not indexed yet, so a sender
	 * finds what it just sent. Sends never wait for indexing.
	 */
	private indexSoon(): void {
		if (!this.unindexed) this.unindexedSince = performance.now();
		this.unindexed = true;
		if (this.indexTimer || this.closed) return;
		const due = () => {
			this.indexTimer = undefined;
			if (!this.unindexed || this.closed) return;
			const waited = performance.now() - this.unindexedSince;
			if (this.loopLoad() > INDEX_BUSY_SHARE && waited + INDEX_DELAY_MS <= this.indexMaxLagMs) {
				this.indexTimer = setTimeout(due, INDEX_DELAY_MS);
				this.indexTimer.unref?.();
				return;
			}
			this.request(false);
		};
		// The load is that of the delay's second, not of a quiet while before it.
		this.loopLoad();
		this.indexTimer = setTimeout(due, INDEX_DELAY_MS);
		this.indexTimer.unref?.();
	}

	async search(query: SearchQuery, readable: ReadonlySet<string> | undefined): Promise<SearchPage> {
		// What was committed before is indexed by the search thread, an edit's new text after its old one is
		// forgotten: wait for both (without holding the event loop), so a sender or editor finds what it wrote.
		// Bounded: on a saturated server the newest messages become findable a little later.
		const straysLeft = !this.numberStraysNow();
		const indexed = this.unindexed || this.searcher.unindexed() ? this.request(false) : this.requests;
		const caughtUp = await Promise.all([
			this.reached(indexed, "indexed", this.searchWaitMs),
			this.reached(this.lastEdit, "forgotten", this.searchWaitMs),
		]);
		const page = await runSearch(
			query,
			async (plan, cursor, n) => this.searcher.candidates(plan, cursor, n),
			readable,
		);
		// Said on a first page only (later pages walk older messages, which are indexed), of a search that
		// looks at something.
		if (
			query.cursor === undefined &&
			(caughtUp.includes(false) || straysLeft) &&
			parseTerms(query.text).length > 0 &&
			readable?.size !== 0
		)
			page.behind = true;
		return page;
	}

	async edit(room: string, seq: number, text: string, ts: number): Promise<ChangeOutcome> {
		const outcome = await this.change(room, seq, (row, change) => {
			if (row.deleted) return "deleted";
			this.q.setText.run(text, ts, change, room, seq);
			return { ...row, text, edited: ts, change_seq: change };
		});
		// The edited-away text is as secret as a deleted one (remove); a search waits for its new text.
		if (outcome.ok) this.lastEdit = this.erase();
		return outcome;
	}

	async remove(room: string, seq: number): Promise<ChangeOutcome> {
		const outcome = await this.change(room, seq, (row, change) => {
			// Again: nothing to change, so no change number and no update (hub.ts answers that it was deleted).
			if (row.deleted) return "deleted";
			this.q.tombstone.run(change, room, seq);
			return { ...row, text: "", edited: null, deleted: 1, reactions: null, files: null, change_seq: change };
		});
		// The old text is overwritten in the database file (secure_delete) but still in the WAL's older frames
		// and in the search indexes: the search thread forgets it and truncates the WAL.
		if (outcome.ok) this.erase();
		return outcome;
	}

	react(room: string, seq: number, emoji: string, name: string, on: boolean): Promise<ChangeOutcome> {
		return this.change(room, seq, (row, change) => {
			if (row.deleted) return "deleted";
			const list = toggleReaction(
				row.reactions ? JSON.parse(row.reactions) : [],
				emoji,
				name,
				on,
				nameKey,
				LIMITS.reactionsPerMessage,
			);
			if (typeof list === "string") return list;
			const reactions = list.length > 0 ? JSON.stringify(list) : null;
			this.q.setReactions.run(reactions, change, room, seq);
			return { ...row, reactions, change_seq: change };
		});
	}

	/**
	 * One change in one write transaction: the room's next change number is
	 * taken only when `apply` (given the row and that number) stores something;
	 * a refusal rolls it back. Chained after pending append batches.
	 */
	private change(
		room: string,
		seq: number,
		apply: (row: StoredRow, change: number) => StoredRow | Exclude<ChangeRefusal, "not_found">,
	): Promise<ChangeOutcome> {
		const attempt = () =>
			whileBusy(
				() => {
					const gone = this.fileProblem();
					if (gone) throw new StoreError(gone);
					try {
						return this.db
							.transaction((): ChangeOutcome => {
								const row = this.q.one.get(room, seq);
								if (!row) throw new Refused("not_found");
								const change = this.q.bumpChange.get(room)?.changes as number;
								const next = apply(row, change);
								if (typeof next === "string") throw new Refused(next);
								return { ok: true, message: { ...messageFromRow(next), change } };
							})
							.immediate();
					} catch (e) {
						if (e instanceof Refused) return { ok: false, reason: e.reason } as ChangeOutcome;
						throw e;
					}
				},
				{ timeoutMs: this.busyTimeoutMs, firstMs: 2, maxMs: 50 },
				Bun.sleep,
			);
		const done = this.flushing.then(attempt).catch((e: unknown) => {
			if (e instanceof StoreError) throw e;
			throw new StoreError(
				isBusy(e) ? "database is locked by another process" : `write failed: ${(e as Error).message}`,
			);
		});
		this.flushing = done.then(
			() => {},
			() => {},
		);
		this.indexSoon();
		return done;
	}

	/**
	 * Asks the search thread (lib/search-worker.ts) to forget the texts queued
	 * in `search_forget` from the search indexes and to truncate the WAL, off
	 * the event loop. settled() awaits it. Returns the request's number.
	 */
	private erase(): number {
		this.lastErase = this.request(true);
		return this.lastErase;
	}

	/**
	 * Asks the search thread (started on first need) to index what is stored so far, and to erase if
	 * asked; returns the request's number.
	 */
	private request(erase: boolean): number {
		if (this.closed) return this.requests;
		this.unindexed = false;
		this.requests++;
		if (this.inMemory()) {
			// A thread of its own cannot open this database: the work is done here (a test's or a trial's store).
			this.inlineIndexer ??= new SqliteIndexer(this.db, this.db);
			const indexer = this.inlineIndexer;
			while (indexer.catchUp() > 0) {}
			for (let upTo = indexer.eraseSome(); upTo !== undefined; upTo = indexer.eraseSome())
				this.db.run(DEQUEUE, [upTo]);
			this.advance("indexed", this.requests);
			this.advance("done", this.requests);
			return this.requests;
		}
		const worker = this.searchThread();
		if (erase)
			worker.postMessage({ type: "erase", n: this.requests, path: this.path } satisfies SearchWorkerRequest);
		this.pump();
		return this.requests;
	}

	/**
	 * Hands the search thread the next batch of messages to index, read here (see PendingBatch), unless
	 * one is with it: its answer calls this again, until none is left. Then every request made before
	 * the read is indexed, and the round ends with the erasure queue's handled rows (dequeue).
	 */
	private pump(): void {
		if (this.batchOut || this.closed) return;
		clearTimeout(this.pumpTimer);
		// A thread that died is replaced here (searchThread), also when no new request comes.
		const worker = this.searchThread();
		const upTo = this.requests;
		let batch: PendingBatch | undefined;
		try {
			this.pending ??= new PendingReader(this.reader);
			batch = this.pending.read(SEARCH_STEP);
		} catch (e) {
			// The index file busy a moment (another process's open), or failing: tried again shortly.
			if (!isBusy(e)) this.onSearchThreadError?.(`search index: ${(e as Error).message}`);
			this.pumpSoon(isBusy(e) ? 100 : 1000);
			return;
		}
		if (!batch) {
			this.advance("indexed", upTo);
			// And the queue rows another process's thread handled, if its store died before deleting them.
			this.afterErasure(() => this.dequeue());
			return;
		}
		this.batchOut = true;
		this.batchUpTo = batch.complete ? upTo : undefined;
		worker.postMessage({ type: "index", path: this.path, batch } satisfies SearchWorkerRequest);
	}

	private pumpSoon(ms: number): void {
		clearTimeout(this.pumpTimer);
		this.pumpTimer = setTimeout(() => this.pump(), ms);
		this.pumpTimer.unref?.();
	}

	/** The search thread, started on first need. */
	private searchThread(): Worker {
		if (!this.worker) {
			const worker = new Worker(SEARCH_WORKER_URL);
			worker.onmessage = (event: MessageEvent<SearchWorkerReply>) => {
				const m = event.data;
				if (m.type !== "error") this.threadFailures = 0;
				if (m.type === "indexed") {
					this.batchOut = false;
					// A search waits for what was stored before it, not for what sends stored after (steady sends
					// would otherwise keep every read non-empty, and the search waiting its whole time).
					if (m.ok && this.batchUpTo !== undefined) this.advance("indexed", this.batchUpTo);
					// A stale batch (see SqliteIndexer.indexBatch) or a busy index is read again shortly, a failing
					// one (said in an "error") a second later.
					if (m.ok) this.pump();
					else this.pumpSoon(m.failed ? 1000 : 100);
				} else if (m.type === "erased") {
					this.erasedUpTo = Math.max(this.erasedUpTo, m.upTo);
					this.afterErasure(() => this.dequeue());
				} else if (m.type === "forgotten") this.advance("forgotten", m.n);
				else if (m.type === "done")
					this.afterErasure(async () => {
						// Again (a failed deletion is retried here), then the WAL.
						await this.dequeue();
						if (m.truncate) await this.truncateWal();
					}, m.n);
				else if (m.type === "error") this.onSearchThreadError?.(m.message);
				else this.workerClosed?.();
			};
			// A thread that fails to load or dies: said, and another takes over its work (pump) a moment later, or
			// at the next request (searches meanwhile wait their bounded time and answer from what is indexed).
			worker.onerror = (event: ErrorEvent) => {
				this.onSearchThreadError?.(`search thread failed: ${event.message}`);
				if (this.worker === worker) this.worker = undefined;
				worker.terminate();
				this.batchOut = false;
				// One that cannot even start is not started again every second: 1, 2, 4 … 60 s.
				this.threadFailures++;
				if (this.waiting.length > 0 || this.lastErase > this.done)
					this.pumpSoon(Math.min(60_000, 1000 * 2 ** (this.threadFailures - 1)));
			};
			// An idle search thread must not keep a finished process alive (Bun's Worker has unref; the DOM type does not).
			(worker as unknown as { unref(): void }).unref();
			this.worker = worker;
			// The erasure the last thread left unfinished: the new one does it (it reads the queue itself).
			if (this.lastErase > this.done)
				worker.postMessage({
					type: "erase",
					n: this.lastErase,
					path: this.path,
				} satisfies SearchWorkerRequest);
		}
		return this.worker;
	}

	/**
	 * The database's part of an erasure, on this thread (the search thread writes only the index file, so
	 * it may run at the lowest priority without ever holding the database's lock): in order, after what
	 * came before; with `done`, that request is then finished (also when the step failed: said, and a
	 * later erasure takes what is left).
	 */
	private afterErasure(step: () => Promise<unknown>, done?: number): void {
		this.erasing = this.erasing
			.then(async () => {
				await step();
			})
			.catch((e: unknown) => this.onSearchThreadError?.(`erasure: ${(e as Error).message}`))
			.finally(() => {
				if (done !== undefined) this.advance("done", done);
			});
	}

	/** Deletes the erasure queue's rows the index has handled (their texts are in them). */
	private async dequeue(): Promise<void> {
		// The index's own mark too: another process's thread may have handled rows its store never deleted.
		const upTo = Math.max(this.erasedUpTo, this.erasedMark());
		if (upTo <= this.dequeued || this.dbClosed) return;
		await this.write(() => this.db.run(DEQUEUE, [upTo]));
		this.dequeued = Math.max(this.dequeued, upTo);
	}

	/** The highest erasure queue id the index file has handled (lib/search-sqlite.ts eraseSome). */
	private erasedMark(): number {
		return Number(indexMeta(this.reader, "erased") ?? 0);
	}

	/**
	 * The WAL's older frames still hold the old texts (and the edited row's old page): checkpoint and
	 * truncate it. Not while a reader (a search, the search thread, another process) holds an older
	 * snapshot: tried again, sooner at first, for about a minute.
	 */
	private async truncateWal(): Promise<void> {
		for (let i = 0; i < 70 && !this.closed && !this.dbClosed; i++) {
			const row = this.db.query<{ busy: number }, []>("PRAGMA wal_checkpoint(TRUNCATE)").get();
			if (row?.busy === 0) return;
			await Bun.sleep(Math.min(10 * 2 ** i, 1000));
		}
	}

	/**
	 * The connection searches read through, with the index file attached and checked (prepareIndex). A
	 * damaged index file is deleted and built anew (it holds nothing the messages do not), once.
	 */
	private openReader(retried: boolean): Database {
		// An in-memory database has no other connection: its index is attached to it, in memory too.
		const reader = this.inMemory() ? this.db : new Database(this.path, { strict: true });
		let rebuilt = false;
		try {
			reader.run("PRAGMA busy_timeout = 5000");
			whileBusy(
				() => {
					if (!reader.query("SELECT 1 FROM pragma_database_list WHERE name = 'idx'").get())
						openIndex(reader, this.path);
					rebuilt = prepareIndex(reader, this.epoch);
				},
				OPENING,
				Bun.sleepSync,
			);
			// A rebuilt index gives back the old one's pages (best effort: said, not thrown).
			const unshrunk = rebuilt ? compactIndex(reader) : undefined;
			if (unshrunk)
				this.onSearchThreadError?.(`search index: the old index's pages were not given back: ${unshrunk}`);
			// Searches must not stall the event loop either.
			reader.run("PRAGMA busy_timeout = 0");
			return reader;
		} catch (e) {
			if (reader !== this.db) reader.close();
			const code = String((e as { code?: unknown }).code);
			if (
				retried ||
				this.inMemory() ||
				!(code.startsWith("SQLITE_CORRUPT") || code.startsWith("SQLITE_NOTADB"))
			)
				throw e;
			const file = indexPath(this.path);
			for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
			return this.openReader(true);
		}
	}

	private inMemory(): boolean {
		return this.path === "" || this.path === ":memory:";
	}

	/** The search thread has indexed (or finished: indexed and erased) every request up to `n`. */
	private advance(phase: Phase, n: number): void {
		// Done is forgotten and truncated.
		if (phase === "done") this.forgotten = Math.max(this.forgotten, n);
		this[phase] = Math.max(this[phase], n);
		const now = this.waiting.filter((w) => w.n <= this[w.phase]);
		this.waiting = this.waiting.filter((w) => w.n > this[w.phase]);
		for (const w of now) w.resolve();
	}

	/** Resolves once the search thread has indexed (or finished) request `n` (true), or after `maxMs` (false). */
	private reached(n: number, phase: Phase, maxMs?: number): Promise<boolean> {
		if (n <= this[phase]) return Promise.resolve(true);
		return new Promise((resolve) => {
			const waiter = {
				n,
				phase,
				resolve: () => {
					clearTimeout(timer);
					resolve(true);
				},
			};
			// Bounded: the waiter goes (a thread that died answers nothing), and the timer keeps no process alive.
			const timer =
				maxMs === undefined
					? undefined
					: setTimeout(() => {
							this.waiting = this.waiting.filter((w) => w !== waiter);
							resolve(false);
						}, maxMs);
			timer?.unref?.();
			this.waiting.push(waiter);
		});
	}

	/**
	 * Resolves once every message so far is indexed, every edited or deleted
	 * text forgotten from the search indexes and the WAL truncated (for tests
	 * and `hubbub` tools).
	 */
	async settled(): Promise<void> {
		const indexed = this.request(false);
		await Promise.all([this.reached(indexed, "indexed"), this.reached(this.lastErase, "done")]);
	}

	async changes(room: string, afterChange: number, limit: number, maxSeq?: number): Promise<Page> {
		const rows = this.q.changes.all(room, afterChange, maxSeq ?? Number.MAX_SAFE_INTEGER, limit + 1);
		const more = rows.length > limit;
		return { messages: (more ? rows.slice(0, limit) : rows).map(messageFromRow), more };
	}

	async lastChange(room: string): Promise<number> {
		return this.q.lastChange.get(room)?.changes ?? 0;
	}

	async before(room: string, before: number, limit: number): Promise<Page> {
		return this.page(this.q.before.all(room, before, limit + 1), limit);
	}

	async after(room: string, after: number, limit: number): Promise<Page> {
		const rows = this.q.after.all(room, after, limit + 1);
		const more = rows.length > limit;
		return { messages: (more ? rows.slice(0, limit) : rows).map(messageFromRow), more };
	}

	/** Rows arrive newest first with one extra row that only tells whether there is more. */
	private page(rows: StoredRow[], limit: number): Page {
		const more = rows.length > limit;
		const kept = more ? rows.slice(0, limit) : rows;
		return { messages: kept.reverse().map(messageFromRow), more };
	}

	/**
	 * Runs a short write transaction, again while another process holds the
	 * write lock (up to the busy timeout): the file index's writes are rare and small.
	 */
	private async write<T>(work: () => T): Promise<T> {
		try {
			return await whileBusy(
				() => this.db.transaction(work).immediate(),
				{ timeoutMs: this.busyTimeoutMs, firstMs: 2, maxMs: 50 },
				Bun.sleep,
			);
		} catch (e) {
			throw new StoreError(`write failed: ${(e as Error).message}`);
		}
	}

	recordUpload(row: Omit<UploadRow, "sent">, place?: () => void): Promise<void> {
		return this.write(() => {
			this.db.run(
				`INSERT INTO uploads (account, hash, name, type, size, width, height, inline, created, sent)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
				ON CONFLICT (account, hash) DO UPDATE SET name = excluded.name, created = excluded.created, sent = 0`,
				[
					row.account,
					row.id,
					row.name,
					row.type,
					row.size,
					row.width ?? null,
					row.height ?? null,
					row.inline ? 1 : 0,
					row.created,
				],
			);
			// Inside the write transaction: no forgetFiles of this file can run until it is in place.
			place?.();
		});
	}

	async uploads(account: string, ids: string[]): Promise<UploadRow[]> {
		if (ids.length === 0) return [];
		return this.db
			.query<Record<string, unknown>, string[]>(
				`SELECT * FROM uploads WHERE account = ? AND hash IN (${ids.map(() => "?").join(", ")})`,
			)
			.all(account, ...ids)
			.map(uploadFromRow);
	}

	async uploadedBytes(account: string): Promise<number> {
		return (
			this.db
				.query<{ bytes: number | null }, [string]>("SELECT SUM(size) AS bytes FROM uploads WHERE account = ?")
				.get(account)?.bytes ?? 0
		);
	}

	async fileRooms(id: string, limit: number): Promise<string[]> {
		return this.db
			.query<{ room: string }, [string, number]>(
				"SELECT DISTINCT room FROM message_files WHERE hash = ? LIMIT ?",
			)
			.all(id, limit)
			.map((r) => r.room);
	}

	releaseFiles(room: string, seq: number): Promise<string[]> {
		return this.write(() => {
			const ids = this.db
				.query<{ hash: string }, [string, number]>(
					"DELETE FROM message_files WHERE room = ? AND seq = ? RETURNING hash",
				)
				.all(room, seq)
				.map((r) => r.hash);
			this.db.run("UPDATE messages SET files = NULL WHERE room = ? AND seq = ? AND files IS NOT NULL", [
				room,
				seq,
			]);
			return ids;
		});
	}

	forgetFiles(
		ids: string[] | undefined,
		unsentSince: number,
		remove?: (id: string) => void,
	): Promise<string[]> {
		return this.write(() => {
			const candidates =
				ids ??
				this.db
					.query<{ hash: string }, [number, number]>(
						`SELECT DISTINCT hash FROM uploads u
						WHERE NOT EXISTS (SELECT 1 FROM message_files f WHERE f.hash = u.hash)
						AND NOT EXISTS (SELECT 1 FROM uploads n WHERE n.hash = u.hash AND n.sent = 0 AND n.created >= ?1)
						LIMIT ?2`,
					)
					.all(unsentSince, FORGET_STEP)
					.map((r) => r.hash);
			const held = this.db.query<{ n: number }, [string, number]>(`SELECT
				(SELECT COUNT(*) FROM message_files WHERE hash = ?1) +
				(SELECT COUNT(*) FROM uploads WHERE hash = ?1 AND sent = 0 AND created >= ?2) AS n`);
			const gone: string[] = [];
			for (const id of candidates) {
				if ((held.get(id, unsentSince)?.n ?? 0) > 0) continue;
				this.db.run("DELETE FROM uploads WHERE hash = ?", [id]);
				// Still inside the write transaction: an upload of the same bytes waits, then puts them back.
				remove?.(id);
				gone.push(id);
			}
			return gone;
		});
	}

	unlinkGone(): Promise<number> {
		return this.write(
			() =>
				this.db.run(`DELETE FROM message_files WHERE NOT EXISTS (SELECT 1 FROM messages m
					WHERE m.room = message_files.room AND m.seq = message_files.seq AND m.files IS NOT NULL)`).changes,
		);
	}

	async knownFiles(ids: string[]): Promise<Set<string>> {
		if (ids.length === 0) return new Set();
		const list = ids.map(() => "?").join(", ");
		return new Set(
			this.db
				.query<{ hash: string }, string[]>(
					`SELECT hash FROM uploads WHERE hash IN (${list}) UNION SELECT hash FROM message_files WHERE hash IN (${list})`,
				)
				.all(...ids, ...ids)
				.map((r) => r.hash),
		);
	}

	/** A sentence when the file we opened is no longer the one at our path. */
	private fileProblem(): string | undefined {
		if (!this.identity) return undefined;
		const now = fileIdentity(this.path);
		if (!now) return `the database file ${JSON.stringify(this.path)} was deleted while hubbub was running`;
		if (now.dev !== this.identity.dev || now.ino !== this.identity.ino)
			return `the database file ${JSON.stringify(this.path)} was replaced by another file while hubbub was running`;
		return undefined;
	}

	/**
	 * Writes one row to a table of its own within a second (another process may
	 * hold the write lock that long): a database someone deleted, on a full
	 * disk, or kept locked would take no new messages either.
	 */
	async probe(): Promise<string | undefined> {
		const gone = this.fileProblem();
		if (gone) return gone;
		try {
			await whileBusy(
				() =>
					this.db
						.transaction(() => {
							this.db.run(
								"CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)",
							);
							this.db.run("INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)", [Date.now()]);
						})
						.immediate(),
				{ timeoutMs: 1000, firstMs: 20, maxMs: 20 },
				Bun.sleep,
			);
			return undefined;
		} catch (e) {
			return isBusy(e)
				? "the database is locked by another process"
				: `the database cannot take writes: ${(e as Error).message}`;
		}
	}

	async close(): Promise<void> {
		clearTimeout(this.indexTimer);
		clearTimeout(this.pumpTimer);
		await this.flushing;
		await this.commitQueue();
		// What is queued and not yet erased stays queued in the file, and what is not indexed is past the
		// index's position: the next open does both.
		await this.reached(this.lastErase, "done", 10_000);
		this.closed = true;
		clearTimeout(this.indexTimer);
		const worker = this.worker;
		if (worker) {
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, 10_000);
				timer.unref?.();
				this.workerClosed = () => {
					clearTimeout(timer);
					resolve();
				};
				worker.postMessage({ type: "close" } satisfies SearchWorkerRequest);
			});
			worker.terminate();
		}
		// The database's part of what the thread reported, and the rows its index has handled (bounded: a
		// write that cannot get the lock gives up after its busy timeout).
		this.afterErasure(() => this.dequeue());
		await Promise.race([this.erasing, new Promise<void>((resolve) => setTimeout(resolve, 10_000).unref?.())]);
		this.dbClosed = true;
		if (this.reader !== this.db) this.reader.close();
		this.db.close();
	}
}
