// The `search` frame through a real server and real sockets: results, paging, refs, errors and its rate.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import type { ServerFrameOf } from "../protocol.ts";
import { startPostgres } from "./engines.ts";
import { Client, chatter, startServer, tempDir } from "./helpers.ts";

type Results = ServerFrameOf<"search">;

async function search(c: Client, frame: Record<string, unknown>): Promise<Results> {
	const ref = `s${Math.random().toString(36).slice(2)}`;
	c.send({ type: "search", ref, ...frame });
	const answer = await c.next(
		(f) => (f.type === "search" || f.type === "error") && f.ref === ref,
		10_000,
		true,
	);
	if (answer.type !== "search") throw new Error(`search answered ${JSON.stringify(answer)}`);
	return answer;
}

describe("search frame", () => {
	test("finds messages in every room, without joining them, newest first, with highlights and the ref", async () => {
		await using s = startServer();
		const alice = await chatter(s.ws, "alice", "dev");
		await alice.join("ops");
		for (const [room, text] of [
			["dev", "デプロイ完了しました"],
			["ops", "see ERR_SOCKET_TIMEOUT in the log"],
			["dev", "another デプロイ today"],
		] as const) {
			alice.send({ type: "send", room, text });
			await alice.expect("message", (m) => m.text === text);
		}
		const bob = await chatter(s.ws, "bob");
		const ja = await search(bob, { query: "デプロイ" });
		expect(ja.hits.map((h) => [h.room, h.seq, h.from, h.snippet])).toEqual([
			["dev", 2, "alice", "another デプロイ today"],
			["dev", 1, "alice", "デプロイ完了しました"],
		]);
		expect(ja.hits[0]?.highlights).toEqual([[8, 12]]);
		expect(ja.cursor).toBeUndefined();
		const code = await search(bob, { query: "err_socket", room: "ops", from: "ALICE" });
		expect(code.hits.map((h) => h.snippet)).toEqual(["see ERR_SOCKET_TIMEOUT in the log"]);
		expect((await search(bob, { query: "デプロイ", room: "ops" })).hits).toEqual([]);
	});

	test("an answer that could not wait for the newest messages to be indexed says so with behind (a busy SQLite server)", async () => {
		using dir = tempDir("hubbub-search-behind-ws-");
		// The event loop reads as busy (indexing waits) and a search may not wait at all.
		const store = new SqliteStore(join(dir.path, "b.db"), {
			loopLoad: () => 1,
			indexMaxLagMs: 60_000,
			searchWaitMs: 0,
		});
		await using s = startServer({ store });
		const alice = await chatter(s.ws, "alice", "dev");
		alice.send({ type: "send", room: "dev", text: "the plum deploy" });
		await alice.expect("message", (m) => m.text === "the plum deploy");
		const first = await search(alice, { query: "plum" });
		expect(first.behind).toBe(true);
		await store.settled();
		const again = await search(alice, { query: "plum" });
		expect(again.behind).toBeUndefined();
		expect(again.hits.map((h) => h.snippet)).toEqual(["the plum deploy"]);
	});

	test("pages through many hits with the cursor", async () => {
		await using s = startServer();
		for (let i = 0; i < 30; i++)
			await s.hub.store.append({ room: "r", from: "bob", text: `row ${i}`, ts: Date.now() });
		const alice = await chatter(s.ws, "alice");
		const seen: number[] = [];
		let cursor: string | undefined;
		do {
			const page = await search(
				alice,
				cursor ? { query: "row", limit: 7, cursor } : { query: "row", limit: 7 },
			);
			seen.push(...page.hits.map((h) => h.seq));
			cursor = page.cursor;
		} while (cursor);
		expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => 30 - i));
	});

	test("needs hello; a bad query or cursor is bad_frame with the ref; the connection stays usable", async () => {
		await using s = startServer();
		const c = await Client.connect(s.ws);
		c.send({ type: "search", query: "x" });
		expect(await c.next()).toMatchObject({ type: "error", code: "not_identified" });
		await c.hello("carol");
		c.send({ type: "search", ref: "q1", query: "" });
		expect(await c.next()).toMatchObject({ type: "error", code: "bad_frame", ref: "q1" });
		c.send({ type: "search", ref: "q2", query: "x".repeat(201) });
		expect(await c.next()).toMatchObject({ type: "error", code: "bad_frame" });
		c.send({ type: "search", ref: "q4", query: "abc\0def" });
		expect(await c.next()).toMatchObject({ type: "error", code: "bad_frame", ref: "q4" });
		c.send({ type: "search", ref: "q5", query: "hello", from: "al\0ice" });
		expect(await c.next()).toMatchObject({ type: "error", code: "bad_frame", ref: "q5" });
		c.send({ type: "search", ref: "q3", query: "hello", cursor: "not-a-cursor" });
		expect(await c.next()).toMatchObject({ type: "error", code: "bad_frame", ref: "q3" });
		expect((await search(c, { query: "hello" })).hits).toEqual([]);
	});

	test("a burst of searches is rate limited per connection (with each refusal's ref), and others are not slowed", async () => {
		await using s = startServer();
		const flooder = await chatter(s.ws, "flood");
		const calm = await chatter(s.ws, "calm");
		for (let i = 0; i < 40; i++) flooder.send({ type: "search", ref: `f${i}`, query: `word${i}` });
		const answers = [];
		for (let i = 0; i < 40; i++)
			answers.push(await flooder.next((f) => f.type === "search" || f.type === "error", 10_000, true));
		const limited = answers.filter((a) => a.type === "error" && a.code === "rate_limited");
		expect(limited.length).toBeGreaterThan(20);
		expect(limited.every((a) => a.type === "error" && a.ref?.startsWith("f"))).toBe(true);
		expect(flooder.isOpen).toBe(true);
		expect((await search(calm, { query: "anything" })).hits).toEqual([]);
	});
});

describe("history around a search result", () => {
	/** Stores `n` messages in `room` straight through the hub's store (no send rate in the way). */
	async function fill(
		s: { hub: { store: { append: (m: never) => Promise<unknown> } } },
		room: string,
		n: number,
		text = (i: number) => `m${i}`,
	) {
		for (let i = 1; i <= n; i++)
			await s.hub.store.append({ room, from: "bob", text: text(i), ts: Date.now() } as never);
	}
	const seqs = (f: ServerFrameOf<"history">) => f.messages.map((m) => m.seq);
	const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

	test("around seq N, then forward with after until the live end: no gap and no repeat with the joined room", async () => {
		await using s = startServer();
		await fill(s, "r", 100);
		const alice = await chatter(s.ws, "alice");
		const joined = await alice.join("r");
		expect(joined.messages.map((m) => m.seq)).toEqual(range(51, 100));
		alice.send({ type: "history", room: "r", around: 20, limit: 10 });
		const context = await alice.expect("history");
		expect(seqs(context)).toEqual(range(16, 25));
		expect(context).toMatchObject({ more: true, newer: true });
		const held = new Set(seqs(context));
		let last = 25;
		for (;;) {
			alice.send({ type: "history", room: "r", after: last, limit: 20 });
			const page = await alice.expect("history");
			for (const seq of seqs(page)) {
				expect(held.has(seq)).toBe(false);
				held.add(seq);
			}
			last = page.messages.at(-1)?.seq ?? last;
			if (!page.newer || joined.messages.some((m) => m.seq === last)) break;
		}
		// Live: the next message arrives as usual, after everything the pages brought.
		const bob = await chatter(s.ws, "bob", "r");
		bob.send({ type: "send", room: "r", text: "live one" });
		expect((await alice.expect("message", (m) => m.text === "live one")).seq).toBe(101);
		for (const m of joined.messages) held.add(m.seq);
		expect([...held].sort((a, b) => a - b)).toEqual(range(16, 100));
		alice.send({ type: "history", room: "r", after: 101 });
		expect(await alice.expect("history")).toMatchObject({ messages: [], newer: false });
	});

	test("at the ends of the room, and cut to the reply's byte bound around the asked message", async () => {
		await using s = startServer({ config: { maxBuffer: 64 * 1024 } });
		await fill(s, "r", 60, (i) => `${i} ${"x".repeat(3990)}`);
		const alice = await chatter(s.ws, "alice", "r");
		alice.send({ type: "history", room: "r", around: 1, limit: 6 });
		const first = await alice.expect("history");
		expect(seqs(first)).toEqual([1, 2, 3, 4]);
		expect(first).toMatchObject({ more: false, newer: true });
		alice.send({ type: "history", room: "r", around: 30, limit: 200 });
		const cut = await alice.expect("history");
		expect(seqs(cut)).toContain(30);
		expect(cut.messages.length).toBeLessThan(10);
		expect(cut).toMatchObject({ more: true, newer: true });
		alice.send({ type: "history", room: "r", around: 3, before: 9 });
		expect(await alice.expect("error")).toMatchObject({ code: "bad_frame" });
	});
});

describe("two processes on one store", () => {
	test.each(["sqlite", "postgres"])(
		"%s: what is sent through one process is found by a search on the other",
		async (engine) => {
			using dir = tempDir("hubbub-search-two-");
			await using pg = engine === "postgres" ? await startPostgresDisposable() : undefined;
			const db = pg ? await pg.database() : join(dir.path, "shared.db");
			// PostgreSQL: each process its own handle (as two hosts would have); SQLite: the one file.
			const open = async () => (pg ? { store: await PostgresStore.open(db) } : { dbPath: db });
			await using one = startServer(await open());
			await using two = startServer(await open());
			const alice = await chatter(one.ws, "alice", "dev");
			alice.send({ type: "send", room: "dev", id: "x", text: "rollout of ERR_SOCKET_TIMEOUT fix" });
			await alice.expect("message", (m) => m.id === "x");
			const bob = await chatter(two.ws, "bob");
			const found = await search(bob, { query: "socket_timeout fix" });
			expect(found.hits.map((h) => [h.room, h.from, h.snippet])).toEqual([
				["dev", "alice", "rollout of ERR_SOCKET_TIMEOUT fix"],
			]);
		},
		60_000,
	);
});

async function startPostgresDisposable() {
	const pg = await startPostgres();
	return { database: () => pg.database(), [Symbol.asyncDispose]: async () => pg[Symbol.dispose]() };
}
