// Consistent copies of a live SQLite database, and pruning of old copies; PostgreSQL is pointed at its own tools.
import { Database } from "bun:sqlite";
import {
	closeSync,
	existsSync,
	fsyncSync,
	mkdirSync,
	openSync,
	readdirSync,
	realpathSync,
	renameSync,
	rmSync,
	statSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CommandError } from "./command-error.ts";
import { redact } from "./store-postgres.ts";

export interface Copy {
	file: string;
	bytes: number;
	messages: number;
	ms: number;
}

/** `hubbub-20261126T031500Z.db`: sorts by time, and `--keep` recognises its siblings. */
export function timestampedName(now = new Date()): string {
	return `hubbub-${now
		.toISOString()
		.replace(/[-:]/g, "")
		.replace(/\.\d+Z$/, "Z")}.db`;
}

/** Makes a file's rename durable: the directory entry itself is flushed. */
export function fsyncDir(dir: string): void {
	const fd = openSync(dir, "r");
	try {
		fsyncSync(fd);
	} finally {
		closeSync(fd);
	}
}

export function fsyncFile(file: string): void {
	const fd = openSync(file, "r+");
	try {
		fsyncSync(fd);
	} finally {
		closeSync(fd);
	}
}

/**
 * Copies the SQLite database `db` to `dest` (a file, or a folder that gets a
 * timestamped file). `VACUUM INTO` reads one snapshot inside a read
 * transaction, so the copy is consistent while the server keeps writing (WAL
 * readers do not block writers). The copy is written under a temporary name,
 * checked (`PRAGMA quick_check`), flushed, then renamed: a crash never leaves
 * a half copy under `dest`.
 */
export function backupSqlite(db: string, dest: string): Copy {
	const t0 = performance.now();
	if (db === ":memory:") throw new CommandError("an in-memory database (--db :memory:) cannot be backed up");
	if (!existsSync(db)) throw new CommandError(`no database at ${JSON.stringify(db)} (give --db)`);
	let file = resolve(dest);
	// Missing folders are made, readable by this user only: a backup holds every conversation.
	const makeFolder = (dir: string) => {
		try {
			mkdirSync(dir, { recursive: true, mode: 0o700 });
		} catch (e) {
			throw new CommandError(`cannot make the folder ${JSON.stringify(dir)}: ${(e as Error).message}`);
		}
	};
	if (dest.endsWith("/")) makeFolder(file);
	if (existsSync(file) && statSync(file).isDirectory()) file = join(file, timestampedName());
	makeFolder(dirname(file));
	if (existsSync(file) && realpathSync(file) === realpathSync(db))
		throw new CommandError("the backup must not be the database itself");
	const tmp = `${file}.tmp-${process.pid}`;
	let source: Database;
	try {
		// Read-write (though it writes nothing): when no server has the file open, closing this last connection
		// removes the -wal and -shm it made, rather than leaving files owned by whoever ran the backup.
		source = new Database(db, { readwrite: true, create: false });
	} catch (e) {
		throw new CommandError(`cannot open ${JSON.stringify(db)}: ${(e as Error).message}`);
	}
	try {
		// A writer holding the lock only delays the snapshot's start; it never blocks a WAL reader for long.
		source.run("PRAGMA busy_timeout = 10000");
		const isHubbub = source
			.query<{ n: number }, []>(
				"SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name IN ('meta', 'messages')",
			)
			.get();
		if (isHubbub?.n !== 2) throw new CommandError(`${JSON.stringify(db)} is not a hubbub database`);
		rmSync(tmp, { force: true });
		source.run("VACUUM INTO ?", [tmp]);
	} catch (e) {
		rmSync(tmp, { force: true });
		if (e instanceof CommandError) throw e;
		throw new CommandError(`cannot copy ${JSON.stringify(db)}: ${(e as Error).message}`, 1);
	} finally {
		source.close();
	}
	let messages: number;
	try {
		const copy = new Database(tmp, { readonly: true });
		try {
			// A copy that would not restore is no backup: check its structure before it takes the name.
			const check = copy.query<{ quick_check: string }, []>("PRAGMA quick_check").all();
			if (check.length !== 1 || check[0]?.quick_check !== "ok")
				throw new Error(`the copy fails its check: ${check.map((r) => r.quick_check).join("; ")}`);
			messages = copy.query<{ n: number }, []>("SELECT count(*) AS n FROM messages").get()?.n ?? 0;
		} finally {
			copy.close();
		}
		// VACUUM INTO does not sync what it wrote; the rename must not outrun the data.
		fsyncFile(tmp);
		renameSync(tmp, file);
		fsyncDir(dirname(file));
	} catch (e) {
		rmSync(tmp, { force: true });
		throw new CommandError(`cannot finish the copy ${JSON.stringify(file)}: ${(e as Error).message}`, 1);
	}
	return { file, bytes: statSync(file).size, messages, ms: performance.now() - t0 };
}

/**
 * Keeps the newest `keep` copies named like `file` in its folder (the same
 * name with other digits: `hubbub-20261126T031500Z.db` matches
 * `hubbub-20261125T031500Z.db`), newest by modification time, and removes
 * the rest. `file` itself is always kept. Returns what it removed.
 */
export function pruneCopies(file: string, keep: number): string[] {
	const dir = dirname(file);
	const escaped = basename(file)
		.split(/\d+/)
		.map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
		.join("\\d+");
	const sibling = new RegExp(`^${escaped}$`);
	const copies = readdirSync(dir)
		.filter((name) => sibling.test(name))
		.map((name) => join(dir, name))
		.filter((path) => statSync(path).isFile())
		.map((path) => ({ path, mtime: path === file ? Number.POSITIVE_INFINITY : statSync(path).mtimeMs }))
		.sort((a, b) => b.mtime - a.mtime);
	const removed: string[] = [];
	for (const old of copies.slice(keep)) {
		rmSync(old.path, { force: true });
		removed.push(old.path);
	}
	return removed;
}

/** What to run instead for PostgreSQL, whose own tools take consistent copies. */
export function pgDumpAdvice(url: string, file: string, what: "backup" | "restore" = "backup"): string {
	const shown = `'${redact(url)}'`;
	const dump = `pg_dump --format=custom --no-owner --table='hubbub_*' --file='${file}' ${shown}`;
	const restore = `pg_restore --clean --if-exists --no-owner --single-transaction --dbname=${shown} '${file}'`;
	const epoch = `hubbub new-epoch --db ${shown}`;
	const note = "(give the password through PGPASSWORD or ~/.pgpass, not in the URL)";
	return what === "backup"
		? `hubbub does not copy a PostgreSQL database itself; pg_dump takes a consistent copy while hubbub runs:\n  ${dump}\n${note}\nTo restore it later, with every hubbub process stopped:\n  ${restore}\n  ${epoch}`
		: `hubbub does not restore a PostgreSQL database itself; with every hubbub process stopped, run:\n  ${restore}\n  ${epoch}\n${note}`;
}
