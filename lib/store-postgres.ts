// The shared store: PostgreSQL through Bun.SQL, for processes on several hosts that must keep one history.
import { SQL } from "bun";
import {
	type Appended,
	messageFromRow,
	type NewMessage,
	newEpoch,
	type Page,
	type Store,
	type StoredRow,
	StoreError,
} from "./store.ts";

const SCHEMA_VERSION = 1;
/** pg_advisory_xact_lock key: one migration at a time when several processes start together. */
const MIGRATION_LOCK = 4_817_230;

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
		private readonly onCommit?: (seconds: number, messages: number) => void,
	) {}

	/** Connects, creates or migrates the schema, and reads the epoch. */
	static async open(
		url: string,
		options: { onCommit?: (seconds: number, messages: number) => void } = {},
	): Promise<PostgresStore> {
		// A short connection timeout: a send must fail fast with server_error, not hang, while the database is away.
		const sql = new SQL({ url, max: 10, connectionTimeout: 3, idleTimeout: 60 });
		try {
			const epoch = await sql.begin(async (tx) => {
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
					await tx`INSERT INTO hubbub_meta (key, value) VALUES ('schema', ${String(SCHEMA_VERSION)})
						ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
				}
				const [epoch] = await tx`SELECT value FROM hubbub_meta WHERE key = 'epoch'`;
				if (!epoch) throw new Error("database has no epoch");
				return epoch.value as string;
			});
			return new PostgresStore(sql, epoch, options.onCommit);
		} catch (e) {
			await sql.close({ timeout: 0 }).catch(() => {});
			throw new StoreError(`cannot open database ${redact(url)}: ${(e as Error).message}`);
		}
	}

	/** Per room, the last append of ours in line. */
	private readonly chains = new Map<string, Promise<unknown>>();

	/**
	 * Appends of one room run one after another. The counter row's lock would
	 * serialise them in PostgreSQL anyway; doing it here keeps their answers,
	 * which come back on different pool connections, in seq order.
	 */
	append(input: NewMessage): Promise<Appended> {
		const room = input.room;
		const run = (this.chains.get(room) ?? Promise.resolve()).then(() => this.commit(input));
		const tail = run.catch(() => {});
		this.chains.set(room, tail);
		void tail.then(() => {
			if (this.chains.get(room) === tail) this.chains.delete(room);
		});
		return run;
	}

	private async commit(input: NewMessage): Promise<Appended> {
		const key = input.from.toLowerCase();
		const clientId = input.id ?? null;
		const t0 = performance.now();
		for (let attempt = 0; ; attempt++) {
			try {
				const appended = await this.sql.begin(async (tx) => {
					if (clientId !== null) {
						const [existing] = await tx<
							StoredRow[]
						>`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
							WHERE room = ${input.room} AND sender_key = ${key} AND client_id = ${clientId}`;
						if (existing) return { message: messageFromRow(existing), created: false };
					}
					const [counter] = await tx`INSERT INTO hubbub_rooms (room, last_seq) VALUES (${input.room}, 1)
						ON CONFLICT (room) DO UPDATE SET last_seq = hubbub_rooms.last_seq + 1 RETURNING last_seq`;
					const seq = Number(counter.last_seq);
					await tx`INSERT INTO hubbub_messages (room, seq, sender, sender_key, client_id, text, ts)
						VALUES (${input.room}, ${seq}, ${input.from}, ${key}, ${clientId}, ${input.text}, ${input.ts})`;
					return {
						message: messageFromRow({
							room: input.room,
							seq,
							sender: input.from,
							client_id: clientId,
							text: input.text,
							ts: input.ts,
						}),
						created: true,
					};
				});
				this.onCommit?.((performance.now() - t0) / 1000, 1);
				return appended;
			} catch (e) {
				// The same id sent twice at once (two processes): the loser finds the winner's row next time.
				if (isUniqueViolation(e) && attempt < 2) continue;
				throw new StoreError(`write failed: ${(e as Error).message}`);
			}
		}
	}

	private async page(rows: Promise<StoredRow[]>, limit: number): Promise<Page> {
		let list: StoredRow[];
		try {
			list = await rows;
		} catch (e) {
			throw new StoreError(`read failed: ${(e as Error).message}`);
		}
		const more = list.length > limit;
		const kept = more ? list.slice(0, limit) : [...list];
		return { messages: kept.reverse().map(messageFromRow), more };
	}

	latest(room: string, limit: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
				WHERE room = ${room} ORDER BY seq DESC LIMIT ${limit + 1}`,
			limit,
		);
	}

	since(room: string, since: number, limit: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
				WHERE room = ${room} AND seq > ${since} ORDER BY seq DESC LIMIT ${limit + 1}`,
			limit,
		);
	}

	before(room: string, before: number, limit: number): Promise<Page> {
		return this.page(
			this.sql<StoredRow[]>`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
				WHERE room = ${room} AND seq < ${before} ORDER BY seq DESC LIMIT ${limit + 1}`,
			limit,
		);
	}

	async healthy(): Promise<boolean> {
		try {
			await this.sql`SELECT 1`;
			return true;
		} catch {
			return false;
		}
	}

	async close(): Promise<void> {
		// Let appends already in line commit first.
		await Promise.all(this.chains.values());
		await this.sql.close({ timeout: 5 });
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
