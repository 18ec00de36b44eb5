// `hubbub backup`: a consistent copy of a live database under write load, pruning old copies, PostgreSQL advice.
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Message } from "../protocol.ts";
import { allRows, fillSqlite, hubbub } from "./backup-fixture.ts";
import { chatter, fromSource, spawnServer, tempDir } from "./helpers.ts";

describe("hubbub backup", () => {
	test("under 200 messages/s through the server: the copy opens, passes integrity_check and holds every message acknowledged before it began", async () => {
		using dir = tempDir();
		const db = join(dir.path, "live.db");
		const copy = join(dir.path, "copy.db");
		const s = await spawnServer(fromSource("--db", db, "--send-rate", "500", "--send-burst", "500"));
		try {
			const alice = await chatter(`${s.url.replace("http", "ws")}/ws`, "alice", "general");
			const acked = () =>
				alice.frames.filter((f): f is Message => f.type === "message" && f.from === "alice");
			// 200 messages a second on average, whatever the timers' jitter on a loaded machine.
			let sent = 0;
			let stop = false;
			const t0 = performance.now();
			const load = (async () => {
				while (!stop) {
					const due = Math.floor(((performance.now() - t0) / 1000) * 200);
					for (; sent < due; sent++)
						alice.send({ type: "send", room: "general", id: `m${sent}`, text: `load ${sent}` });
					await Bun.sleep(5);
				}
			})();
			const deadline = Date.now() + 20_000;
			while (acked().length < 300 && Date.now() < deadline) await Bun.sleep(20);
			const before = acked();
			expect(before.length).toBeGreaterThanOrEqual(300);

			const r = await hubbub("backup", "--db", db, copy);
			const ackedDuringBackup = acked().length - before.length;
			await Bun.sleep(300);
			stop = true;
			await load;
			expect(r.stderr).toBe("");
			expect(r.status).toBe(0);
			expect(r.stdout).toMatch(/^backup .*copy\.db: [\d.]+ (KiB|MiB), \d+ messages, [\d.]+ s\n$/);

			const backup = new Database(copy, { readonly: true });
			try {
				expect(backup.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
				const rows = backup
					.query<{ seq: number; text: string }, []>(
						"SELECT seq, text FROM messages WHERE room = 'general' ORDER BY seq",
					)
					.all();
				const stored = new Map(rows.map((m) => [m.seq, m.text]));
				for (const m of before) expect(stored.get(m.seq)).toBe(m.text);
				// A snapshot: seqs 1..N without a hole, whatever N was when the copy began.
				expect(rows.map((m) => m.seq)).toEqual(rows.map((_, i) => i + 1));
				expect(r.stdout).toContain(`, ${rows.length} messages,`);
			} finally {
				backup.close();
			}
			// The server kept taking writes while the copy was made, and nothing went wrong for the writer.
			expect(ackedDuringBackup + (acked().length - before.length)).toBeGreaterThan(0);
			expect(alice.frames.filter((f) => f.type === "error")).toEqual([]);
			expect(existsSync(`${copy}.tmp-${s.proc.pid}`)).toBe(false);
			expect(readdirSync(dir.path).filter((f) => f.includes(".tmp-"))).toEqual([]);
		} finally {
			s.proc.kill("SIGTERM");
			await s.proc.exited;
		}
	}, 60_000);

	test("a folder gets a timestamped copy; --keep N keeps the newest N copies named alike and nothing else is touched", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		await fillSqlite(db, 500);
		const backups = join(dir.path, "backups");
		const { mkdirSync } = await import("node:fs");
		mkdirSync(backups);
		writeFileSync(join(backups, "notes-1.txt"), "keep me");
		const stamped = await hubbub("backup", "--db", db, backups);
		expect(stamped.status).toBe(0);
		const [first] = readdirSync(backups).filter((f) => f.endsWith(".db"));
		expect(first).toMatch(/^hubbub-\d{8}T\d{6}Z\.db$/);

		for (const n of [1, 2, 3, 4]) {
			const r = await hubbub("backup", "--db", db, join(backups, `nightly-${n}.db`), "--keep", "2");
			expect(r.status).toBe(0);
			// Modification times a minute apart, as nightly copies would have.
			const at = new Date(Date.now() - (10 - n) * 60_000);
			utimesSync(join(backups, `nightly-${n}.db`), at, at);
		}
		expect(readdirSync(backups).sort()).toEqual(
			[first as string, "nightly-3.db", "nightly-4.db", "notes-1.txt"].sort(),
		);
		expect(allRows(join(backups, "nightly-4.db"))).toEqual(allRows(db));

		// Folders that do not exist yet are made, for this user only (a trailing slash names a folder).
		const nested = join(dir.path, "new", "nightly");
		const made = await hubbub("backup", "--db", db, `${nested}/`);
		expect(made.status).toBe(0);
		expect(readdirSync(nested)).toEqual([expect.stringMatching(/^hubbub-\d{8}T\d{6}Z\.db$/)]);
		expect(statSync(nested).mode & 0o777).toBe(0o700);
	}, 30_000);

	test("PostgreSQL: prints the pg_dump command to run instead, without the password, and exits 2", async () => {
		using dir = tempDir();
		const r = await hubbub(
			"backup",
			"--db",
			"postgres://hub:s3cret@db.internal:5432/hubbub",
			join(dir.path, "x.dump"),
		);
		expect(r.status).toBe(2);
		expect(r.stderr).toContain("pg_dump --format=custom");
		expect(r.stderr).toContain("postgres://hub:***@db.internal:5432/hubbub");
		expect(r.stderr).toContain("hubbub new-epoch");
		expect(r.stderr).not.toContain("s3cret");
		expect(existsSync(join(dir.path, "x.dump"))).toBe(false);
	});

	test("refuses a missing database, a non-hubbub file and the database itself as the destination", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const missing = await hubbub("backup", "--db", db, join(dir.path, "b.db"));
		expect(missing.status).toBe(2);
		expect(missing.stderr).toContain("no database");
		expect(existsSync(db)).toBe(false);
		await fillSqlite(db, 10);
		const itself = await hubbub("backup", "--db", db, db);
		expect(itself.status).toBe(2);
		expect(itself.stderr).toContain("must not be the database itself");
		const other = join(dir.path, "other.db");
		new Database(other).run("CREATE TABLE t (x)");
		const foreign = await hubbub("backup", "--db", other, join(dir.path, "c.db"));
		expect(foreign.status).toBe(2);
		expect(foreign.stderr).toContain("not a hubbub database");
	});
});

describe("the subcommands", () => {
	test("hubbub --help lists them; a wrong flag or argument count is one clear sentence and exit 2", async () => {
		const help = await hubbub("--help");
		expect(help.status).toBe(0);
		for (const c of ["backup", "restore", "new-epoch", "export", "import"])
			expect(help.stdout).toContain(`hubbub ${c}`);
		const own = await hubbub("backup", "--help");
		expect(own.status).toBe(0);
		expect(own.stdout).toContain("--keep");
		for (const args of [
			["backup"],
			["backup", "a", "b"],
			["restore", "--nope", "x"],
			["export", "--format", "pdf"],
		]) {
			const r = await hubbub(...args);
			expect(r.status).toBe(2);
			expect(r.stderr).toStartWith(`hubbub ${args[0]}: `);
			expect(r.stderr).not.toContain("    at ");
		}
		const keep = await hubbub("backup", "x.db", "--keep", "0");
		expect(keep.status).toBe(2);
		expect(keep.stderr).toContain("--keep must be a whole number of at least 1");
	}, 30_000);
});
