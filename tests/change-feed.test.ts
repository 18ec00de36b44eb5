// The change feed against a fake store: every subscriber sees each change's result, in change order, never past a hole, whatever the bus and the store do.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ChangeFeed, type Update } from "../lib/change-feed.ts";
import { FEED_DEFAULTS, type FeedOptions } from "../lib/room-feed.ts";
import type { Page } from "../lib/store.ts";
import type { Message } from "../protocol.ts";
import { until } from "./until.ts";

const ROOM = "r";
const SEQS = 6;

/**
 * One room of SEQS messages and its change counter. Reads see the room as it
 * is when they are made and answer when the test releases them (or at once
 * in `auto` mode); a read may be told to fail. `history` keeps, per change
 * number, which seq it changed.
 */
class FakeStore {
	/** Per seq (index seq − 1): the number of its last change, 0 if none. */
	readonly state: number[] = new Array(SEQS).fill(0);
	readonly history: number[] = [];
	auto = true;
	failNext = 0;
	private readonly pending: (() => void)[] = [];

	get top(): number {
		return this.history.length;
	}

	/** Changes message `seq`; the update the hub would publish for it. */
	commit(seq: number): Update {
		this.history.push(seq);
		const change = this.history.length;
		this.state[seq - 1] = change;
		return { type: "update", room: ROOM, change, message: message(seq, change) };
	}

	private answer<T>(value: () => T): Promise<T> {
		const fail = this.failNext > 0;
		if (fail) this.failNext--;
		// Seen as of now, like a database read.
		const seen = value();
		return new Promise<T>((resolve, reject) => {
			const settle = () => (fail ? reject(new Error("store unreachable")) : resolve(seen));
			if (this.auto) queueMicrotask(settle);
			else this.pending.push(settle);
		});
	}

	release(i: number): boolean {
		if (this.pending.length === 0) return false;
		const [settle] = this.pending.splice(i % this.pending.length, 1);
		settle?.();
		return true;
	}

	releaseAll(): void {
		while (this.release(0));
	}

	changes(_room: string, after: number, limit: number): Promise<Page> {
		return this.answer(() => {
			const changed = this.state
				.map((change, i) => message(i + 1, change))
				.filter((m) => (m.change ?? 0) > after)
				.sort((a, b) => (a.change ?? 0) - (b.change ?? 0));
			return { messages: changed.slice(0, limit), more: changed.length > limit };
		});
	}

	lastChange(): Promise<number> {
		return this.answer(() => this.top);
	}

	/** What a join reads: every message's change number now. */
	snapshot(): Promise<number[]> {
		return this.answer(() => [...this.state]);
	}
}

function message(seq: number, change: number): Message {
	const m: Message = { type: "message", room: ROOM, seq, from: "alice", text: `m${seq}@${change}`, ts: seq };
	if (change > 0) m.change = change;
	return m;
}

/** A subscriber as a page keeps it: per seq the change it holds, and the change numbers in the order received. */
interface Subscriber {
	held: number[];
	received: number[];
	/** A hole: after receiving change N it held a message older than it is, although its last change is N or before. */
	holes: string[];
}

function harness(store: FakeStore, overrides: Partial<FeedOptions> = {}) {
	const lost: string[] = [];
	const subscribers: Subscriber[] = [];
	const receive = (s: Subscriber, u: Update) => {
		s.received.push(u.change);
		const i = u.message.seq - 1;
		// The page's rule: a version replaces what it holds only when it is newer.
		s.held[i] = Math.max(s.held[i] ?? 0, u.change);
		// Having received N it may resume with `changes: N` at any moment, and then gets only the messages
		// whose last change is after N: every other message it must already hold as it is now.
		for (let seq = 1; seq <= SEQS; seq++) {
			const now = store.state[seq - 1] ?? 0;
			if (now <= u.change && (s.held[seq - 1] ?? 0) !== now)
				s.holes.push(`after ${u.change}: seq ${seq} held at ${s.held[seq - 1]}, is at ${now}`);
		}
	};
	const feed = new ChangeFeed(
		ROOM,
		store,
		(u) => {
			for (const s of subscribers) receive(s, u);
		},
		{
			...FEED_DEFAULTS,
			retryMinMs: 1,
			retryMaxMs: 4,
			onRead: () => {},
			onError: () => {},
			onLost: (_room, reason) => lost.push(reason),
			...overrides,
		},
	);
	/** Joins like hub.join: counter, then the read, then (one turn) the snapshot plus what was emitted since the counter. */
	const join = async () => {
		const from = await feed.start();
		const held = await store.snapshot();
		const caught = feed.emittedAfter(from);
		if (!caught) throw new Error("overtaken");
		const s: Subscriber = { held, received: [], holes: [] };
		for (const u of caught) receive(s, u);
		subscribers.push(s);
	};
	return { feed, lost, subscribers, join };
}

describe("change feed", () => {
	test("in order, repeated and out-of-order deliveries: each change once, in order", async () => {
		const store = new FakeStore();
		const h = harness(store);
		await h.join();
		const a = store.commit(1);
		const b = store.commit(2);
		const c = store.commit(3);
		h.feed.deliver(a);
		h.feed.deliver(a);
		h.feed.deliver(c);
		h.feed.deliver(b);
		await until(() => h.feed.head === 3, 2000);
		expect(h.subscribers[0]?.received).toEqual([1, 2, 3]);
	});

	test("a hole is filled from the store: a message changed twice meanwhile comes once, in its latest state", async () => {
		const store = new FakeStore();
		const h = harness(store);
		await h.join();
		store.commit(1); // lost on the bus
		store.commit(2); // lost too
		store.commit(1); // seq 1 again: change 3 supersedes 1
		h.feed.deliver(store.commit(4));
		await until(() => h.feed.head === 4, 2000);
		const s = h.subscribers[0] as Subscriber;
		expect(s.received).toEqual([2, 3, 4]);
		expect(s.held.slice(0, 4)).toEqual([3, 2, 0, 4]);
		expect(s.holes).toEqual([]);
	});

	test("catchUp finds changes the bus lost at the end of the stream", async () => {
		const store = new FakeStore();
		const h = harness(store);
		await h.join();
		store.commit(5);
		store.commit(6);
		h.feed.catchUp();
		await until(() => h.feed.head === 2, 2000);
		expect(h.subscribers[0]?.received).toEqual([1, 2]);
	});

	test("a join while the feed is behind waits until it has emitted up to the counter", async () => {
		const store = new FakeStore();
		const h = harness(store);
		await h.join();
		store.commit(1);
		store.commit(2);
		await h.join();
		expect(h.subscribers.map((s) => s.received)).toEqual([[1, 2], []]);
		expect(h.subscribers[1]?.held.slice(0, 2)).toEqual([1, 2]);
	});

	test("two joins whose counter reads answer out of order both line up; neither is taken for overtaken", async () => {
		const store = new FakeStore();
		store.auto = false;
		const h = harness(store);
		const first = h.join();
		store.commit(1); // its update lost on the bus
		const second = h.join();
		// The second join's counter read (it saw change 1) answers first and starts the feed there.
		store.release(1);
		await Bun.sleep(0);
		store.auto = true;
		store.releaseAll();
		await Promise.all([first, second]);
		for (const s of h.subscribers) {
			expect(s.holes).toEqual([]);
			expect(s.held).toEqual(store.state);
		}
		expect(h.subscribers).toHaveLength(2);
	});

	test("a store unreachable past the bound: the feed gives up loudly and starts again on the next join", async () => {
		const store = new FakeStore();
		const h = harness(store, { giveUpMs: 30 });
		await h.join();
		store.failNext = 1_000_000;
		store.commit(1);
		h.feed.deliver(store.commit(2));
		await until(() => h.lost.length > 0, 5000);
		expect(h.feed.head).toBeUndefined();
		store.failNext = 0;
		await h.join();
		expect(h.feed.head).toBe(2);
	});

	type Step =
		| { kind: "commit"; seq: number; fate: "deliver" | "hold" | "drop" | "twice" }
		| { kind: "flush"; pick: number }
		| { kind: "join" }
		| { kind: "release"; pick: number }
		| { kind: "fail"; reads: number }
		| { kind: "tick" };

	const step: fc.Arbitrary<Step> = fc.oneof(
		{
			weight: 6,
			arbitrary: fc.record({
				kind: fc.constant("commit" as const),
				seq: fc.integer({ min: 1, max: SEQS }),
				fate: fc.constantFrom("deliver" as const, "hold" as const, "drop" as const, "twice" as const),
			}),
		},
		{ weight: 3, arbitrary: fc.record({ kind: fc.constant("flush" as const), pick: fc.nat(50) }) },
		{ weight: 1, arbitrary: fc.constant({ kind: "join" as const }) },
		{ weight: 3, arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat(10) }) },
		{
			weight: 1,
			arbitrary: fc.record({ kind: fc.constant("fail" as const), reads: fc.integer({ min: 1, max: 4 }) }),
		},
		{ weight: 1, arbitrary: fc.constant({ kind: "tick" as const }) },
	);

	test("randomized: lost, repeated and reordered updates, joins mid-stream, failing reads; no subscriber ever holds a hole, and all end current", async () => {
		await fc.assert(
			fc.asyncProperty(
				fc.array(step, { maxLength: 120 }),
				fc.integer({ min: 1, max: 4 }),
				async (steps, pageSize) => {
					const store = new FakeStore();
					store.auto = false;
					const h = harness(store, { pageSize, giveUpMs: 60_000 });
					const held: Update[] = [];
					const joins: Promise<unknown>[] = [h.join().catch(() => {})];
					store.releaseAll();
					await Bun.sleep(0);
					store.releaseAll();
					await Bun.sleep(0);
					for (const s of steps) {
						if (s.kind === "commit") {
							const u = store.commit(s.seq);
							if (s.fate === "deliver") h.feed.deliver(u);
							else if (s.fate === "hold") held.push(u);
							else if (s.fate === "twice") {
								h.feed.deliver(u);
								held.push(u);
							}
						} else if (s.kind === "flush" && held.length > 0) {
							const [u] = held.splice(s.pick % held.length, 1);
							h.feed.deliver(u as Update);
						} else if (s.kind === "join") {
							joins.push(h.join().catch(() => {}));
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
					for (const u of held) h.feed.deliver(u);
					await Promise.all(joins);
					h.feed.catchUp();
					await until(() => h.feed.head === store.top, 5000);
					for (const s of h.subscribers) {
						expect(s.holes).toEqual([]);
						// Strictly ascending: each change once, in order.
						expect(s.received).toEqual([...new Set(s.received)].sort((a, b) => a - b));
						expect(s.held).toEqual(store.state);
					}
					expect(h.lost).toEqual([]);
				},
			),
			{ numRuns: 500 },
		);
	}, 120_000);
});
