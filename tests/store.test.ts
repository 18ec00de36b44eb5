// The Store contract, run against every implementation: SQLite and PostgreSQL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { tempDir } from "./helpers.ts";

interface Backend {
	/** A fresh, empty history, and a way to open another handle (another process's) on it. */
	fresh(): Promise<{ open(): Promise<Store>; [Symbol.asyncDispose](): Promise<void> }>;
}

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

const backends: [string, Backend][] = [
	[
		"sqlite",
		{
			async fresh() {
				const dir = tempDir("hubbub-store-");
				const path = join(dir.path, "store.db");
				return {
					open: async () => new SqliteStore(path),
					[Symbol.asyncDispose]: async () => dir[Symbol.dispose](),
				};
			},
		},
	],
	[
		"postgres",
		{
			async fresh() {
				// A database of its own for each test, in the one cluster this file started.
				const url = await pg.database();
				return { open: () => PostgresStore.open(url), [Symbol.asyncDispose]: async () => {} };
			},
		},
	],
];

const msg = (room: string, from: string, text: string, id?: string) => ({
	room,
	from,
	text,
	id,
	ts: Date.now(),
});

describe.each(backends)("%s store", (_, backend) => {
	test("seq starts at 1 per room and has no gaps; appends resolve in seq order", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		const order: string[] = [];
		const results = await Promise.all(
			Array.from({ length: 30 }, (_, i) =>
				store.append(msg(i % 2 ? "a" : "b", "alice", `t${i}`)).then((r) => {
					order.push(`${r.message.room}${r.message.seq}`);
					return r;
				}),
			),
		);
		expect(
			results
				.filter((r) => r.message.room === "a")
				.map((r) => r.message.seq)
				.sort((x, y) => x - y),
		).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
		expect(results.every((r) => r.created)).toBe(true);
		const seqA = order.filter((o) => o.startsWith("a")).map((o) => Number(o.slice(1)));
		expect(seqA).toEqual([...seqA].sort((x, y) => x - y));
		await store.close();
	});

	test("a repeated (room, sender, id) stores nothing and returns the stored message; sender compared case-insensitively", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		const first = await store.append(msg("r", "Alice", "hello", "x1"));
		const again = await store.append(msg("r", "alice", "changed text", "x1"));
		expect(again).toEqual({ message: first.message, created: false });
		expect((await store.append(msg("r", "bob", "hello", "x1"))).message.seq).toBe(2);
		expect((await store.append(msg("s", "alice", "hello", "x1"))).message.seq).toBe(1);
		const [dupA, dupB] = await Promise.all([
			store.append(msg("r", "carol", "same tick", "y")),
			store.append(msg("r", "carol", "same tick", "y")),
		]);
		expect(dupA.message).toEqual(dupB.message);
		// Exactly one of two simultaneous sends of one id is stored (which one is up to the store).
		expect([dupA.created, dupB.created].sort()).toEqual([false, true]);
		expect((await store.latest("r", 50)).messages.map((m) => m.seq)).toEqual([1, 2, 3]);
		await store.close();
	});

	test("latest, since, after and before page ascending with the right `more`", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		for (let i = 1; i <= 25; i++) await store.append(msg("r", "alice", `m${i}`));
		const latest = await store.latest("r", 10);
		expect(latest.messages.map((m) => m.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
		expect(latest.more).toBe(true);
		expect((await store.latest("r", 25)).more).toBe(false);
		const since = await store.since("r", 20, 10);
		expect(since).toMatchObject({ more: false });
		expect(since.messages.map((m) => m.text)).toEqual(["m21", "m22", "m23", "m24", "m25"]);
		const sinceOver = await store.since("r", 5, 10);
		expect(sinceOver.messages.map((m) => m.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
		expect(sinceOver.more).toBe(true);
		const before = await store.before("r", 6, 3);
		expect(before.messages.map((m) => m.seq)).toEqual([3, 4, 5]);
		expect(before.more).toBe(true);
		expect((await store.before("r", 3, 3)).more).toBe(false);
		expect(await store.latest("empty", 10)).toEqual({ messages: [], more: false });
		const after = await store.after("r", 5, 10);
		expect(after.messages.map((m) => m.seq)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
		expect(after.more).toBe(true);
		const tail = await store.after("r", 20, 10);
		expect(tail.messages.map((m) => m.text)).toEqual(["m21", "m22", "m23", "m24", "m25"]);
		expect(tail.more).toBe(false);
		expect((await store.after("r", 15, 10)).more).toBe(false);
		expect(await store.after("r", 25, 10)).toEqual({ messages: [], more: false });
		await store.close();
	});

	test("the epoch and every message survive reopening; a new store has a new epoch", async () => {
		await using h = await backend.fresh();
		const first = await h.open();
		const stored = await first.append(msg("r", "alice", "kept", "k"));
		const epoch = first.epoch;
		await first.close();
		const second = await h.open();
		expect(second.epoch).toBe(epoch);
		expect((await second.latest("r", 10)).messages).toEqual([stored.message]);
		await second.close();
		await using other = await backend.fresh();
		const third = await other.open();
		expect(third.epoch).not.toBe(epoch);
		await third.close();
	});

	test("the database's id is the same from every handle and after reopening, and differs between databases", async () => {
		await using h = await backend.fresh();
		const [one, two] = await Promise.all([h.open(), h.open()]);
		expect(one.id).toMatch(/^[a-z0-9]{8}$/);
		expect(two.id).toBe(one.id);
		await one.close();
		await two.close();
		const again = await h.open();
		expect(again.id).toBe(one.id);
		await again.close();
		await using other = await backend.fresh();
		const elsewhere = await other.open();
		expect(elsewhere.id).not.toBe(one.id);
		await elsewhere.close();
	});

	test("two handles on one history (two processes) keep seq gap-free and unique", async () => {
		await using h = await backend.fresh();
		const a = await h.open();
		const b = await h.open();
		const all = await Promise.all(
			Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).append(msg("shared", `u${i % 2}`, `t${i}`))),
		);
		expect(all.map((r) => r.message.seq).sort((x, y) => x - y)).toEqual(
			Array.from({ length: 200 }, (_, i) => i + 1),
		);
		await a.close();
		await b.close();
	});

	test("close commits appends still queued", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		const pending = store.append(msg("r", "alice", "last words"));
		await store.close();
		expect((await pending).created).toBe(true);
		const reopened = await h.open();
		expect((await reopened.latest("r", 5)).messages.map((m) => m.text)).toEqual(["last words"]);
		expect(await reopened.probe()).toBeUndefined();
		await reopened.close();
	});
});
