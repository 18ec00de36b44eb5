// `hubbub export` / `hubbub import`: every row survives the round trip (SQLite and PostgreSQL), imports are idempotent and all-or-nothing, exports stream.
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Metrics } from "../lib/metrics.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { openStore } from "../server.ts";
import { allRows, fillSqlite, hubbub, textOf } from "./backup-fixture.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { chatter, startServer, tempDir } from "./helpers.ts";

/** A database with the awkward cases besides the bulk: quotes, newlines, emoji, an id-less guest, a long text. */
async function sample(path: string, total = 3000): Promise<void> {
	await fillSqlite(path, total);
	const db = new Database(path);
	const insert = db.query(
		"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
	);
	insert.run(
		"odd_room-9",
		1,
		"Zoë 🦊",
		"zoë 🦊",
		'id "quoted"',
		'she said "hi"\n\n# not a heading',
		1_700_000_000_123,
	);
	insert.run("odd_room-9", 2, "guest", "guest", null, "x".repeat(4000), 1_700_000_000_124);
	// A gap, as retention could leave: seqs are kept as they are.
	insert.run("odd_room-9", 5, "Bob", "bob", "b5", "after a gap", 1_700_000_000_999);
	db.close();
}

describe("export and import with SQLite", () => {
	test("export → import into a fresh database gives back every row; importing again changes nothing", async () => {
		using dir = tempDir();
		const src = join(dir.path, "src.db");
		await sample(src);
		const file = join(dir.path, "history.jsonl");
		const exported = await hubbub("export", "--db", src, "--out", file);
		expect(exported.status).toBe(0);
		expect(exported.stderr).toBe("exported 3003 messages\n");
		const lines = readFileSync(file, "utf8").trimEnd().split("\n");
		expect(lines).toHaveLength(3003);
		expect(JSON.parse(lines[0] as string)).toEqual({
			room: "odd_room-9",
			seq: 1,
			author: "Zoë 🦊",
			time: "2023-11-14T22:13:20.123Z",
			text: 'she said "hi"\n\n# not a heading',
			id: 'id "quoted"',
		});

		const dest = join(dir.path, "dest.db");
		const first = await hubbub("import", "--db", dest, file);
		expect(first.stderr).toBe("");
		expect(first.status).toBe(0);
		expect(first.stdout).toBe("imported 3003 messages into 4 rooms (0 already there)\n");
		expect(allRows(dest)).toEqual(allRows(src));

		const again = await hubbub("import", "--db", dest, file);
		expect(again.status).toBe(0);
		expect(again.stdout).toBe("imported 0 messages into 4 rooms (3003 already there)\n");
		expect(allRows(dest)).toEqual(allRows(src));

		// The imported database serves on: the next message follows the imported seqs.
		await using s = startServer({ dbPath: dest });
		const alice = await chatter(s.ws, "alice", "odd_room-9");
		alice.send({ type: "send", room: "odd_room-9", id: "next", text: "next" });
		expect((await alice.expect("message")).seq).toBe(6);
		alice.close();
	}, 30_000);

	test("one room only, from standard output, and from standard input back", async () => {
		using dir = tempDir();
		const src = join(dir.path, "src.db");
		await sample(src, 300);
		const r = await hubbub("export", "--db", src, "--room", "room-2");
		expect(r.status).toBe(0);
		const lines = r.stdout.trimEnd().split("\n");
		expect(lines).toHaveLength(100);
		expect(lines.map((l) => JSON.parse(l).seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
		expect(lines.every((l) => JSON.parse(l).room === "room-2")).toBe(true);

		const dest = join(dir.path, "dest.db");
		const proc = Bun.spawn(
			[process.execPath, join(import.meta.dir, "..", "server.ts"), "import", "-", "--db", dest],
			{
				stdin: new TextEncoder().encode(r.stdout),
				stdout: "pipe",
				stderr: "pipe",
			},
		);
		expect(await proc.exited).toBe(0);
		expect(allRows(dest)).toEqual(allRows(src).filter((row) => (row as { room: string }).room === "room-2"));
	});

	test("Markdown: a heading per room, author, time and seq per message, and text that stays text", async () => {
		using dir = tempDir();
		const src = join(dir.path, "src.db");
		await sample(src, 30);
		const r = await hubbub("export", "--db", src, "--format", "markdown");
		expect(r.status).toBe(0);
		const md = r.stdout;
		expect(md.startsWith("# hubbub export\n\n## #odd_room-9\n\n")).toBe(true);
		expect(md).toContain(
			'**Zoë 🦊** · 2023-11-14 22:13:20 UTC · #1\n\n> she said "hi"\n>\n> \\# not a heading\n',
		);
		for (const room of ["room-0", "room-1", "room-2"]) expect(md).toContain(`\n## #${room}\n`);
		// 33 messages, each with its own header line.
		expect(md.match(/^\*\*.+\*\* · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · #\d+$/gm)).toHaveLength(33);
		// textOf(…, 7) holds markup: it must come out escaped, never as live HTML or emphasis.
		expect(md).toContain(`> line two ✓ \\<b\\>\\*not bold\\*\\</b\\>`);
		expect(md).not.toContain("<b>");
		expect(textOf("room-0", 7)).toContain("<b>");
	});

	test("a room that holds other messages is refused (nothing imported) unless --merge, which appends with new seqs", async () => {
		using dir = tempDir();
		const src = join(dir.path, "src.db");
		await fillSqlite(src, 30);
		const file = join(dir.path, "h.jsonl");
		expect((await hubbub("export", "--db", src, "--out", file)).status).toBe(0);

		const dest = join(dir.path, "dest.db");
		{
			await using s = startServer({ dbPath: dest });
			const carol = await chatter(s.ws, "carol", "room-1");
			for (const id of ["c1", "c2"]) carol.send({ type: "send", room: "room-1", id, text: `carol ${id}` });
			await carol.expect("message", (m) => m.seq === 2);
			carol.close();
		}
		const before = allRows(dest);
		const refused = await hubbub("import", "--db", dest, file);
		expect(refused.status).toBe(2);
		expect(refused.stderr).toContain("#room-1 already holds messages (up to seq 2)");
		expect(refused.stderr).toContain("--merge");
		// All or nothing: room-0, which came first in the file, was not imported either.
		expect(allRows(dest)).toEqual(before);

		const merged = await hubbub("import", "--db", dest, file, "--merge");
		expect(merged.status).toBe(0);
		expect(merged.stdout).toBe(
			"imported 30 messages into 3 rooms (0 already there, 10 appended with new seqs)\n",
		);
		const room1 = allRows(dest).filter((r) => (r as { room: string }).room === "room-1") as {
			seq: number;
			text: string;
		}[];
		expect(room1.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
		expect(room1.slice(0, 2).map((r) => r.text)).toEqual(["carol c1", "carol c2"]);
		expect(room1.slice(2).map((r) => r.text)).toEqual(
			Array.from({ length: 10 }, (_, i) => textOf("room-1", i + 1)),
		);
		// Rooms that were empty keep their seqs.
		expect(allRows(dest).filter((r) => (r as { room: string }).room === "room-0")).toEqual(
			allRows(src).filter((r) => (r as { room: string }).room === "room-0"),
		);
	}, 30_000);

	test("a room whose messages retention removed keeps its seqs given: import refuses to reuse them, --merge appends after them", async () => {
		using dir = tempDir();
		const src = join(dir.path, "src.db");
		await fillSqlite(src, 30);
		const file = join(dir.path, "h.jsonl");
		expect((await hubbub("export", "--db", src, "--room", "room-1", "--out", file)).status).toBe(0);
		const dest = join(dir.path, "dest.db");
		const store = new SqliteStore(dest);
		for (const id of ["c1", "c2"]) await store.append({ room: "room-1", from: "carol", id, text: id, ts: 1 });
		expect(await store.prune({ maxAgeMs: 1 }, Date.now())).toBe(2);
		await store.close();
		expect(allRows(dest)).toEqual([]);

		const refused = await hubbub("import", "--db", dest, file);
		expect(refused.status).toBe(2);
		expect(refused.stderr).toContain("#room-1 had messages (up to seq 2, since removed)");
		const merged = await hubbub("import", "--db", dest, file, "--merge");
		expect(merged.status).toBe(0);
		expect((allRows(dest) as { seq: number }[]).map((r) => r.seq)).toEqual(
			Array.from({ length: 10 }, (_, i) => i + 3),
		);
	});

	test.each([
		["not JSON", "{nope", /line 2 .* is not JSON/],
		[
			"a line without an author",
			'{"room":"general","seq":2,"time":"2026-01-01T00:00:00.000Z","text":"x"}',
			/line 2 .*author/,
		],
		[
			"a bad room name",
			'{"room":"General Chat","seq":2,"author":"a","time":"2026-01-01T00:00:00.000Z","text":"x"}',
			/line 2 .*room/,
		],
		[
			"a seq given twice with other text",
			'{"room":"general","seq":1,"author":"a","time":"2026-01-01T00:00:00.000Z","text":"other"}',
			/already holds another message as seq 1/,
		],
	])(
		"a bad file (%s) is refused with exit 2 and the line, and nothing is imported",
		async (_what, line, message) => {
			using dir = tempDir();
			const file = join(dir.path, "bad.jsonl");
			writeFileSync(
				file,
				`{"room":"general","seq":1,"author":"a","time":"2026-01-01T00:00:00.000Z","text":"fine"}\n${line}\n`,
			);
			const dest = join(dir.path, "dest.db");
			const r = await hubbub("import", "--db", dest, file);
			expect(r.status).toBe(2);
			expect(r.stderr).toMatch(message);
			expect(allRows(dest)).toEqual([]);
		},
	);

	test("a 1,000,000-message export streams in under 100 MiB of memory", async () => {
		using dir = tempDir();
		const src = join(dir.path, "big.db");
		await fillSqlite(src, 1_000_000);
		const out = join(dir.path, "big.jsonl");
		const proc = Bun.spawn(
			[process.execPath, join(import.meta.dir, "..", "server.ts"), "export", "--db", src, "--out", out],
			{
				stdout: "pipe",
				stderr: "pipe",
			},
		);
		// The kernel's high-water mark of resident memory, read until the process is gone.
		let peakKiB = 0;
		while (proc.exitCode === null) {
			try {
				const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"));
				if (hwm) peakKiB = Math.max(peakKiB, Number(hwm[1]));
			} catch {
				// exited between the check and the read
			}
			await Bun.sleep(20);
		}
		expect(await proc.exited).toBe(0);
		expect(await new Response(proc.stderr).text()).toBe("exported 1000000 messages\n");
		expect(peakKiB).toBeGreaterThan(0);
		expect(peakKiB / 1024).toBeLessThan(100);
		const { size } = Bun.file(out);
		expect(size).toBeGreaterThan(100 * 1024 * 1024);
	}, 240_000);
});

describe("export and import with PostgreSQL", () => {
	let pg: Postgres;
	beforeAll(async () => {
		pg = await startPostgres();
	}, 60_000);
	afterAll(() => pg?.[Symbol.dispose]());

	test("SQLite → JSON Lines → PostgreSQL → JSON Lines gives the same file; importing again changes nothing; seqs go on from there", async () => {
		using dir = tempDir();
		const src = join(dir.path, "src.db");
		await sample(src, 5000);
		const fromSqlite = join(dir.path, "a.jsonl");
		expect((await hubbub("export", "--db", src, "--out", fromSqlite)).status).toBe(0);

		const url = await pg.database();
		const first = await hubbub("import", "--db", url, fromSqlite);
		expect(first.stderr).toBe("");
		expect(first.stdout).toBe("imported 5003 messages into 4 rooms (0 already there)\n");
		const again = await hubbub("import", "--db", url, fromSqlite);
		expect(again.stdout).toBe("imported 0 messages into 4 rooms (5003 already there)\n");

		const fromPostgres = join(dir.path, "b.jsonl");
		const exported = await hubbub("export", "--db", url, "--out", fromPostgres);
		expect(exported.status).toBe(0);
		expect(readFileSync(fromPostgres, "utf8")).toBe(readFileSync(fromSqlite, "utf8"));

		const metrics = new Metrics();
		await using s = startServer({ store: await openStore(url, metrics), metrics, config: { db: url } });
		const alice = await chatter(s.ws, "alice", "room-0");
		alice.send({ type: "send", room: "room-0", id: "next", text: "next" });
		expect((await alice.expect("message")).seq).toBe(1668);
		// An id the file holds for this author is already stored: the store answers with the imported message.
		alice.close();
	}, 60_000);

	test("PostgreSQL restore and backup point at pg_dump/pg_restore; new-epoch changes the epoch", async () => {
		const url = await pg.database();
		const metrics = new Metrics();
		const store = await openStore(url, metrics);
		const before = store.epoch;
		await store.close();
		const r = await hubbub("new-epoch", "--db", url);
		expect(r.status).toBe(0);
		const reopened = await openStore(url, metrics);
		expect(reopened.epoch).not.toBe(before);
		expect(r.stdout).toContain(`epoch ${before} → ${reopened.epoch}`);
		await reopened.close();
		const restore = await hubbub("restore", "--db", url, "x.dump");
		expect(restore.status).toBe(2);
		expect(restore.stderr).toContain("pg_restore --clean --if-exists --no-owner --single-transaction");
	});
});
