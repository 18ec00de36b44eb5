// hubbub as a process: flags and their errors, and history that survives a SIGKILL.
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client, chatter, fromSource, ROOT, spawnServer, tempDir } from "./helpers.ts";

const BUN = process.execPath;
const SERVER = join(ROOT, "server.ts");

async function run(args: string[], env: Record<string, string> = {}) {
	const proc = Bun.spawn([BUN, SERVER, ...args], {
		cwd: ROOT,
		env: { ...process.env, ...env },
		stdout: "pipe",
		stderr: "pipe",
	});
	const [stdout, stderr, status] = await Promise.all([
		new Response(proc.stdout).text(),
		new Response(proc.stderr).text(),
		proc.exited,
	]);
	return { stdout, stderr, status };
}

describe("flags", () => {
	test("--help lists every flag and exits 0", async () => {
		const r = await run(["--help"]);
		expect(r.status).toBe(0);
		for (const flag of ["--port", "--host", "--db", "--origin", "--log-level", "--help", "--version"]) {
			expect(r.stdout).toContain(flag);
		}
	});

	test("--version prints the version and exits 0", async () => {
		const r = await run(["--version"]);
		expect(r.status).toBe(0);
		expect(r.stdout).toMatch(/^hubbub \d+\.\d+\.\d+/);
	});

	test.each([
		[["--bogus"], {}, "bogus"],
		[["--port", "abc"], {}, "--port"],
		[["--port", "70000"], {}, "--port"],
		[[], { PORT: "http" }, "PORT"],
		[["--log-level", "loud"], {}, "--log-level"],
		[["--origin", "evil"], {}, "--origin"],
		[["stray"], {}, "stray"],
	])("%p %p: a clear message and exit status 2", async (args, env, mention) => {
		const r = await run(args, env as Record<string, string>);
		expect(r.status).toBe(2);
		expect(r.stderr).toContain(mention);
		expect(r.stderr.split("\n").length).toBeLessThan(5);
		expect(r.stderr).not.toContain("    at ");
	});

	test("a database that cannot be opened: a clear message and exit status 2", async () => {
		using dir = tempDir();
		const garbage = join(dir.path, "garbage.db");
		writeFileSync(
			garbage,
			"this is not a database, just text that is long enough to have a header".repeat(20),
		);
		const notDb = await run(["--port", "0", "--db", garbage]);
		expect(notDb.status).toBe(2);
		expect(notDb.stderr).toContain("cannot open database");
	});

	test("a port in use: a clear message and exit status 2", async () => {
		using dir = tempDir();
		const first = await spawnServer(fromSource("--db", ":memory:"));
		try {
			const second = await run([
				"--port",
				String(first.port),
				"--host",
				"127.0.0.1",
				"--db",
				join(dir.path, "b.db"),
			]);
			expect(second.status).toBe(2);
			expect(second.stderr).toContain("already in use");
		} finally {
			first.proc.kill();
		}
	});

	test("PORT and HOST come from the environment when no flag is given", async () => {
		using dir = tempDir();
		const s = await spawnServer([BUN, SERVER, "--db", join(dir.path, "h.db")], {
			env: { PORT: "0", HOST: "127.0.0.1" },
		});
		try {
			expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
			expect(s.logs.find((l) => l.event === "listening")?.url).toBe(`http://127.0.0.1:${s.port}`);
		} finally {
			s.proc.kill();
		}
	});
});

describe("durability", () => {
	test("after SIGKILL, a new server on the same file has every acknowledged message, the same epoch, and continues the seq", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const args = fromSource("--db", db);
		const first = await spawnServer(args);
		const a = await chatter(`ws://127.0.0.1:${first.port}/ws`, "alice", "general");
		const epoch = (a.frames[0] as { epoch: string }).epoch;
		const acked: unknown[] = [];
		for (let i = 1; i <= 15; i++) {
			a.send({ type: "send", room: "general", id: `m${i}`, text: `before crash ${i}` });
			acked.push(await a.expect("message"));
		}
		first.proc.kill("SIGKILL");
		await first.proc.exited;

		const second = await spawnServer(args);
		try {
			const b = await Client.connect(`ws://127.0.0.1:${second.port}/ws`);
			expect((await b.hello("bob")) as unknown).toMatchObject({ type: "welcome", epoch });
			const joined = await b.join("general", 0);
			expect(joined.messages).toEqual(acked as typeof joined.messages);
			b.send({ type: "send", room: "general", text: "after restart" });
			expect(await b.expect("message")).toMatchObject({ seq: 16, text: "after restart" });
		} finally {
			second.proc.kill();
		}

		const other = await spawnServer(fromSource("--db", join(dir.path, "new.db")));
		try {
			const c = await Client.connect(`ws://127.0.0.1:${other.port}/ws`);
			const welcome = await c.hello("carol");
			expect(welcome.type).toBe("welcome");
			expect(welcome.epoch).not.toBe(epoch);
		} finally {
			other.proc.kill();
		}
	});

	test("the database is in WAL mode and records each message once", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const s = await spawnServer(fromSource("--db", db));
		try {
			const a = await chatter(`ws://127.0.0.1:${s.port}/ws`, "alice", "general");
			a.send({ type: "send", room: "general", id: "x", text: "once" });
			a.send({ type: "send", room: "general", id: "x", text: "once" });
			await a.expect("message");
			await a.expect("message");
			const check = new Database(db, { readonly: true });
			expect(check.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
			expect(check.query("SELECT count(*) AS n FROM messages").get()).toEqual({ n: 1 });
			check.close();
		} finally {
			s.proc.kill();
		}
	});
});
