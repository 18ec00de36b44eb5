// The shared store: PostgreSQL through Bun.SQL, for processes on several hosts that must keep one history.
import { SQL } from "bun";
import { LIMITS } from "../protocol.ts";
import { nameKey } from "./names.ts";
import { BadCursor, runSearch, type SearchPage, type SearchQuery } from "./search.ts";
import { migrateSearch, postgresCandidates } from "./search-postgres.ts";
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

const SCHEMA_VERSION = 5;
/** pg_advisory_xact_lock key: one migration at a time when several processes start together. */
const MIGRATION_LOCK = 4_817_230;
/**
 * pg_advisory_xact_lock(FILE_LOCK, hashtext(file id)): taken by an upload's
 * record, a deletion's decision and an append naming the file, so none of
 * them interleaves with another of the same file.
 */
const FILE_LOCK = 4_817_232;

/** Locks files `ids` for this transaction, in one order so two transactions cannot deadlock. */
async function lockFiles(tx: SQL, ids: Iterable<string>): Promise<void> {
	for (const id of [...new Set(ids)].sort())
		await tx`SELECT pg_advisory_xact_lock(${FILE_LOCK}, hashtext(${id}))`;
}

interface Pending {
	input: NewMessage;
	resolve: (a: Appended) => void;
	reject: (e: Error) => void;
}

/** Thrown inside a change's transaction to roll it back (the change number with it). */
class Refused {
	constructor(readonly reason: Exclude<ChangeRefusal, "not_found">) {}
}

function isUniqueViolation(e: unknown): boolean {
	const err = e as { errno?: string; code?: string };
	return err?.errno === "23505" || String(err?.code).includes("23505");
}

/**
 * PostgreSQL store. Each room's seq comes from a counter row updated in the
 * same transaction as the insert: the row lock makes seq N commit only after
 * N−1 has, so the sequence is gap-free across every process that shares it.
 */
export class PostgresStore implements Store {
	private constructor(
		private readonly sql: SQL,
		readonly epoch: string,
		readonly id: string,
		private readonly onCommit?: (seconds: number, messages: number) => void,
		private readonly dailyQuota = 0,
		/**
		 * Searches run on connections of their own that plan each statement for
		 * its parameters (plan_cache_mode = force_custom_plan): after five runs
		 * PostgreSQL would otherwise switch a prepared `text ILIKE $1` to a
		 * generic plan that cannot use the trigram index for the pattern it is
		 * given, and walk the table (measured: 0.05 ms became 50–90 ms at 20,000
		 * messages). The append path keeps its cached plans.
		 */
		private readonly searchSql: SQL = sql,
	) {}

	/** Rooms appended to through this handle since the last prune: only they can have grown past `keep`. */
	private readonly touched = new Set<string>();

	/** Connects, creates or migrates the schema, and reads the epoch. */
	static async open(
		url: string,
		options: { onCommit?: (seconds: number, messages: number) => void } & QuotaOptions = {},
	): Promise<PostgresStore> {
		// A short connection timeout: a send must fail fast with server_error, not hang, while the database is away.
		const sql = new SQL({ url, max: 10, connectionTimeout: 3, idleTimeout: 60 });
		try {
			const identity = await sql.begin(async (tx) => {
				await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
				await tx`CREATE TABLE IF NOT EXISTS hubbub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`;
				const [row] = await tx`SELECT value FROM hubbub_meta WHERE key = 'schema'`;
				const version = row ? Number(row.value) : 0;
				if (version > SCHEMA_VERSION) {
					throw new Error(`schema version ${version} is newer than this hubbub understands`);
				}
				if (version < 1) {
					await tx`CREATE TABLE hubbub_rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)`;
					await tx`CREATE TABLE hubbub_messages (
						room TEXT NOT NULL,
						seq INTEGER NOT NULL,
						sender TEXT NOT NULL,
						sender_key TEXT NOT NULL,
						client_id TEXT,
						text TEXT NOT NULL,
						ts BIGINT NOT NULL,
						PRIMARY KEY (room, seq)
					)`;
					await tx`CREATE UNIQUE INDEX hubbub_messages_client_id ON hubbub_messages (room, sender_key, client_id) WHERE client_id IS NOT NULL`;
					await tx`INSERT INTO hubbub_meta (key, value) VALUES ('epoch', ${newEpoch()})`;
				}
				if (version < 2) {
					// Retention and quotas: every seq up to a room's floor was removed; bytes per sender and day.
					await tx`ALTER TABLE hubbub_rooms ADD COLUMN floor INTEGER NOT NULL DEFAULT 0`;
					await tx`CREATE TABLE hubbub_usage (
						sender_key TEXT NOT NULL,
						day INTEGER NOT NULL,
						bytes BIGINT NOT NULL,
						PRIMARY KEY (sender_key, day)
					)`;
					await tx`CREATE INDEX hubbub_messages_ts ON hubbub_messages (ts)`;
				}
				if (version < 3) await migrateSearch(tx);
				if (version < 4) {
					// Files: a message's files (JSON), who uploaded what, and which messages hold each file.
					await tx`ALTER TABLE hubbub_messages ADD COLUMN files TEXT`;
					await tx`CREATE TABLE hubbub_uploads (
						account TEXT NOT NULL,
						hash TEXT NOT NULL,
						name TEXT NOT NULL,
						type TEXT NOT NULL,
						size BIGINT NOT NULL,
						width INTEGER,
						height INTEGER,
						inline BOOLEAN NOT NULL,
						created BIGINT NOT NULL,
						sent BOOLEAN NOT NULL DEFAULT FALSE,
						PRIMARY KEY (account, hash)
					)`;
					await tx`CREATE INDEX hubbub_uploads_hash ON hubbub_uploads (hash)`;
					await tx`CREATE TABLE hubbub_message_files (
						hash TEXT NOT NULL,
						room TEXT NOT NULL,
						seq INTEGER NOT NULL,
						PRIMARY KEY (hash, room, seq)
					)`;
					await tx`CREATE INDEX hubbub_message_files_message ON hubbub_message_files (room, seq)`;
				}
				if (version < 5) {
					// Protocol 1.2: edits, tombstones, reactions, and each room's change counter.
					await tx`ALTER TABLE hubbub_messages ADD COLUMN edited BIGINT,
						ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false,
						ADD COLUMN reactions TEXT,
						ADD COLUMN change_seq INTEGER`;
					await tx`ALTER TABLE hubbub_rooms ADD COLUMN changes INTEGER NOT NULL DEFAULT 0`;
					await tx`CREATE INDEX hubbub_messages_change ON hubbub_messages (room, change_seq) WHERE change_seq IS NOT NULL`;
				}
				if (version < SCHEMA_VERSION) {
					await tx`INSERT INTO hubbub_meta (key, value) VALUES ('schema', ${String(SCHEMA_VERSION)})
						ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
				}
				const [epoch] = await tx`SELECT value FROM hubbub_meta WHERE key = 'epoch'`;
				if (!epoch) throw new Error("database has no epoch");
				// Not a migration: every database gets its id the first time it is opened, whatever its schema.
				await tx`INSERT INTO hubbub_meta (key, value) VALUES ('deployment', ${newEpoch()}) ON CONFLICT (key) DO NOTHING`;
				const [id] = await tx`SELECT value FROM hubbub_meta WHERE key = 'deployment'`;
				return { epoch: epoch.value as string, id: id.value as string };
			});
			const searchSql = new SQL({
				url,
				max: 2,
				connectionTimeout: 3,
				idleTimeout: 60,
				connection: { plan_cache_mode: "force_custom_plan" },
			});
			return new PostgresStore(
				sql,
				identity.epoch,
				identity.id,
				options.onCommit,
				options.dailyQuota,
				searchSql,
			);
		} catch (e) {
			await sql.close({ timeout: 0 }).catch(() => {});
			throw new StoreError(`cannot open database ${redact(url)}: ${(e as Error).message}`);
		}
	}

	/** Per room: appends waiting for the transaction in flight to finish. */
	private readonly queues = new Map<string, Pending[]>();
	/** Per room: the batch being committed now. */
	private readonly flushing = new Map<string, Promise<void>>();

	/**
	 * Appends of one room are committed in batches, one transaction at a time:
	 * what arrives while a batch commits forms the next one. The counter row's
	 * lock would serialise them in PostgreSQL anyway; batching here spends one
	 * round of statements on many messages and keeps answers in seq order.
	 */
	append(input: NewMessage): Promise<Appended> {
		return new Promise((resolve, reject) => {
			const queue = this.queues.get(input.room) ?? [];
			queue.push({ input, resolve, reject });
			this.queues.set(input.room, queue);
			if (!this.flushing.has(input.room)) this.flushRoom(input.room);
		});
	}

	private flushRoom(room: string): void {
		const batch = this.queues.get(room);
		this.queues.delete(room);
		if (!batch?.length) {
			this.flushing.delete(room);
			return;
		}
		const done = this.commitBatch(room, batch).then(
			(results) => {
				for (const [i, p] of batch.entries()) {
					const result = results[i] as Appended | QuotaExceeded | UnknownFile;
					if (result instanceof Error) p.reject(result);
					else p.resolve(result);
				}
			},
			(e: unknown) => {
				const error = e instanceof StoreError ? e : new StoreError(`write failed: ${(e as Error).message}`);
				for (const p of batch) p.reject(error);
			},
		);
		this.flushing.set(
			room,
			done.then(() => this.flushRoom(room)),
		);
	}

	private async commitBatch(
		room: string,
		batch: Pending[],
	): Promise<(Appended | QuotaExceeded | UnknownFile)[]> {
		const t0 = performance.now();
		for (let attempt = 0; ; attempt++) {
			try {
				const results = await this.sql.begin(async (tx) => {
					// What is already stored under the batch's client ids, by (lower-case sender, id).
					const known = new Map<string, Appended>();
					const ids = [...new Set(batch.flatMap((p) => (p.input.id === undefined ? [] : [p.input.id])))];
					if (ids.length > 0) {
						const rows = await tx<(StoredRow & { sender_key: string })[]>`
							SELECT ${tx.unsafe(MESSAGE_COLUMNS)}, sender_key FROM hubbub_messages
							WHERE room = ${room} AND client_id IN ${tx(ids)}`;
						for (const r of rows)
							known.set(`${r.sender_key}\n${r.client_id}`, { message: messageFromRow(r), created: false });
					}
					const dedupeKey = (input: NewMessage) =>
						input.id === undefined ? undefined : `${input.from.toLowerCase()}\n${input.id}`;
					// Messages that take a seq: not stored before, and not repeated earlier in this batch.
					const seen = new Set<string>();
					const candidates = batch.filter((p) => {
						const k = dedupeKey(p.input);
						if (k === undefined) return true;
						if (known.has(k) || seen.has(k)) return false;
						seen.add(k);
						return true;
					});
					// Naming a file deleted since the send resolved it: refused alone, like the quota below.
					const fileless = await this.missingFiles(tx, candidates);
					const filelessKeys = new Set([...fileless].flatMap((p) => dedupeKey(p.input) ?? []));
					const withFiles = fileless.size > 0 ? candidates.filter((p) => !fileless.has(p)) : candidates;
					// Over their sender's quota: refused alone, they take no seq (nor do repeats of their id).
					const refused = this.dailyQuota > 0 ? await this.overQuota(tx, withFiles) : new Set<Pending>();
					const refusedKeys = new Set([...refused].flatMap((p) => dedupeKey(p.input) ?? []));
					const fresh = withFiles.length - refused.size;
					let seq = 0;
					if (fresh > 0) {
						const [counter] = await tx`INSERT INTO hubbub_rooms (room, last_seq) VALUES (${room}, ${fresh})
							ON CONFLICT (room) DO UPDATE SET last_seq = hubbub_rooms.last_seq + ${fresh} RETURNING last_seq`;
						seq = Number(counter.last_seq) - fresh;
					}
					const rows: Record<string, string | number | null>[] = [];
					const links: { hash: string; room: string; seq: number }[] = [];
					const sent: { account: string; ids: string[] }[] = [];
					const results = batch.map((p): Appended | QuotaExceeded | UnknownFile => {
						const k = dedupeKey(p.input);
						const stored = k === undefined ? undefined : known.get(k);
						if (stored) return { message: stored.message, created: false };
						if (fileless.has(p) || (k !== undefined && filelessKeys.has(k)))
							return new UnknownFile("a file of this message was deleted meanwhile: upload it again");
						if (refused.has(p) || (k !== undefined && refusedKeys.has(k)))
							return new QuotaExceeded(this.dailyQuota);
						const row = {
							room,
							seq: ++seq,
							sender: p.input.from,
							sender_key: p.input.from.toLowerCase(),
							client_id: p.input.id ?? null,
							text: p.input.text,
							ts: p.input.ts,
							files: filesColumn(p.input.files),
						};
						rows.push(row);
						for (const file of p.input.files ?? []) links.push({ hash: file.id, room, seq: row.seq });
						if (p.input.files?.length && p.input.account !== undefined)
							sent.push({ account: p.input.account, ids: p.input.files.map((f) => f.id) });
						const appended = { message: messageFromRow(row), created: true };
						if (k !== undefined) known.set(k, appended);
						return appended;
					});
					if (rows.length > 0) await tx`INSERT INTO hubbub_messages ${tx(rows)}`;
					if (links.length > 0)
						await tx`INSERT INTO hubbub_message_files ${tx(links)} ON CONFLICT DO NOTHING`;
					for (const { account, ids } of sent)
						await tx`UPDATE hubbub_uploads SET sent = TRUE WHERE account = ${account} AND hash IN ${tx(ids)}`;
					return results;
				});
				this.touched.add(room);
				this.onCommit?.((performance.now() - t0) / 1000, batch.length);
				return results;
			} catch (e) {
				// The same id sent to two processes at once: the loser finds the winner's row on the next try.
				if (isUniqueViolation(e) && attempt < 2) continue;
				throw new StoreError(`write failed: ${(e as Error).message}`);
			}
		}
	}

	/**
	 * Of `candidates`, those naming a file their sender's upload row no longer
	 * holds. The files are locked first, so a deletion deciding about one of
	 * them commits wholly before this check or waits for this append.
	 */
	private async missingFiles(tx: SQL, candidates: Pending[]): Promise<Set<Pending>> {
		const ids = candidates.flatMap((p) => (p.input.files ?? []).map((f) => f.id));
		if (ids.length === 0) return new Set();
		await lockFiles(tx, ids);
		const rows = await tx<{ account: string; hash: string }[]>`
			SELECT account, hash FROM hubbub_uploads WHERE hash IN ${tx([...new Set(ids)])}`;
		const held = new Set(rows.map((r) => `${r.account}\n${r.hash}`));
		return new Set(
			candidates.filter((p) => (p.input.files ?? []).some((f) => !held.has(`${p.input.account}\n${f.id}`))),
		);
	}

	/** Rows arrive newest first (oldest first when `ascending`) with one extra row that only tells whether there is more. */
	private async page(rows: Promise<StoredRow[]>, limit: number, ascending = false): Promise<Page> {
		let list: StoredRow[];
		try {
			list = await rows;
		} catch (e) {
			throw new StoreError(`read failed: ${(e as Error).message}`);
		}
		const more = list.length > limit;
		const kept = more ? list.slice(0, limit) : [...list];
		return { messages: (ascending ? kept : kept.reverse()).map(messageFromRow), more };
	}

	latest(room: string, limit: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT ${this.sql.unsafe(MESSAGE_COLUMNS)} FROM hubbub_messages
				WHERE room = ${room} ORDER BY seq DESC LIMIT ${limit + 1}`,
			limit,
		);
	}

	async since(room: string, since: number, limit: number): Promise<Page> {
		const [page, floor] = await Promise.all([
			this.page(
				this.sql<StoredRow[]>`SELECT ${this.sql.unsafe(MESSAGE_COLUMNS)} FROM hubbub_messages
					WHERE room = ${room} AND seq > ${since} ORDER BY seq DESC LIMIT ${limit + 1}`,
				limit,
			),
			this.sql<{ floor: number }[]>`SELECT floor FROM hubbub_rooms WHERE room = ${room}`.then(
				(rows) => Number(rows[0]?.floor ?? 0),
				(e: unknown) => {
					throw new StoreError(`read failed: ${(e as Error).message}`);
				},
			),
		]);
		if (!page.more && since < floor) page.more = true;
		return page;
	}

	/**
	 * Which of `candidates` (in order) would take their sender past the daily
	 * quota; counts the others. The usage rows are locked by the upsert, so two
	 * processes cannot both spend the last bytes.
	 */
	private async overQuota(tx: SQL, candidates: Pending[]): Promise<Set<Pending>> {
		const refused = new Set<Pending>();
		const used = new Map<string, { key: string; day: number; bytes: number }>();
		for (const p of candidates) {
			const key = nameKey(p.input.from);
			const day = quotaDay(p.input.ts);
			let entry = used.get(`${key}\n${day}`);
			if (!entry) {
				const [row] = await tx`INSERT INTO hubbub_usage (sender_key, day, bytes) VALUES (${key}, ${day}, 0)
					ON CONFLICT (sender_key, day) DO UPDATE SET bytes = hubbub_usage.bytes RETURNING bytes`;
				entry = { key, day, bytes: Number(row.bytes) };
				used.set(`${key}\n${day}`, entry);
			}
			const bytes = Buffer.byteLength(p.input.text);
			if (entry.bytes + bytes > this.dailyQuota) refused.add(p);
			else entry.bytes += bytes;
		}
		for (const { key, day, bytes } of used.values())
			await tx`UPDATE hubbub_usage SET bytes = ${bytes} WHERE sender_key = ${key} AND day = ${day}`;
		return refused;
	}

	async prune(policy: Retention, now = Date.now()): Promise<number> {
		try {
			const cutoffs = new Map<string, number>();
			if (policy.keep && this.touched.size > 0) {
				const rooms = [...this.touched];
				const rows = await this.sql<{ room: string; last_seq: number }[]>`
					SELECT room, last_seq FROM hubbub_rooms WHERE room IN ${this.sql(rooms)}`;
				for (const r of rows) {
					const top = Number(r.last_seq);
					if (top > policy.keep) cutoffs.set(r.room, top - policy.keep);
					else this.touched.delete(r.room);
				}
			} else if (!policy.keep) {
				this.touched.clear();
			}
			if (policy.maxAgeMs) {
				const old = await this.sql<{ room: string; seq: number }[]>`
					SELECT room, MAX(seq) AS seq FROM hubbub_messages WHERE ts < ${now - policy.maxAgeMs} GROUP BY room`;
				for (const r of old) cutoffs.set(r.room, Math.max(Number(r.seq), cutoffs.get(r.room) ?? 0));
			}
			let removed = 0;
			for (const [room, cutoff] of cutoffs) {
				removed += await this.sql.begin(async (tx) => {
					const [row] = await tx`SELECT floor FROM hubbub_rooms WHERE room = ${room} FOR UPDATE`;
					const floor = Number(row?.floor ?? 0);
					const upTo = Math.min(cutoff, floor + PRUNE_STEP);
					if (!row || upTo <= floor) return 0;
					const gone = await tx`DELETE FROM hubbub_messages WHERE room = ${room} AND seq <= ${upTo}`;
					// Their files are no longer held by them; lib/attachments-index.ts sweeps files nothing holds.
					await tx`DELETE FROM hubbub_message_files WHERE room = ${room} AND seq <= ${upTo}`;
					await tx`UPDATE hubbub_rooms SET floor = ${upTo} WHERE room = ${room}`;
					if (upTo >= cutoff) this.touched.delete(room);
					return gone.count as number;
				});
			}
			return removed;
		} catch (e) {
			throw new StoreError(`prune failed: ${(e as Error).message}`);
		}
	}

	async search(query: SearchQuery, readable: ReadonlySet<string> | undefined): Promise<SearchPage> {
		try {
			return await runSearch(
				query,
				(plan, cursor, n) => postgresCandidates(this.searchSql, plan, cursor, n),
				readable,
			);
		} catch (e) {
			if (e instanceof BadCursor) throw e;
			throw new StoreError(`search failed: ${(e as Error).message}`);
		}
	}

	before(room: string, before: number, limit: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT ${this.sql.unsafe(MESSAGE_COLUMNS)} FROM hubbub_messages
				WHERE room = ${room} AND seq < ${before} ORDER BY seq DESC LIMIT ${limit + 1}`,
			limit,
		);
	}

	after(room: string, after: number, limit: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT ${this.sql.unsafe(MESSAGE_COLUMNS)} FROM hubbub_messages
				WHERE room = ${room} AND seq > ${after} ORDER BY seq LIMIT ${limit + 1}`,
			limit,
			true,
		);
	}

	/** Runs `work`, turning a database failure into a StoreError. */
	private async io<T>(what: string, work: () => Promise<T>): Promise<T> {
		try {
			return await work();
		} catch (e) {
			throw new StoreError(`${what} failed: ${(e as Error).message}`);
		}
	}

	recordUpload(row: Omit<UploadRow, "sent">, place?: () => void): Promise<void> {
		return this.io("write", () =>
			this.sql.begin(async (tx) => {
				await lockFiles(tx, [row.id]);
				await tx`INSERT INTO hubbub_uploads (account, hash, name, type, size, width, height, inline, created, sent)
					VALUES (${row.account}, ${row.id}, ${row.name}, ${row.type}, ${row.size}, ${row.width ?? null},
						${row.height ?? null}, ${row.inline}, ${row.created}, FALSE)
					ON CONFLICT (account, hash) DO UPDATE SET name = EXCLUDED.name, created = EXCLUDED.created, sent = FALSE`;
				// Under the file's lock: no deletion of it decides until it is in place and the row committed.
				place?.();
			}),
		);
	}

	uploads(account: string, ids: string[]): Promise<UploadRow[]> {
		if (ids.length === 0) return Promise.resolve([]);
		return this.io("read", async () =>
			(
				await this.sql<Record<string, unknown>[]>`SELECT * FROM hubbub_uploads
					WHERE account = ${account} AND hash IN ${this.sql(ids)}`
			).map(uploadFromRow),
		);
	}

	uploadedBytes(account: string): Promise<number> {
		return this.io("read", async () => {
			const [row] = await this.sql`SELECT SUM(size) AS bytes FROM hubbub_uploads WHERE account = ${account}`;
			return Number(row?.bytes ?? 0);
		});
	}

	fileRooms(id: string, limit: number): Promise<string[]> {
		return this.io("read", async () =>
			(
				await this.sql<{ room: string }[]>`SELECT DISTINCT room FROM hubbub_message_files
					WHERE hash = ${id} LIMIT ${limit}`
			).map((r) => r.room),
		);
	}

	releaseFiles(room: string, seq: number): Promise<string[]> {
		return this.io("write", () =>
			this.sql.begin(async (tx) => {
				const ids = await tx<{ hash: string }[]>`DELETE FROM hubbub_message_files
					WHERE room = ${room} AND seq = ${seq} RETURNING hash`;
				await tx`UPDATE hubbub_messages SET files = NULL WHERE room = ${room} AND seq = ${seq} AND files IS NOT NULL`;
				return ids.map((r) => r.hash);
			}),
		);
	}

	forgetFiles(
		ids: string[] | undefined,
		unsentSince: number,
		remove?: (id: string) => void,
	): Promise<string[]> {
		return this.io("write", () =>
			this.sql.begin(async (tx) => {
				const candidates =
					ids ??
					(
						await tx<{ hash: string }[]>`SELECT DISTINCT hash FROM hubbub_uploads u
							WHERE NOT EXISTS (SELECT 1 FROM hubbub_message_files f WHERE f.hash = u.hash)
							AND NOT EXISTS (SELECT 1 FROM hubbub_uploads n
								WHERE n.hash = u.hash AND NOT n.sent AND n.created >= ${unsentSince})
							LIMIT ${FORGET_STEP}`
					).map((r) => r.hash);
				if (candidates.length === 0) return [];
				await lockFiles(tx, candidates);
				const held = await tx<{ hash: string }[]>`
					SELECT hash FROM hubbub_message_files WHERE hash IN ${tx(candidates)}
					UNION SELECT hash FROM hubbub_uploads
						WHERE hash IN ${tx(candidates)} AND NOT sent AND created >= ${unsentSince}`;
				const kept = new Set(held.map((r) => r.hash));
				const gone = [...new Set(candidates)].filter((id) => !kept.has(id));
				if (gone.length > 0) await tx`DELETE FROM hubbub_uploads WHERE hash IN ${tx(gone)}`;
				// Under the files' locks: an upload of the same bytes waits, then puts them back.
				for (const id of gone) remove?.(id);
				return gone;
			}),
		);
	}

	edit(room: string, seq: number, text: string, ts: number): Promise<ChangeOutcome> {
		return this.change(room, seq, async (tx, row, change) => {
			if (row.deleted) return "deleted";
			await tx`UPDATE hubbub_messages SET text = ${text}, edited = ${ts}, change_seq = ${change}
				WHERE room = ${room} AND seq = ${seq}`;
			return { ...row, text, edited: ts, change_seq: change };
		});
	}

	remove(room: string, seq: number): Promise<ChangeOutcome> {
		// The row is updated in place; the old row version stays in the table's pages until VACUUM reuses them (docs/SECURITY.md).
		return this.change(room, seq, async (tx, row, change) => {
			// Again: nothing to change, so no change number and no update (hub.ts answers that it was deleted).
			if (row.deleted) return "deleted";
			await tx`UPDATE hubbub_messages SET text = '', edited = NULL, deleted = true, reactions = NULL,
				files = NULL, change_seq = ${change} WHERE room = ${room} AND seq = ${seq}`;
			return {
				...row,
				text: "",
				edited: null,
				deleted: true,
				reactions: null,
				files: null,
				change_seq: change,
			};
		});
	}

	react(room: string, seq: number, emoji: string, name: string, on: boolean): Promise<ChangeOutcome> {
		return this.change(room, seq, async (tx, row, change) => {
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
			await tx`UPDATE hubbub_messages SET reactions = ${reactions}, change_seq = ${change}
				WHERE room = ${room} AND seq = ${seq}`;
			return { ...row, reactions, change_seq: change };
		});
	}

	/**
	 * One change in one transaction: the message row is locked, then the
	 * room's counter row (whose lock makes change N commit before N+1 can be
	 * taken, on every process); a refusal rolls the number back.
	 */
	private async change(
		room: string,
		seq: number,
		apply: (
			tx: SQL,
			row: StoredRow,
			change: number,
		) => Promise<StoredRow | Exclude<ChangeRefusal, "not_found">>,
	): Promise<ChangeOutcome> {
		try {
			return await this.sql.begin(async (tx): Promise<ChangeOutcome> => {
				const [row] = await tx<StoredRow[]>`SELECT ${tx.unsafe(MESSAGE_COLUMNS)} FROM hubbub_messages
					WHERE room = ${room} AND seq = ${seq} FOR UPDATE`;
				if (!row) return { ok: false, reason: "not_found" };
				// Refusals are decided before the number is taken; `apply` only refuses on the row's state.
				const [counter] =
					await tx`UPDATE hubbub_rooms SET changes = changes + 1 WHERE room = ${room} RETURNING changes`;
				const change = Number(counter.changes);
				const next = await apply(tx, row, change);
				if (typeof next === "string") throw new Refused(next);
				return { ok: true, message: { ...messageFromRow(next), change } };
			});
		} catch (e) {
			if (e instanceof Refused) return { ok: false, reason: e.reason };
			throw new StoreError(`write failed: ${(e as Error).message}`);
		}
	}

	async changes(room: string, afterChange: number, limit: number, maxSeq?: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT ${this.sql.unsafe(MESSAGE_COLUMNS)} FROM hubbub_messages
				WHERE room = ${room} AND change_seq > ${afterChange} AND seq <= ${maxSeq ?? 2_147_483_647}
				ORDER BY change_seq LIMIT ${limit + 1}`,
			limit,
			true,
		);
	}

	async lastChange(room: string): Promise<number> {
		try {
			const [row] = await this.sql`SELECT changes FROM hubbub_rooms WHERE room = ${room}`;
			return Number(row?.changes ?? 0);
		} catch (e) {
			throw new StoreError(`read failed: ${(e as Error).message}`);
		}
	}

	unlinkGone(): Promise<number> {
		return this.io("write", async () => {
			const gone = await this
				.sql`DELETE FROM hubbub_message_files f WHERE NOT EXISTS (SELECT 1 FROM hubbub_messages m
				WHERE m.room = f.room AND m.seq = f.seq AND m.files IS NOT NULL)`;
			return gone.count as number;
		});
	}

	knownFiles(ids: string[]): Promise<Set<string>> {
		if (ids.length === 0) return Promise.resolve(new Set());
		return this.io("read", async () => {
			const rows = await this.sql<{ hash: string }[]>`
				SELECT hash FROM hubbub_uploads WHERE hash IN ${this.sql(ids)}
				UNION SELECT hash FROM hubbub_message_files WHERE hash IN ${this.sql(ids)}`;
			return new Set(rows.map((r) => r.hash));
		});
	}

	async probe(): Promise<string | undefined> {
		try {
			// Its own table, so a probe never touches the history; created on first use (idempotent, no migration).
			await this.sql`CREATE TABLE IF NOT EXISTS hubbub_probe (id INTEGER PRIMARY KEY, at BIGINT NOT NULL)`;
			await this.sql`INSERT INTO hubbub_probe (id, at) VALUES (1, ${Date.now()})
				ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at`;
			return undefined;
		} catch (e) {
			return `the database cannot take writes: ${(e as Error).message}`;
		}
	}

	async close(): Promise<void> {
		// Let appends already in line commit first.
		while (this.flushing.size > 0) await Promise.all(this.flushing.values());
		await Promise.all([this.sql.close({ timeout: 5 }), this.searchSql.close({ timeout: 5 })]);
	}
}

/** A database URL without its password, for messages and logs; a file path as it is. */
export function redact(db: string): string {
	try {
		const u = new URL(db);
		if (!u.password) return db;
		u.password = "***";
		return u.href;
	} catch {
		return db;
	}
}
