// Storage bounds (issue 10, finding 4): a daily quota per name and per-room retention, against SQLite and PostgreSQL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Metrics } from "../lib/metrics.ts";
import { QuotaExceeded, type QuotaOptions, type Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { openStore } from "../server.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { chatter, startServer, tempDir } from "./helpers.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

interface Backend {
	fresh(): Promise<{ open(options?: QuotaOptions): Promise<Store>; [Symbol.asyncDispose](): Promise<void> }>;
}

const backends: [string, Backend][] = [
	[
		"sqlite",
		{
			async fresh() {
				const dir = tempDir("hubbub-storage-");
				const path = join(dir.path, "store.db");
				return {
					open: async (options) => new SqliteStore(path, options),
					[Symbol.asyncDispose]: async () => dir[Symbol.dispose](),
				};
			},
		},
	],
	[
		"postgres",
		{
			async fresh() {
				const url = await pg.database();
				return { open: (options) => PostgresStore.open(url, options), [Symbol.asyncDispose]: async () => {} };
			},
		},
	],
];

const DAY = 86_400_000;
const msg = (room: string, from: string, text: string, ts = Date.now(), id?: string) => ({
	room,
	from,
	text,
	ts,
	id,
});
const seqs = (p: { messages: { seq: number }[] }) => p.messages.map((m) => m.seq);

describe.each(backends)("%s", (_, backend) => {
	test("the daily quota per name: refused sends store nothing and take no seq; look-alike names share it; a new day starts afresh", async () => {
		await using h = await backend.fresh();
		const store = await h.open({ dailyQuota: 100 });
		const now = Date.UTC(2026, 10, 26, 12);
		expect((await store.append(msg("r", "alice", "a".repeat(60), now, "a1"))).message.seq).toBe(1);
		await expect(store.append(msg("r", "alice", "b".repeat(60), now, "a2"))).rejects.toBeInstanceOf(
			QuotaExceeded,
		);
		// The same person under a look-alike name (Cyrillic а) or another case is refused too.
		await expect(store.append(msg("r", "\u0430lice", "c".repeat(50), now))).rejects.toBeInstanceOf(
			QuotaExceeded,
		);
		await expect(store.append(msg("r", "ALICE", "c".repeat(50), now))).rejects.toBeInstanceOf(QuotaExceeded);
		// A repeat of a stored id costs nothing; what fits still goes in.
		expect(await store.append(msg("r", "alice", "a".repeat(60), now, "a1"))).toMatchObject({
			created: false,
		});
		expect((await store.append(msg("r", "alice", "d".repeat(40), now))).message.seq).toBe(2);
		// Others are not touched, and seqs stayed gap-free.
		expect((await store.append(msg("r", "bob", "e".repeat(100), now))).message.seq).toBe(3);
		// Within one batch: the ones that fit are stored, the rest refused, each alone.
		const batch = await Promise.allSettled(
			["x", "y", "z"].map((t) => store.append(msg("r", "carol", t.repeat(40), now))),
		);
		expect(batch.map((b) => b.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
		expect(seqs(await store.latest("r", 10))).toEqual([1, 2, 3, 4, 5]);
		// Tomorrow (UTC) the quota is new.
		expect((await store.append(msg("r", "alice", "f".repeat(100), now + DAY))).message.seq).toBe(6);
		await store.close();
	});

	test("a name's spent quota outlives a restart of the store", async () => {
		await using h = await backend.fresh();
		const now = Date.UTC(2026, 10, 26, 12);
		const first = await h.open({ dailyQuota: 100 });
		await first.append(msg("r", "alice", "a".repeat(60), now));
		await first.close();
		const again = await h.open({ dailyQuota: 100 });
		await expect(again.append(msg("r", "alice", "b".repeat(60), now))).rejects.toBeInstanceOf(QuotaExceeded);
		expect((await again.append(msg("r", "alice", "c".repeat(40), now))).message.seq).toBe(2);
		await again.close();
	});

	test("two handles on one history (two processes) share a name's quota", async () => {
		await using h = await backend.fresh();
		const now = Date.UTC(2026, 10, 26, 12);
		const a = await h.open({ dailyQuota: 100 });
		const b = await h.open({ dailyQuota: 100 });
		// b has counted alice's day before a charges her: what b knew of it is out of date afterwards.
		await b.append(msg("r", "alice", "a".repeat(10), now));
		await a.append(msg("r", "alice", "b".repeat(60), now));
		await a.close();
		await expect(b.append(msg("r", "alice", "c".repeat(40), now))).rejects.toBeInstanceOf(QuotaExceeded);
		expect((await b.append(msg("r", "alice", "d".repeat(30), now))).message.seq).toBe(3);
		await b.close();
	});

	test("retention by count removes the oldest as one prefix: reads start at the floor, a resume from before it says `more`, seqs go on", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		for (let i = 1; i <= 25; i++) await store.append(msg("r", "alice", `m${i}`));
		await store.append(msg("small", "alice", "only one"));
		expect(await store.prune({ keep: 10 })).toBe(15);
		expect(await store.prune({ keep: 10 })).toBe(0);
		const latest = await store.latest("r", 50);
		expect(seqs(latest)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
		// Nothing older can be fetched: history ends at the floor.
		expect(latest.more).toBe(false);
		expect(await store.before("r", 16, 50)).toEqual({ messages: [], more: false });
		// A client that last saw seq 3 missed removed messages: it is told, as when it missed more than a page.
		const resumed = await store.since("r", 3, 1000);
		expect(seqs(resumed)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
		expect(resumed.more).toBe(true);
		const current = await store.since("r", 20, 1000);
		expect(current).toMatchObject({ more: false });
		expect(seqs(current)).toEqual([21, 22, 23, 24, 25]);
		expect(await store.since("r", 15, 1000)).toMatchObject({ more: false });
		expect((await store.append(msg("r", "bob", "after"))).message.seq).toBe(26);
		expect(seqs(await store.latest("small", 5))).toEqual([1]);
		await store.close();
	});

	test("retention by age can empty a room; its seqs are still never given again, also by another handle after a restart", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		const now = Date.now();
		for (let i = 1; i <= 5; i++) await store.append(msg("r", "alice", `old${i}`, now - 10 * DAY));
		for (let i = 1; i <= 3; i++) await store.append(msg("mixed", "alice", `old${i}`, now - 10 * DAY));
		for (let i = 1; i <= 2; i++) await store.append(msg("mixed", "alice", `new${i}`, now));
		expect(await store.prune({ maxAgeMs: 7 * DAY }, now)).toBe(8);
		expect(await store.latest("r", 10)).toEqual({ messages: [], more: false });
		expect((await store.latest("mixed", 10)).messages.map((m) => m.text)).toEqual(["new1", "new2"]);
		expect(await store.since("r", 0, 10)).toEqual({ messages: [], more: true });
		await store.close();
		const again = await h.open();
		expect((await again.append(msg("r", "bob", "back"))).message.seq).toBe(6);
		expect((await again.append(msg("mixed", "bob", "on"))).message.seq).toBe(6);
		await again.close();
	});

	test("a large first prune goes in steps, each resolving with how many it removed", async () => {
		await using h = await backend.fresh();
		const store = await h.open();
		await Promise.all(Array.from({ length: 6000 }, (_, i) => store.append(msg("big", "alice", `m${i}`))));
		expect(await store.prune({ keep: 100 })).toBe(5000);
		expect(await store.prune({ keep: 100 })).toBe(900);
		expect(seqs(await store.latest("big", 1000))[0]).toBe(5901);
		await store.close();
	}, 60_000);
});

describe("over the wire", () => {
	test("a page's joins of many rooms at once, on PostgreSQL's slower reads, are all answered in order (soak F3)", async () => {
		const url = await pg.database();
		const metrics = new Metrics();
		await using s = startServer({ store: await openStore(url, metrics), metrics, config: { db: url } });
		const page = await chatter(s.ws, "alice");
		const rooms = Array.from({ length: 50 }, (_, i) => `room${i}`);
		for (const room of rooms) page.send({ type: "join", room, since: 0 });
		for (const room of rooms) await page.expect("joined", (j) => j.room === room, 15_000);
		expect(page.frames.filter((f) => f.type === "error")).toEqual([]);
		// One more than --max-rooms is refused, naming the room.
		page.send({ type: "join", room: "one-too-many" });
		expect(await page.expect("error")).toMatchObject({ code: "too_many_rooms", room: "one-too-many" });
	}, 30_000);

	test("a send past the name's daily quota gets quota_exceeded with its ref, and the room goes on", async () => {
		await using s = startServer({ config: { quotaPerDay: 1024 } });
		const a = await chatter(s.ws, "alice", "general");
		a.send({ type: "send", room: "general", id: "big", text: "x".repeat(1000) });
		expect(await a.expect("message")).toMatchObject({ id: "big", seq: 1 });
		a.send({ type: "send", room: "general", id: "over", text: "y".repeat(100) });
		expect(await a.expect("error")).toMatchObject({ code: "quota_exceeded", ref: "over" });
		const b = await chatter(s.ws, "bob", "general");
		b.send({ type: "send", room: "general", text: "mine is fine" });
		expect(await a.expect("message")).toMatchObject({ from: "bob", seq: 2 });
	});

	test("one address taking a fresh name and room for each connection shares one daily quota (--address-quota-per-day)", async () => {
		await using s = startServer({ config: { addressQuotaPerDay: 2048 } });
		const a = await chatter(s.ws, "alice", "room-a");
		a.send({ type: "send", room: "room-a", id: "a1", text: "x".repeat(1500) });
		expect(await a.expect("message")).toMatchObject({ id: "a1", seq: 1 });
		// Another name in another room, from the same address: the per-name quota would let it through.
		const b = await chatter(s.ws, "bob", "room-b");
		b.send({ type: "send", room: "room-b", id: "b1", text: "y".repeat(1000) });
		expect(await b.expect("error")).toMatchObject({ code: "quota_exceeded", ref: "b1", room: "room-b" });
		b.send({ type: "history", room: "room-b" });
		expect((await b.expect("history")).messages).toEqual([]);
		// What is left of the quota still goes through.
		b.send({ type: "send", room: "room-b", id: "b2", text: "short" });
		expect(await b.expect("message")).toMatchObject({ id: "b2", seq: 1 });
	});

	test("the server prunes by --keep-messages on its own; a resume from before the floor says `more`", async () => {
		await using s = startServer({ config: { keepMessages: 5 } });
		const a = await chatter(s.ws, "alice", "general");
		for (let i = 0; i < 12; i++) {
			a.send({ type: "send", room: "general", id: `m${i}`, text: `m${i}` });
			await a.expect("message", (m) => m.id === `m${i}`);
		}
		// The first round runs within 5 s of start.
		const deadline = Date.now() + 15_000;
		for (;;) {
			const page = await s.hub.store.latest("general", 50);
			if (page.messages.length === 5) break;
			if (Date.now() > deadline) throw new Error(`not pruned: ${page.messages.length} messages`);
			await Bun.sleep(200);
		}
		const b = await chatter(s.ws, "bob");
		const joined = await b.join("general", 2);
		expect(joined.messages.map((m) => m.seq)).toEqual([8, 9, 10, 11, 12]);
		expect(joined.more).toBe(true);
		const metrics = await (await fetch(`${s.url}/metrics`)).text();
		expect(metrics).toContain("hubbub_messages_pruned_total 7");
	}, 30_000);
});
