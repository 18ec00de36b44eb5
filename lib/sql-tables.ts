// The tables kept beside the message store (accounts, rooms) on Bun.SQL: one way to open a SQLite file or a PostgreSQL URL for them, and what their errors mean.
import { SQL } from "bun";
import { isPostgresUrl, StoreError } from "./store.ts";

export type Engine = "sqlite" | "postgres";

/**
 * Opens `db` (a postgres:// URL or a SQLite path) and hands it to `make`
 * (which creates or migrates its tables); on any failure the connection is
 * closed and a StoreError names `what` ("the account tables").
 */
export async function openTables<T>(
	db: string,
	what: string,
	make: (sql: SQL, engine: Engine) => Promise<T>,
): Promise<T> {
	const postgres = isPostgresUrl(db);
	const sql = postgres
		? new SQL({ url: db, max: 4, connectionTimeout: 3, idleTimeout: 60 })
		: new SQL({ adapter: "sqlite", filename: db === "" ? ":memory:" : db, create: true });
	try {
		if (!postgres) {
			// These writes are rare and short; another process's message batch holds the lock for milliseconds.
			await sql`PRAGMA busy_timeout = 2000`;
			// The message store uses WAL too; whichever opens the file first sets it (it is kept in the file).
			await sql`PRAGMA journal_mode = WAL`;
		}
		return await make(sql, postgres ? "postgres" : "sqlite");
	} catch (e) {
		await sql.close({ timeout: 0 }).catch(() => {});
		throw new StoreError(`cannot open ${what}: ${(e as Error).message}`);
	}
}

/** A UNIQUE or primary-key conflict, as SQLite and PostgreSQL report it. */
export function isUniqueViolation(e: unknown): boolean {
	const err = e as { errno?: unknown; code?: unknown; message?: unknown };
	return (
		err?.errno === "23505" ||
		String(err?.code).includes("23505") ||
		String(err?.code).startsWith("SQLITE_CONSTRAINT") ||
		/UNIQUE constraint failed|duplicate key/i.test(String(err?.message))
	);
}
