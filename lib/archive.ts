// Bulk access to a hubbub database for export and import: stream every row, write rows with their own seqs.
import { Database, type Statement } from "bun:sqlite";
import { existsSync } from "node:fs";
import { SQL } from "bun";
import { CommandError } from "./command-error.ts";
import { nextDocs } from "./search-sqlite.ts";
import { isPostgresUrl, type StoredRow, StoreError } from "./store.ts";
import { PostgresStore, redact } from "./store-postgres.ts";
import { SqliteStore } from "./store-sqlite.ts";

/** A stored row as export and import see it: `StoredRow` with numbers as numbers. */
export interface Row {
	room: string;
	seq: number;
	sender: string;
	client_id: string | null;
	text: string;
	ts: number;
}

/** Writes inside one transaction: everything an import does commits together or not at all. */
export interface ArchiveWriter {
	/** `stored`: the room's highest stored seq; `given`: the highest it ever handed out (retention may have removed some). */
	lastSeq(room: string): Promise<{ stored: number; given: number }>;
	/** The rows of `room` stored under these seqs. */
	atSeqs(room: string, seqs: number[]): Promise<Map<number, Row>>;
	/** Which of these client ids `room` already holds, as `senderKey\nid`. */
	knownIds(room: string, ids: { senderKey: string; id: string }[]): Promise<Set<string>>;
	insert(rows: Row[]): Promise<void>;
	/** Tells the store the room's counter after rows were inserted with their own seqs. */
	finishRoom(room: string, lastSeq: number): Promise<void>;
}

export interface Archive {
	/** Every row of `room` (or of every room), ascending by room then seq, from one snapshot, with constant memory. */
	rows(room?: string): AsyncIterable<Row>;
	transaction<T>(work: (w: ArchiveWriter) => Promise<T>): Promise<T>;
	close(): Promise<void>;
}

/** Lower-case sender: the key the stores dedupe client ids on. */
export function senderKey(sender: string): string {
	return sender.toLowerCase();
}

export function toRow(r: StoredRow): Row {
	return { ...r, seq: Number(r.seq), ts: Number(r.ts) };
}

const COLUMNS = "room, seq, sender, client_id, text, ts";
const PAGE = 5000;

/**
 * Opens `db` for export (`create: false`: it must exist) or import. The store
 * opens it first, so its schema is created or migrated exactly as the server
 * would do it.
 */
export async function openArchive(db: string, options: { create: boolean }): Promise<Archive> {
	try {
		if (isPostgresUrl(db)) {
			await (await PostgresStore.open(db)).close();
			return new PostgresArchive(new SQL({ url: db, max: 2, connectionTimeout: 5 }));
		}
		if (db === ":memory:") throw new CommandError("give a database file (--db), not :memory:");
		if (!options.create && !existsSync(db))
			throw new CommandError(`no database at ${JSON.stringify(db)} (give --db)`);
		await new SqliteStore(db).close();
		return new SqliteArchive(new Database(db, { readwrite: true, create: false, strict: true }));
	} catch (e) {
		if (e instanceof StoreError) throw new CommandError(redact(e.message));
		throw e;
	}
}

class SqliteArchive implements Archive {
	private readonly q: {
		last: Statement<{ seq: number | null }, [string]>;
		/** Retention's floor per room (schema 2 on): seqs up to it were given and removed. */
		floor?: Statement<{ floor: number }, [string]>;
		at: Statement<Row, [string, number]>;
		byId: Statement<{ n: number }, [string, string, string]>;
		insert: Statement<unknown, [string, number, string, string, string | null, string, number, number]>;
	};

	constructor(private readonly db: Database) {
		db.run("PRAGMA busy_timeout = 5000");
		this.q = {
			last: db.query("SELECT MAX(seq) AS seq FROM messages WHERE room = ?"),
			floor: db.query("SELECT name FROM sqlite_schema WHERE name = 'room_floors'").get()
				? db.query("SELECT floor FROM room_floors WHERE room = ?")
				: undefined,
			at: db.query(`SELECT ${COLUMNS} FROM messages WHERE room = ? AND seq = ?`),
			byId: db.query("SELECT 1 AS n FROM messages WHERE room = ? AND sender_key = ? AND client_id = ?"),
			insert: db.query(
				"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			),
		};
	}

	async *rows(room?: string): AsyncIterable<Row> {
		const rows =
			room === undefined
				? this.db.query<Row, []>(`SELECT ${COLUMNS} FROM messages ORDER BY room, seq`).iterate()
				: this.db
						.query<Row, [string]>(`SELECT ${COLUMNS} FROM messages WHERE room = ? ORDER BY seq`)
						.iterate(room);
		// One read transaction: the export is one snapshot while the server keeps writing.
		this.db.run("BEGIN");
		try {
			yield* rows;
		} finally {
			this.db.run("COMMIT");
		}
	}

	async transaction<T>(work: (w: ArchiveWriter) => Promise<T>): Promise<T> {
		const { q } = this;
		const writer: ArchiveWriter = {
			lastSeq: async (room) => {
				const stored = q.last.get(room)?.seq ?? 0;
				return { stored, given: Math.max(stored, q.floor?.get(room)?.floor ?? 0) };
			},
			atSeqs: async (room, seqs) => {
				const found = new Map<number, Row>();
				for (const seq of seqs) {
					const row = q.at.get(room, seq);
					if (row) found.set(seq, row);
				}
				return found;
			},
			knownIds: async (room, ids) =>
				new Set(ids.filter((k) => q.byId.get(room, k.senderKey, k.id)).map((k) => `${k.senderKey}\n${k.id}`)),
			insert: async (rows) => {
				// Numbered for search as the store numbers its sends (lib/search-sqlite.ts nextDocs).
				let doc = nextDocs(this.db, rows.length);
				for (const r of rows)
					q.insert.run(r.room, r.seq, r.sender, senderKey(r.sender), r.client_id, r.text, r.ts, doc++);
			},
			// SQLite takes the next seq from MAX(seq): nothing to keep.
			finishRoom: async () => {},
		};
		this.db.run("BEGIN IMMEDIATE");
		try {
			const result = await work(writer);
			this.db.run("COMMIT");
			return result;
		} catch (e) {
			this.db.run("ROLLBACK");
			throw e;
		}
	}

	async close(): Promise<void> {
		this.db.close();
	}
}

class PostgresArchive implements Archive {
	constructor(private readonly sql: SQL) {}

	async *rows(room?: string): AsyncIterable<Row> {
		// Pages by key on one reserved connection, in one repeatable-read snapshot.
		const conn = await this.sql.reserve();
		try {
			await conn`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
			let after: { room: string; seq: number } | undefined;
			for (;;) {
				const page: StoredRow[] =
					room !== undefined
						? await conn`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
							WHERE room = ${room} AND seq > ${after?.seq ?? 0} ORDER BY seq LIMIT ${PAGE}`
						: after === undefined
							? await conn`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
								ORDER BY room, seq LIMIT ${PAGE}`
							: await conn`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
								WHERE (room, seq) > (${after.room}, ${after.seq}) ORDER BY room, seq LIMIT ${PAGE}`;
				for (const r of page) yield toRow(r);
				if (page.length < PAGE) break;
				const last = toRow(page[page.length - 1] as StoredRow);
				after = { room: last.room, seq: last.seq };
			}
			await conn`COMMIT`;
		} finally {
			conn.release();
		}
	}

	async transaction<T>(work: (w: ArchiveWriter) => Promise<T>): Promise<T> {
		return this.sql.begin(async (tx) => {
			const writer: ArchiveWriter = {
				lastSeq: async (room) => {
					const [r] = await tx`SELECT MAX(seq) AS seq FROM hubbub_messages WHERE room = ${room}`;
					const [counter] = await tx`SELECT last_seq FROM hubbub_rooms WHERE room = ${room}`;
					const stored = Number(r?.seq ?? 0);
					return { stored, given: Math.max(stored, Number(counter?.last_seq ?? 0)) };
				},
				atSeqs: async (room, seqs) => {
					const rows: StoredRow[] =
						await tx`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages WHERE room = ${room} AND seq IN ${tx(seqs)}`;
					return new Map(rows.map((r) => [Number(r.seq), toRow(r)]));
				},
				knownIds: async (room, ids) => {
					if (ids.length === 0) return new Set();
					const rows: { sender_key: string; client_id: string }[] =
						await tx`SELECT sender_key, client_id FROM hubbub_messages
							WHERE room = ${room} AND client_id IN ${tx(ids.map((k) => k.id))}`;
					return new Set(rows.map((r) => `${r.sender_key}\n${r.client_id}`));
				},
				insert: async (rows) => {
					if (rows.length === 0) return;
					await tx`INSERT INTO hubbub_messages ${tx(rows.map((r) => ({ ...r, sender_key: senderKey(r.sender) })))}`;
				},
				// The counter row hands out the next seq: it must not fall behind what is stored.
				finishRoom: async (room, lastSeq) => {
					await tx`INSERT INTO hubbub_rooms (room, last_seq) VALUES (${room}, ${lastSeq})
						ON CONFLICT (room) DO UPDATE SET last_seq = GREATEST(hubbub_rooms.last_seq, EXCLUDED.last_seq)`;
				},
			};
			return work(writer);
		});
	}

	async close(): Promise<void> {
		await this.sql.close({ timeout: 5 });
	}
}
