// Putting a backup back: only a sound hubbub database, migrated by the store itself, under a new epoch.
import { Database } from "bun:sqlite";
import { existsSync, realpathSync, renameSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { SQL } from "bun";
import { AccountStore } from "./account-store.ts";
import { fsyncDir, fsyncFile, timestampedName } from "./backup.ts";
import { CommandError } from "./command-error.ts";
import { isPostgresUrl, newEpoch, StoreError } from "./store.ts";
import { redact } from "./store-postgres.ts";
import { SqliteStore } from "./store-sqlite.ts";

export interface Restored {
	from: string;
	to: string;
	schema: number;
	messages: number;
	epoch: string;
	/** Where the database it replaced was moved, if there was one. */
	previous?: string;
	/** Sign-in sessions the backup held, all ended. */
	sessionsEnded: number;
}

function tablesOf(file: string): Set<string> {
	const db = new Database(file, { readonly: true });
	try {
		return new Set(
			db
				.query<{ name: string }, []>("SELECT name FROM sqlite_schema WHERE type = 'table'")
				.all()
				.map((r) => r.name),
		);
	} finally {
		db.close();
	}
}

function isBusy(e: unknown): boolean {
	return String((e as { code?: unknown })?.code).startsWith("SQLITE_BUSY");
}

/**
 * Throws when another process has the SQLite file open. A hubbub server keeps
 * a shared lock on its database for as long as it runs (WAL mode), so an
 * exclusive lock is only granted once every server has stopped. Closing the
 * probe also folds a crashed server's leftover WAL into the file.
 */
export function refuseIfInUse(db: string): void {
	if (!existsSync(db)) return;
	let probe: Database | undefined;
	try {
		probe = new Database(db, { readwrite: true, create: false });
		probe.run("PRAGMA busy_timeout = 0");
		probe.run("PRAGMA locking_mode = EXCLUSIVE");
		probe.run("BEGIN EXCLUSIVE");
		probe.run("COMMIT");
	} catch (e) {
		if (isBusy(e))
			throw new CommandError(
				`${JSON.stringify(db)} is in use by a running hubbub (or another program); stop it first`,
			);
		// Not a database we can open: it is being replaced, so that is no reason to refuse.
	} finally {
		probe?.close();
	}
}

interface Inspected {
	schema: number;
	epoch: string;
}

/** Opens `file` read-only and throws a CommandError (status 2) unless it is a sound hubbub database. */
function inspect(source: Database, file: string): Inspected {
	const shown = JSON.stringify(file);
	let problems: string[];
	try {
		problems = source
			.query<{ integrity_check: string }, []>("PRAGMA integrity_check")
			.all()
			.map((r) => r.integrity_check);
	} catch (e) {
		const code = String((e as { code?: unknown }).code);
		if (code.startsWith("SQLITE_CORRUPT"))
			throw new CommandError(`${shown} is corrupt: ${(e as Error).message}`);
		throw new CommandError(`${shown} is not a readable SQLite database: ${(e as Error).message}`);
	}
	if (problems.length !== 1 || problems[0] !== "ok")
		throw new CommandError(`${shown} is corrupt: ${problems.slice(0, 3).join("; ")}`);
	const tables = new Set(
		source
			.query<{ name: string }, []>("SELECT name FROM sqlite_schema WHERE type = 'table'")
			.all()
			.map((r) => r.name),
	);
	if (!tables.has("meta") || !tables.has("messages"))
		throw new CommandError(
			`${shown} is a SQLite database but not a hubbub one (no meta and messages tables)`,
		);
	const meta = new Map(
		source
			.query<{ key: string; value: string }, []>("SELECT key, value FROM meta")
			.all()
			.map((r) => [r.key, r.value]),
	);
	const schema = Number(meta.get("schema"));
	const epoch = meta.get("epoch");
	if (!Number.isInteger(schema) || schema < 1 || !epoch)
		throw new CommandError(
			`${shown} is not a hubbub database (no schema version or epoch in its meta table)`,
		);
	return { schema, epoch };
}

/** The files SQLite and hubbub keep beside a database: its WAL, shared memory and search index (with its own). */
const SIDE_FILES = ["-wal", "-shm", "-search", "-search-wal", "-search-shm"];

/**
 * Replaces the SQLite database `to` with the backup `from`: checks it
 * (integrity, hubbub tables), copies it beside `to`, lets the store migrate
 * the copy if it is older (or refuse it if it is newer), gives it a new epoch,
 * and renames it into place. The database it replaces is kept beside it.
 * Refuses while a server has `to` open.
 */
export async function restoreSqlite(from: string, to: string): Promise<Restored> {
	if (to === ":memory:") throw new CommandError("restore needs a database file (--db), not :memory:");
	if (!existsSync(from)) throw new CommandError(`no file at ${JSON.stringify(from)}`);
	const target = resolve(to);
	if (existsSync(target) && realpathSync(from) === realpathSync(target))
		throw new CommandError("the backup is the database itself; give the path of a copy");
	if (!existsSync(dirname(target)))
		throw new CommandError(`the folder ${JSON.stringify(dirname(target))} does not exist`);
	refuseIfInUse(target);

	const tmp = `${target}.restore-${process.pid}`;
	const removeTmp = () => {
		for (const suffix of ["", ...SIDE_FILES]) rmSync(`${tmp}${suffix}`, { force: true });
	};
	// Reading a WAL-mode file makes its -wal and -shm; those we made are removed again, so the backup's folder stays as it was.
	const litter = [`${from}-wal`, `${from}-shm`].filter((f) => !existsSync(f));
	let source: Database | undefined;
	try {
		try {
			source = new Database(from, { readonly: true });
		} catch (e) {
			throw new CommandError(
				`${JSON.stringify(from)} is not a readable SQLite database: ${(e as Error).message}`,
			);
		}
		inspect(source, from);
		removeTmp();
		// A fresh, compact copy: the backup file itself is never written to.
		source.run("VACUUM INTO ?", [tmp]);
	} catch (e) {
		removeTmp();
		if (e instanceof CommandError) throw e;
		throw new CommandError(`cannot copy ${JSON.stringify(from)}: ${(e as Error).message}`, 1);
	} finally {
		source?.close();
		for (const f of litter) rmSync(f, { force: true });
	}

	let restored: Restored;
	try {
		// The stores' own migrations bring an older schema up to date, and refuse a newer one: the
		// messages' always, the accounts' when the backup has account tables.
		try {
			await new SqliteStore(tmp).close();
			if (tablesOf(tmp).has("hubbub_account_meta")) await (await AccountStore.open(tmp)).close();
		} catch (e) {
			if (e instanceof StoreError)
				throw new CommandError(
					`cannot use ${JSON.stringify(from)}: ${e.message.replace(/^cannot open (database "[^"]*"|the account tables): /, "")}`,
				);
			throw e;
		}
		const copy = new Database(tmp, { readwrite: true });
		try {
			const epoch = newEpoch();
			copy.run("UPDATE meta SET value = ? WHERE key = 'epoch'", [epoch]);
			const schema = Number(
				copy.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema'").get()?.value,
			);
			const messages = copy.query<{ n: number }, []>("SELECT count(*) AS n FROM messages").get()?.n ?? 0;
			restored = { from, to: target, schema, messages, epoch, sessionsEnded: 0 };
			// Sessions ended since the backup would be valid again, and reset links already used would work
			// again: a restored database signs everyone out and voids its reset links.
			const tables = tablesOf(tmp);
			if (tables.has("hubbub_sessions"))
				restored.sessionsEnded = copy.run("DELETE FROM hubbub_sessions").changes;
			if (tables.has("hubbub_resets")) copy.run("DELETE FROM hubbub_resets");
		} finally {
			copy.close();
		}
		fsyncFile(tmp);
		// Checked again: a server may have started while the copy was made.
		refuseIfInUse(target);
		if (existsSync(target)) {
			const previous = `${target}.pre-restore-${timestampedName().replace(/^hubbub-|\.db$/g, "")}`;
			renameSync(target, previous);
			restored.previous = previous;
		}
		// A leftover WAL beside the target belongs to the old file and would be replayed into the new one; its
		// search index would be found not to match (another epoch) and built anew, but its texts need not stay.
		for (const suffix of SIDE_FILES) rmSync(`${target}${suffix}`, { force: true });
		// The copy's own index (the store built it while checking the copy) is not moved: the server builds it.
		for (const suffix of SIDE_FILES) rmSync(`${tmp}${suffix}`, { force: true });
		renameSync(tmp, target);
		fsyncDir(dirname(target));
	} catch (e) {
		removeTmp();
		if (e instanceof CommandError) throw e;
		throw new CommandError(`cannot restore ${JSON.stringify(from)}: ${(e as Error).message}`, 1);
	}
	return restored;
}

/**
 * Names the history anew, so every page forgets its seqs and starts the
 * rooms afresh: for a database restored by other means (pg_restore, a file
 * copied by hand). Servers read the epoch at start-up: stop them first.
 */
export async function renewEpoch(db: string): Promise<{ before: string; after: string }> {
	const after = newEpoch();
	if (isPostgresUrl(db)) {
		const sql = new SQL({ url: db, max: 1, connectionTimeout: 5 });
		try {
			const [row] = await sql`SELECT value FROM hubbub_meta WHERE key = 'epoch'`;
			if (!row) throw new CommandError(`${redact(db)} holds no hubbub database`);
			await sql`UPDATE hubbub_meta SET value = ${after} WHERE key = 'epoch'`;
			return { before: row.value as string, after };
		} catch (e) {
			if (e instanceof CommandError) throw e;
			throw new CommandError(`cannot change the epoch of ${redact(db)}: ${(e as Error).message}`, 1);
		} finally {
			await sql.close({ timeout: 1 });
		}
	}
	if (!existsSync(db)) throw new CommandError(`no database at ${JSON.stringify(db)} (give --db)`);
	refuseIfInUse(db);
	const file = new Database(db, { readwrite: true, create: false });
	try {
		const row = file.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'epoch'").get();
		if (!row) throw new CommandError(`${JSON.stringify(db)} is not a hubbub database`);
		file.run("UPDATE meta SET value = ? WHERE key = 'epoch'", [after]);
		return { before: row.value, after };
	} catch (e) {
		if (e instanceof CommandError) throw e;
		throw new CommandError(`${JSON.stringify(db)} is not a hubbub database: ${(e as Error).message}`);
	} finally {
		file.close();
	}
}
