// Chat guarantees through real sockets: fan-out order, room isolation, resume with since, idempotent sends, joins during a stream.
import { describe, expect, test } from "bun:test";
import type { Message } from "../protocol.ts";
import { type Client, chatter, startServer } from "./helpers.ts";

const noLimits = { config: { sendBurst: 100_000, sendRate: 100_000, maxConnsPerIp: 1000 } };

/** Sends `count` messages from `c` to `room`, waiting for the echo of each batch so the stream is paced. */
async function stream(c: Client, room: string, from: number, count: number, batch = 10): Promise<void> {
	for (let i = from; i < from + count; i += batch) {
		const last = Math.min(i + batch, from + count) - 1;
		for (let j = i; j <= last; j++) c.send({ type: "send", room, id: `s${j}`, text: `message ${j}` });
		await c.expect("message", (m) => m.id === `s${last}`);
	}
}

/** Collects every message `c` gets for `room` until the one with seq `upTo`. */
async function collectUntil(c: Client, room: string, upTo: number): Promise<Message[]> {
	const got: Message[] = [];
	for (;;) {
		const m = await c.expect("message", (f) => f.room === room, 10_000);
		got.push(m);
		if (m.seq >= upTo) return got;
	}
}

function expectConsecutive(seqs: number[], first: number, last: number): void {
	expect(seqs).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i));
}

describe("fan-out", () => {
	test("two clients in a room see each other's messages in the same seq order; another room sees none", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		const c = await chatter(s.ws, "carol", "random");
		await a.expect("presence");
		for (let i = 0; i < 20; i++) {
			a.send({ type: "send", room: "general", text: `a${i}` });
			b.send({ type: "send", room: "general", text: `b${i}` });
		}
		const atA = await collectUntil(a, "general", 40);
		const atB = await collectUntil(b, "general", 40);
		expect(atA).toEqual(atB);
		expectConsecutive(
			atA.map((m) => m.seq),
			1,
			40,
		);
		expect(atA.filter((m) => m.from === "alice").map((m) => m.text)).toEqual(
			Array.from({ length: 20 }, (_, i) => `a${i}`),
		);
		c.send({ type: "send", room: "random", text: "anyone?" });
		const own = await c.next();
		expect(own).toMatchObject({ type: "message", room: "random", seq: 1 });
		expect(c.pending()).toEqual([]);
		expect(a.pending().filter((f) => f.type === "message")).toEqual([]);
	});
});

describe("join and resume", () => {
	test("join without since gets the latest 50 and more=true when older exist", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		await stream(a, "general", 1, 70);
		const b = await chatter(s.ws, "bob");
		const joined = await b.join("general");
		expectConsecutive(
			joined.messages.map((m) => m.seq),
			21,
			70,
		);
		expect(joined.more).toBe(true);
		const c = await chatter(s.ws, "carol");
		await c.join("small");
		expect((await c.join("general")).messages).toHaveLength(50);
	});

	test("join with since gets exactly the missed messages, then live ones without gap", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		await stream(a, "general", 1, 30);
		const b = await chatter(s.ws, "bob");
		const joined = await b.join("general", 17);
		expectConsecutive(
			joined.messages.map((m) => m.seq),
			18,
			30,
		);
		expect(joined.more).toBe(false);
		a.send({ type: "send", room: "general", text: "live" });
		expect(await b.expect("message")).toMatchObject({ seq: 31, text: "live" });
		const upToDate = await chatter(s.ws, "carol");
		expect(await upToDate.join("general", 31)).toMatchObject({ messages: [], more: false });
		a.send({ type: "send", room: "general", text: "after" });
		expect(await upToDate.expect("message")).toMatchObject({ seq: 32 });
	});

	test("a since beyond the room's last seq is a lost position: joined with reset and the latest messages", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		await stream(a, "general", 1, 60);
		const ahead = await chatter(s.ws, "dave");
		const joined = await ahead.join("general", 9999);
		expect(joined.reset).toBe(true);
		expect(joined.more).toBe(true);
		expectConsecutive(
			joined.messages.map((m) => m.seq),
			11,
			60,
		);
		a.send({ type: "send", room: "general", text: "after" });
		expect(await ahead.expect("message")).toMatchObject({ seq: 61, text: "after" });
		// A position the room does have is never reset.
		const inTime = await chatter(s.ws, "erin");
		expect((await inTime.join("general", 61)).reset).toBeUndefined();
	});

	test("more than 1000 missed: the newest 1000 with more=true; exactly 1000: more=false", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		await stream(a, "general", 1, 1200, 100);
		const b = await chatter(s.ws, "bob");
		const over = await b.join("big", 0).then(() => b.join("general", 100));
		expectConsecutive(
			over.messages.map((m) => m.seq),
			201,
			1200,
		);
		expect(over.more).toBe(true);
		const c = await chatter(s.ws, "carol");
		const exact = await c.join("general", 200);
		expect(exact.messages).toHaveLength(1000);
		expect(exact.more).toBe(false);
	});

	test("joining again is a resume: joined again, no duplicate presence, live frames continue", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		await stream(a, "general", 1, 5);
		await b.expect("message", (m) => m.seq === 5);
		const again = await b.join("general", 3);
		expect(again.messages.map((m) => m.seq)).toEqual([4, 5]);
		expect(again.members.sort()).toEqual(["alice", "bob"]);
		a.send({ type: "send", room: "general", text: "next" });
		expect(await b.next()).toMatchObject({ type: "message", seq: 6 });
		expect(a.pending().filter((f) => f.type === "presence")).toEqual([]);
	});
});

describe("idempotent sends", () => {
	test("the same id twice stores one message; the repeat goes back to the sender alone", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		a.send({ type: "send", room: "general", id: "m-1", text: "hello" });
		const first = await a.next();
		expect(await b.next()).toEqual(first);
		a.send({ type: "send", room: "general", id: "m-1", text: "hello" });
		expect(await a.next()).toEqual(first);
		a.send({ type: "send", room: "general", id: "m-2", text: "second" });
		expect(await b.next()).toMatchObject({ seq: 2, id: "m-2" });
		b.send({ type: "history", room: "general" });
		expect((await b.expect("history")).messages.map((m) => m.id)).toEqual(["m-1", "m-2"]);
	});

	test("the id is per sender and per room", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.join("other");
		a.send({ type: "send", room: "general", id: "same", text: "a" });
		await a.expect("message", (m) => m.seq === 1);
		b.send({ type: "send", room: "general", id: "same", text: "b" });
		expect(await b.expect("message", (m) => m.from === "bob")).toMatchObject({ seq: 2 });
		a.send({ type: "send", room: "other", id: "same", text: "c" });
		expect(await a.expect("message", (m) => m.room === "other")).toMatchObject({ seq: 1 });
	});

	test("a resend after reconnecting, with the same id and name, is stored once", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		a.send({ type: "send", room: "general", id: "m-9", text: "did it arrive?" });
		await a.expect("message");
		a.close();
		await a.closed;
		let again: Client | undefined;
		while (!again) {
			// The old connection's name is freed once the server has seen the close.
			again = await chatter(s.ws, "Alice").catch(() => undefined);
		}
		await again.join("general", 0);
		again.send({ type: "send", room: "general", id: "m-9", text: "did it arrive?" });
		expect(await again.expect("message")).toMatchObject({ seq: 1, id: "m-9", from: "alice" });
		again.send({ type: "history", room: "general" });
		expect((await again.expect("history")).messages).toHaveLength(1);
	});
});

describe("concurrency", () => {
	test("joins during a stream: joined plus live frames are gap-free and duplicate-free", async () => {
		await using s = startServer(noLimits);
		const sender = await chatter(s.ws, "sender", "general");
		const watcher = await chatter(s.ws, "watcher", "general");
		const total = 600;
		const streaming = stream(sender, "general", 1, total, 5);
		const results: Promise<void>[] = [];
		for (let i = 0; i < 24; i++) {
			// Join at spread-out points of the stream, with and without since.
			const at = Math.floor((i * total) / 30);
			if (at > 0) await watcher.expect("message", (m) => m.seq >= at, 10_000);
			const withSince = i % 2 === 0;
			results.push(
				(async () => {
					const c = await chatter(s.ws, `joiner${i}`);
					const since = withSince ? Math.max(0, at - 7) : undefined;
					const joined = await c.join("general", since);
					const lastInJoined = joined.messages.at(-1)?.seq ?? since ?? 0;
					if (lastInJoined < total) await collectUntil(c, "general", total);
					// Everything the socket got, in arrival order: a live frame before `joined` would show here.
					const all = c.frames.flatMap((f) =>
						f.type === "joined" ? f.messages.map((m) => m.seq) : f.type === "message" ? [f.seq] : [],
					);
					const first = withSince ? (since as number) + 1 : (all[0] ?? total + 1);
					if (!withSince) expect(joined.messages.length).toBe(Math.min(50, lastInJoined));
					expectConsecutive(all, first, total);
					c.close();
				})(),
			);
		}
		await streaming;
		await Promise.all(results);
	}, 60_000);
});

describe("history", () => {
	test("a history of up to 200 pages back exactly: every message once, `more` only while older exist", async () => {
		await using s = startServer(noLimits);
		const a = await chatter(s.ws, "alice", "general");
		await stream(a, "general", 1, 230, 10);
		a.send({ type: "history", room: "general", limit: 200 });
		const newest = await a.expect("history");
		expectConsecutive(
			newest.messages.map((m) => m.seq),
			31,
			230,
		);
		expect(newest.more).toBe(true);
		a.send({ type: "history", room: "general", before: 31, limit: 200 });
		const rest = await a.expect("history");
		expectConsecutive(
			rest.messages.map((m) => m.seq),
			1,
			30,
		);
		expect(rest.more).toBe(false);
		a.send({ type: "history", room: "general", before: 131, limit: 100 });
		const middle = await a.expect("history");
		expectConsecutive(
			middle.messages.map((m) => m.seq),
			31,
			130,
		);
		expect(middle.more).toBe(true);
	});
});
