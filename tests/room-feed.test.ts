// The room feed against a fake store: every subscriber gets one gap-free, duplicate-free seq run, whatever the bus and the store do.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { FEED_DEFAULTS, type FeedOptions, RoomFeed } from "../lib/room-feed.ts";
import type { Page } from "../lib/store.ts";
import type { Message } from "../protocol.ts";
import { until } from "./until.ts";

const ROOM = "r";

function message(seq: number): Message {
	return { type: "message", room: ROOM, seq, from: "alice", text: `m${seq}`, ts: seq };
}

/**
 * One room's committed log. Reads see the log as it is when they are made and
 * answer when the test releases them (or at once in `auto` mode), so a test
 * decides how reads interleave with the bus; a read may be told to fail.
 */
class FakeStore {
	readonly log: Message[] = [];
	auto = true;
	failNext = 0;
	reads = 0;
	private readonly pending: (() => void)[] = [];

	commit(): Message {
		const m = message(this.log.length + 1);
		this.log.push(m);
		return m;
	}

	get top(): number {
		return this.log.length;
	}

	private answer<T>(value: T): Promise<T> {
		this.reads++;
		const fail = this.failNext > 0;
		if (fail) this.failNext--;
		return new Promise<T>((resolve, reject) => {
			const settle = () => (fail ? reject(new Error("store unreachable")) : resolve(value));
			if (this.auto) queueMicrotask(settle);
			else this.pending.push(settle);
		});
	}

	/** Answers the `i`-th waiting read (modulo how many wait); false if none waits. */
	release(i: number): boolean {
		if (this.pending.length === 0) return false;
		const [settle] = this.pending.splice(i % this.pending.length, 1);
		settle?.();
		return true;
	}

	releaseAll(): void {
		while (this.release(0));
	}

	after(_room: string, after: number, limit: number): Promise<Page> {
		const rest = this.log.filter((m) => m.seq > after);
		return this.answer({ messages: rest.slice(0, limit), more: rest.length > limit });
	}

	latest(limit: number): Promise<Page> {
		return this.answer({ messages: this.log.slice(-limit), more: this.log.length > limit });
	}

	since(since: number): Promise<Page> {
		return this.answer({ messages: this.log.filter((m) => m.seq > since), more: false });
	}
}

interface Events {
	errors: Error[];
	lost: string[];
}

function feedOptions(events: Events, overrides: Partial<FeedOptions> = {}): FeedOptions {
	return {
		...FEED_DEFAULTS,
		retryMinMs: 1,
		retryMaxMs: 4,
		onRead: () => {},
		onError: (_room, error) => events.errors.push(error),
		onLost: (_room, reason) => events.lost.push(reason),
		...overrides,
	};
}

/** A room on one process: the feed, its subscribers, and joins that line up with it the way the hub's do. */
function harness(store: FakeStore, overrides: Partial<FeedOptions> = {}) {
	const events: Events = { errors: [], lost: [] };
	const subscribers: number[][] = [];
	/** The `since` each subscriber joined with (undefined: the latest). */
	const sinces: (number | undefined)[] = [];
	const feed = new RoomFeed(
		ROOM,
		store,
		(m) => {
			for (const s of subscribers) s.push(m.seq);
		},
		feedOptions(events, overrides),
	);
	/** Joins like hub.join: a subscriber's run starts with what its read returned. */
	const join = (since?: number) =>
		feed.align(
			async () => {
				const page = since === undefined ? await store.latest(50) : await store.since(since);
				return { top: page.messages.at(-1)?.seq ?? since ?? 0, value: page };
			},
			(page, caught) => {
				const run = [...page.messages, ...caught].map((m) => m.seq);
				subscribers.push(run);
				sinces.push(since);
				return run;
			},
		);
	return { feed, events, subscribers, sinces, join };
}

function expectRun(run: number[], first: number, last: number): void {
	expect(run).toEqual(Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i));
}

describe("room feed", () => {
	test("in order, repeated and out-of-order deliveries: each message once, in seq order", async () => {
		const store = new FakeStore();
		const { feed, subscribers, join } = harness(store);
		await join();
		const ms = Array.from({ length: 6 }, () => store.commit());
		for (const i of [0, 0, 2, 1, 1, 4, 3, 5, 2]) feed.deliver(ms[i] as Message);
		await until(() => subscribers[0]?.length === 6);
		expectRun(subscribers[0] as number[], 1, 6);
	});

	test("far behind: pages forward through the store until caught up, skipping nothing", async () => {
		const store = new FakeStore();
		const { feed, subscribers, join } = harness(store, { pageSize: 100 });
		await join();
		let last: Message | undefined;
		for (let i = 0; i < 2500; i++) last = store.commit();
		// The bus lost all but the newest.
		feed.deliver(last as Message);
		await until(() => subscribers[0]?.length === 2500);
		expectRun(subscribers[0] as number[], 1, 2500);
		expect(store.reads).toBeGreaterThanOrEqual(25);
	});

	test("a read that fails is retried with backoff and reported; nothing is skipped", async () => {
		const store = new FakeStore();
		const { feed, events, subscribers, join } = harness(store);
		await join();
		const ms = [store.commit(), store.commit(), store.commit()];
		store.failNext = 3;
		feed.deliver(ms[2] as Message);
		await until(() => subscribers[0]?.length === 3);
		expectRun(subscribers[0] as number[], 1, 3);
		expect(events.errors).toHaveLength(3);
		expect(events.lost).toEqual([]);
	});

	test("a join whose read the stream overtook gets what was emitted meanwhile, without reading again", async () => {
		const store = new FakeStore();
		const { feed, subscribers, join } = harness(store);
		await join();
		store.auto = false;
		const reads = store.reads;
		const joining = join();
		for (let i = 0; i < 3; i++) feed.deliver(store.commit());
		store.releaseAll();
		expectRun(await joining, 1, 3);
		expect(store.reads).toBe(reads + 1);
		feed.deliver(store.commit());
		expectRun(subscribers[1] as number[], 1, 4);
	});

	test("a join overtaken by more than the feed keeps reads again and still lines up", async () => {
		const store = new FakeStore();
		const { feed, subscribers, join } = harness(store);
		await join();
		store.auto = false;
		const joining = join(0);
		for (let i = 0; i < 600; i++) feed.deliver(store.commit());
		store.releaseAll();
		store.auto = true;
		expectRun(await joining, 1, 600);
		feed.deliver(store.commit());
		expectRun(subscribers[1] as number[], 1, 601);
		expectRun(subscribers[0] as number[], 1, 601);
	});

	test("catchUp reads what the bus lost at the end of a stream (no later message tells of the gap)", async () => {
		const store = new FakeStore();
		const { feed, subscribers, join } = harness(store);
		await join();
		feed.deliver(store.commit());
		store.commit();
		store.commit();
		feed.catchUp();
		await until(() => subscribers[0]?.length === 3);
		expectRun(subscribers[0] as number[], 1, 3);
	});

	test("a store unreachable past the bound: the feed gives up loudly, forgets its head, and starts again on the next join", async () => {
		const store = new FakeStore();
		const { feed, events, subscribers, join } = harness(store, { giveUpMs: 30 });
		await join();
		store.commit();
		store.failNext = 1_000_000;
		feed.deliver(store.commit());
		await until(() => events.lost.length === 1);
		expect(events.lost[0]).toContain("could not be read");
		expect(feed.head).toBeUndefined();
		expect(subscribers[0]).toEqual([]);
		// Nothing is emitted while it has no head: a message now would be a gap.
		feed.deliver(store.commit());
		expect(subscribers[0]).toEqual([]);
		store.failNext = 0;
		expectRun(await join(2), 3, 3);
		feed.deliver(store.commit());
		expectRun(subscribers[1] as number[], 3, 4);
	});

	test("messages removed by retention while the feed was behind: it gives up at once rather than skip them", async () => {
		const store = new FakeStore();
		const { feed, events, subscribers, join } = harness(store);
		await join();
		for (let i = 0; i < 10; i++) store.commit();
		store.log.splice(0, 5); // seqs 1-5 pruned
		feed.deliver(store.log.at(-1) as Message);
		await until(() => events.lost.length === 1);
		expect(events.lost[0]).toContain("seqs 1-5 were removed");
		expect(subscribers[0]).toEqual([]);
	});

	test("too many messages waiting ahead of a gap: the feed gives up instead of growing without bound", async () => {
		const store = new FakeStore();
		const { feed, events, join } = harness(store, { maxAhead: 5 });
		await join();
		store.auto = false;
		store.commit();
		for (let i = 0; i < 10; i++) feed.deliver(store.commit());
		expect(events.lost).toHaveLength(1);
		store.releaseAll();
	});

	test("a join whose read fails rejects, and the feed goes on for the others", async () => {
		const store = new FakeStore();
		const { feed, subscribers, join } = harness(store);
		await join();
		store.failNext = 1;
		await expect(join()).rejects.toThrow("store unreachable");
		await Bun.sleep(5);
		feed.deliver(store.commit());
		expectRun(subscribers[0] as number[], 1, 1);
		expect(subscribers).toHaveLength(1);
	});

	type Step =
		| { kind: "commit"; fate: "deliver" | "hold" | "drop" | "twice" }
		| { kind: "flush"; pick: number }
		| { kind: "join"; since: number | null }
		| { kind: "release"; pick: number }
		| { kind: "fail"; reads: number }
		| { kind: "tick" };

	const step: fc.Arbitrary<Step> = fc.oneof(
		{
			weight: 6,
			arbitrary: fc.record({
				kind: fc.constant("commit" as const),
				fate: fc.constantFrom("deliver" as const, "hold" as const, "drop" as const, "twice" as const),
			}),
		},
		{ weight: 3, arbitrary: fc.record({ kind: fc.constant("flush" as const), pick: fc.nat(50) }) },
		{ weight: 1, arbitrary: fc.record({ kind: fc.constant("join" as const), since: fc.option(fc.nat(60)) }) },
		{ weight: 3, arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat(10) }) },
		{
			weight: 1,
			arbitrary: fc.record({ kind: fc.constant("fail" as const), reads: fc.integer({ min: 1, max: 4 }) }),
		},
		{ weight: 1, arbitrary: fc.constant({ kind: "tick" as const }) },
	);

	test("randomized: lost, repeated and reordered bus deliveries, joins mid-stream, failing reads; every run is gap-free and complete", async () => {
		await fc.assert(
			fc.asyncProperty(
				fc.array(step, { maxLength: 120 }),
				fc.integer({ min: 1, max: 5 }),
				async (steps, pageSize) => {
					const store = new FakeStore();
					store.auto = false;
					const h = harness(store, { pageSize, giveUpMs: 60_000 });
					const held: Message[] = [];
					const joins: Promise<unknown>[] = [];
					// The first subscriber joins before anything is said.
					joins.push(h.join().catch(() => {}));
					store.releaseAll();
					await Bun.sleep(0);
					for (const s of steps) {
						if (s.kind === "commit") {
							const m = store.commit();
							if (s.fate === "deliver") h.feed.deliver(m);
							else if (s.fate === "hold") held.push(m);
							else if (s.fate === "twice") {
								h.feed.deliver(m);
								held.push(m);
							}
						} else if (s.kind === "flush" && held.length > 0) {
							const [m] = held.splice(s.pick % held.length, 1);
							h.feed.deliver(m as Message);
						} else if (s.kind === "join") {
							const since = s.since === null ? undefined : Math.min(s.since, store.top);
							joins.push(h.join(since).catch(() => {}));
						} else if (s.kind === "release") {
							store.release(s.pick);
						} else if (s.kind === "fail") {
							store.failNext += s.reads;
						} else if (s.kind === "tick") {
							await Bun.sleep(1);
						}
						await Promise.resolve();
					}
					// The faults end: the store answers, the bus delivers what it held and reconnects (catchUp).
					store.failNext = 0;
					store.auto = true;
					store.releaseAll();
					for (const m of held) h.feed.deliver(m);
					await Promise.all(joins);
					h.feed.catchUp();
					const last = (i: number) => h.subscribers[i]?.at(-1) ?? h.sinces[i] ?? 0;
					await until(() => h.subscribers.every((_, i) => last(i) === store.top), 5000);
					for (const [i, run] of h.subscribers.entries()) {
						const since = h.sinces[i];
						expectRun(run, since === undefined ? (run[0] ?? 1) : since + 1, store.top);
					}
					expect(h.events.lost).toEqual([]);
				},
			),
			{ numRuns: 1000 },
		);
	}, 120_000);
});
