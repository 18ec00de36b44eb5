// `hubbub restore`: only a sound hubbub database is put in place, under a new epoch, so a page that held later seqs starts afresh.
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type Change, Chat } from "../client/chat.ts";
import { Accounts } from "../lib/accounts.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { allRows, fillSqlite, hubbub } from "./backup-fixture.ts";
import { Client, chatter, fromSource, spawnServer, startServer, tempDir } from "./helpers.ts";
import { until } from "./until.ts";

class MemoryStorage {
	private readonly items = new Map<string, string>();
	getItem(key: string): string | null {
		return this.items.get(key) ?? null;
	}
	setItem(key: string, value: string): void {
		this.items.set(key, value);
	}
}

let chats: Chat[] = [];
afterEach(() => {
	for (const c of chats) c.close();
	chats = [];
});

function meta(path: string): Map<string, string> {
	const db = new Database(path, { readonly: true });
	try {
		return new Map(
			db
				.query<{ key: string; value: string }, []>("SELECT key, value FROM meta")
				.all()
				.map((r) => [r.key, r.value]),
		);
	} finally {
		db.close();
	}
}

/** What a page showed: every message it drew, and the notices it gave. */
function watch(chat: Chat) {
	const drawn: { seq: number; text: string }[] = [];
	const notices: string[] = [];
	chat.on((c: Change) => {
		if (c.kind === "message") drawn.push({ seq: c.message.seq, text: c.message.text });
		if (c.kind === "room")
			for (const m of chat.room(c.room).messages) drawn.push({ seq: m.seq, text: m.text });
		if (c.kind === "system") notices.push(c.text);
	});
	return { drawn, notices };
}

/**
 * A server on `db` where bob says "kept 1..3", a backup is taken into `copy`,
 * then "lost 4..6"; alice's page (and a raw client) hold seqs up to 6.
 */
async function historyBeyondBackup(db: string, copy: string) {
	const first = startServer({ dbPath: db });
	const port = first.server.port as number;
	const chat = new Chat({ url: first.ws, storage: new MemoryStorage(), delay: () => 100 });
	chats.push(chat);
	const seen = watch(chat);
	chat.name = "alice";
	chat.open("general");
	chat.connect();
	await until(() => chat.room("general").joined);
	const bob = await chatter(first.ws, "bob", "general");
	const say = async (text: string) => {
		bob.send({ type: "send", room: "general", id: text.replace(" ", "-"), text });
		await bob.expect("message", (m) => m.text === text);
	};
	for (const n of [1, 2, 3]) await say(`kept ${n}`);
	const backup = await hubbub("backup", "--db", db, copy);
	expect(backup.status).toBe(0);
	for (const n of [4, 5, 6]) await say(`lost ${n}`);
	await until(() => chat.room("general").messages.length === 6);
	const epoch = chat.epoch as string;
	bob.close();
	await first.stop();
	return { port, chat, seen, epoch };
}

describe("hubbub restore", () => {
	test("a page that held seqs beyond the backup sees the new epoch and starts the room afresh: no seq shown twice or with another text", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const copy = join(dir.path, "backup.db");
		const { port, chat, seen, epoch } = await historyBeyondBackup(db, copy);

		const r = await hubbub("restore", "--db", db, copy);
		expect(r.stderr).toBe("");
		expect(r.status).toBe(0);
		expect(r.stdout).toMatch(/restored .*backup\.db as .*hubbub\.db: schema \d+, 3 messages, new epoch \w+/);
		expect(r.stdout).toContain("kept as");
		expect(allRows(db)).toEqual(allRows(copy));
		const restoredEpoch = meta(db).get("epoch");
		expect(restoredEpoch).not.toBe(epoch);
		expect(restoredEpoch).not.toBe(meta(copy).get("epoch"));
		// The replaced database is kept, whole, beside it.
		const previous = readdirSync(dir.path).find((f) => f.startsWith("hubbub.db.pre-restore-"));
		expect(previous).toBeDefined();
		expect(allRows(join(dir.path, previous as string))).toHaveLength(6);

		await using second = startServer({ dbPath: db, config: { port } });
		const drawnBefore = seen.drawn.length;
		await until(() => chat.status.kind === "connected" && chat.epoch === restoredEpoch);
		await until(() => chat.room("general").joined);
		const carol = await chatter(second.ws, "carol", "general");
		carol.send({ type: "send", room: "general", id: "c1", text: "after restore" });
		await until(() => chat.room("general").messages.some((m) => m.text === "after restore"));

		expect(chat.room("general").messages.map((m) => [m.seq, m.text])).toEqual([
			[1, "kept 1"],
			[2, "kept 2"],
			[3, "kept 3"],
			[4, "after restore"],
		]);
		expect(seen.notices).toContain("The server's history was replaced; showing it afresh.");
		// Since the restart, the page drew no message of the lost past.
		expect(seen.drawn.slice(drawnBefore).filter((m) => m.text.startsWith("lost"))).toEqual([]);
		carol.send({ type: "history", room: "general" });
		expect((await carol.expect("history")).messages.map((m) => [m.seq, m.text])).toEqual(
			chat.room("general").messages.map((m) => [m.seq, m.text]),
		);
	}, 60_000);

	test("refuses while a server has the database open, and succeeds once it has stopped", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const copy = join(dir.path, "backup.db");
		await fillSqlite(db, 100);
		copyFileSync(db, copy);
		const s = await spawnServer(fromSource("--db", db));
		try {
			const r = await hubbub("restore", "--db", db, copy);
			expect(r.status).toBe(2);
			expect(r.stderr).toContain("in use by a running hubbub");
			// The running server is unharmed.
			const c = await chatter(`${s.url.replace("http", "ws")}/ws`, "alice", "room-0");
			c.send({ type: "send", room: "room-0", id: "x", text: "still here" });
			expect((await c.expect("message")).seq).toBe(35);
			c.close();
		} finally {
			s.proc.kill("SIGTERM");
			await s.proc.exited;
		}
		const r = await hubbub("restore", "--db", db, copy);
		expect(r.status).toBe(0);
		expect(allRows(db)).toEqual(allRows(copy));
	}, 30_000);

	test("restores into a folder that has no database yet", async () => {
		using dir = tempDir();
		const copy = join(dir.path, "backup.db");
		await fillSqlite(copy, 50);
		const db = join(dir.path, "new.db");
		const r = await hubbub("restore", "--db", db, copy);
		expect(r.status).toBe(0);
		expect(r.stdout).not.toContain("kept as");
		expect(allRows(db)).toEqual(allRows(copy));
		await using s = startServer({ dbPath: db });
		const c = await chatter(s.ws, "alice");
		const joined = await c.join("room-1");
		// fillSqlite deals 50 messages round-robin over 3 rooms: room-1 gets 17.
		expect(joined.messages.at(-1)?.seq).toBe(17);
		c.close();
	});

	test("a backup from an older hubbub (schema 1) is migrated as the server would, its history and epoch rules kept", async () => {
		using dir = tempDir();
		const old = join(dir.path, "v1.db");
		// The schema the first hubbub made, as it wrote it.
		const v1 = new Database(old);
		v1.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
		v1.run(`CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, sender TEXT NOT NULL,
			sender_key TEXT NOT NULL, client_id TEXT, text TEXT NOT NULL, ts INTEGER NOT NULL,
			PRIMARY KEY (room, seq)) WITHOUT ROWID`);
		v1.run(
			"CREATE UNIQUE INDEX messages_client_id ON messages (room, sender_key, client_id) WHERE client_id IS NOT NULL",
		);
		v1.run("INSERT INTO meta (key, value) VALUES ('epoch', 'oldepoch'), ('schema', '1')");
		v1.run("INSERT INTO messages VALUES ('general', 1, 'Ann', 'ann', 'a1', 'from long ago', 1600000000000)");
		v1.close();
		// What this hubbub's store calls current: a fresh database says.
		const fresh = join(dir.path, "fresh.db");
		await new SqliteStore(fresh).close();
		const current = meta(fresh).get("schema");

		const db = join(dir.path, "hubbub.db");
		const r = await hubbub("restore", "--db", db, old);
		expect(r.stderr).toBe("");
		expect(r.status).toBe(0);
		expect(r.stdout).toContain(`schema ${current}, 1 messages`);
		expect(meta(db).get("schema")).toBe(current);
		expect(meta(db).get("epoch")).not.toBe("oldepoch");
		expect(meta(old).get("schema")).toBe("1");
		await using s = startServer({ dbPath: db });
		const c = await chatter(s.ws, "ann");
		expect((await c.join("general")).messages.map((m) => [m.seq, m.text])).toEqual([[1, "from long ago"]]);
		c.send({ type: "send", room: "general", id: "a2", text: "and now" });
		expect((await c.expect("message")).seq).toBe(2);
		c.close();
	});

	test("with accounts: the restored database keeps the accounts, signs everyone out and voids reset links", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const copy = join(dir.path, "backup.db");
		await fillSqlite(db, 10);
		const before = await Accounts.open(db);
		const client = { address: "127.0.0.1", userAgent: "test" };
		const signed = await before.setup("alice", "correct horse battery", client);
		const reset = await before.resetLink("alice");
		expect(await before.authenticate(signed.token)).toBeDefined();
		await before.close();
		expect((await hubbub("backup", "--db", db, copy)).status).toBe(0);

		const r = await hubbub("restore", "--db", db, copy);
		expect(r.status).toBe(0);
		expect(r.stdout).toContain("1 sign-in sessions ended: everyone signs in again");
		const after = await Accounts.open(db);
		try {
			expect(await after.authenticate(signed.token)).toBeUndefined();
			expect(await after.resetName(reset.code)).toBeUndefined();
			expect((await after.byName("alice"))?.role).toBe("admin");
			expect((await after.signin("alice", "correct horse battery", client)).account.name).toBe("alice");
		} finally {
			await after.close();
		}

		// Account tables from a newer hubbub are refused like the messages' own.
		const newer = new Database(copy);
		newer.run("UPDATE hubbub_account_meta SET value = '999' WHERE key = 'schema'");
		newer.close();
		const refused = await hubbub("restore", "--db", db, copy);
		expect(refused.status).toBe(2);
		expect(refused.stderr).toContain("account schema version 999 is newer than this hubbub understands");
	}, 30_000);

	describe("a file that is not a sound hubbub database is refused with exit 2 and the database is left as it was", () => {
		const cases: [string, (path: string) => Promise<void> | void, RegExp][] = [
			[
				"a text file",
				(p) => writeFileSync(p, "hello, this is not a database\n".repeat(200)),
				/not a readable SQLite database/,
			],
			[
				"random bytes",
				(p) => writeFileSync(p, crypto.getRandomValues(new Uint8Array(64 * 1024))),
				/not a readable SQLite database/,
			],
			[
				"another program's SQLite database",
				(p) => {
					const other = new Database(p);
					other.run("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)");
					other.close();
				},
				/not a hubbub one/,
			],
			[
				"a hubbub backup damaged in the middle",
				async (p) => {
					await fillSqlite(p, 20_000);
					const fd = openSync(p, "r+");
					writeSync(fd, new Uint8Array(4096 * 8).fill(0xab), 0, 4096 * 8, 4096 * 20);
				},
				/is corrupt/,
			],
			[
				"a hubbub database from a newer hubbub",
				async (p) => {
					await fillSqlite(p, 10);
					const newer = new Database(p);
					newer.run("UPDATE meta SET value = '999' WHERE key = 'schema'");
					newer.close();
				},
				/schema version 999 is newer than this hubbub understands/,
			],
			["a file that does not exist", () => {}, /no file at/],
		];
		test.each(cases)("%s", async (_what, make, message) => {
			using dir = tempDir();
			const db = join(dir.path, "hubbub.db");
			await fillSqlite(db, 30);
			const before = allRows(db);
			const epoch = meta(db).get("epoch");
			const bad = join(dir.path, "suspect.db");
			await make(bad);
			// (This test's own read-only looks at hubbub.db leave its -wal and -shm.)
			const listing = () =>
				readdirSync(dir.path)
					.filter((f) => !f.startsWith("hubbub.db-"))
					.sort();
			const files = listing();
			const r = await hubbub("restore", "--db", db, bad);
			expect(r.status).toBe(2);
			expect(r.stderr).toMatch(message);
			expect(r.stderr).toContain("suspect.db");
			expect(r.stderr.trim().split("\n")).toHaveLength(1);
			expect(r.stdout).toBe("");
			expect(allRows(db)).toEqual(before);
			expect(meta(db).get("epoch")).toBe(epoch);
			// Nothing left behind: no copy, no index of one.
			expect(listing()).toEqual(files);
			expect(files).toContain(existsSync(bad) ? "suspect.db" : "hubbub.db");
		});
	});
});

/**
 * The operator's `cp` of an older file over the database (no WAL of the newer
 * one beside it), then a server on it: the epoch stays the same.
 */
async function handCopied() {
	const dir = tempDir();
	const db = join(dir.path, "hubbub.db");
	const copy = join(dir.path, "backup.db");
	const before = await historyBeyondBackup(db, copy);
	copyFileSync(copy, db);
	rmSync(`${db}-wal`, { force: true });
	rmSync(`${db}-shm`, { force: true });
	const server = startServer({ dbPath: db, config: { port: before.port } });
	return {
		...before,
		server,
		async [Symbol.asyncDispose]() {
			await server.stop();
			dir[Symbol.dispose]();
		},
	};
}

describe("an older file copied by hand (no restore, so the same epoch)", () => {
	test("a client resuming beyond the room's last seq is told to start afresh (joined.reset), then gets the reused seq as new", async () => {
		await using run = await handCopied();
		// A client that held seqs 1..6 resumes, as the protocol says.
		const alice2 = await Client.connect(run.server.ws);
		const welcome = await alice2.hello("alice2");
		expect(welcome.type === "welcome" && welcome.epoch).toBe(run.epoch);
		const joined = (await alice2.join("general", 6)) as {
			reset?: boolean;
			messages: { seq: number; text: string }[];
		};
		expect(joined.reset).toBe(true);
		expect(joined.messages.map((m) => [m.seq, m.text])).toEqual([
			[1, "kept 1"],
			[2, "kept 2"],
			[3, "kept 3"],
		]);
		// A client resuming within the room's history gets no reset.
		const bob2 = await Client.connect(run.server.ws);
		await bob2.hello("bob2");
		const within = (await bob2.join("general", 2)) as { reset?: boolean; messages: { seq: number }[] };
		expect(within.reset).toBeUndefined();
		expect(within.messages.map((m) => m.seq)).toEqual([3]);

		const carol = await chatter(run.server.ws, "carol", "general");
		carol.send({ type: "send", room: "general", id: "c1", text: "after the copy" });
		const fresh = await alice2.expect("message");
		expect([fresh.seq, fresh.text]).toEqual([4, "after the copy"]);
	}, 60_000);

	test("a page that held seqs beyond the copied file drops them and shows the reused seq as the new message it is", async () => {
		await using run = await handCopied();
		const { chat, seen } = run;
		// Until the page has resumed on the new server (its old connection's close may not have arrived yet).
		await until(() => chat.status.kind === "connected" && chat.room("general").messages.length <= 3);
		expect(chat.epoch).toBe(run.epoch);
		expect(chat.room("general").messages.map((m) => m.text)).toEqual(["kept 1", "kept 2", "kept 3"]);
		const drawnBefore = seen.drawn.length;
		const carol = await chatter(run.server.ws, "carol", "general");
		carol.send({ type: "send", room: "general", id: "c1", text: "after the copy" });
		await until(() => chat.room("general").messages.some((m) => m.text === "after the copy"));
		expect(chat.room("general").messages.map((m) => [m.seq, m.text])).toEqual([
			[1, "kept 1"],
			[2, "kept 2"],
			[3, "kept 3"],
			[4, "after the copy"],
		]);
		expect(seen.drawn.slice(drawnBefore).filter((m) => m.text.startsWith("lost"))).toEqual([]);
	}, 60_000);
});
