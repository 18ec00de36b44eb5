// Edits, deletions and reactions over the protocol (1.2, --auth accounts): live to everyone in the room, on
// every process, and to a client that was away when it resumes with `since` and `changes`.
import { describe, expect, test } from "bun:test";
import { refusal } from "../lib/message-changes.ts";
import type { ServerFrameOf } from "../protocol.ts";
import { type Browser, invite, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { startPostgres, startRedis } from "./engines.ts";
import { Client, chatter, fromSource, spawnServer, startServer } from "./helpers.ts";
import { until } from "./until.ts";

const wsUrl = (base: string) => `${base.replace(/^http/, "ws")}/ws`;

async function socket(who: Browser, room: string, base = who.base): Promise<Client> {
	const c = await Client.connect(wsUrl(base), { headers: { ...who.wsHeaders(), origin: base } });
	await c.expect("welcome");
	await c.join(room);
	return c;
}

/** Sends a message and waits until `watcher` has it; its seq. */
async function say(from: Client, watcher: Client, id: string, text: string): Promise<number> {
	from.send({ type: "send", room: "general", id, text });
	return (await watcher.expect("message", (m) => m.id === id, 10_000)).seq;
}

type Update = ServerFrameOf<"update">;

describe("edits, deletions and reactions", () => {
	test("an edit and a deletion reach the other person live, the asker gets its ref, and nobody sees the old text after a reload", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const a = await socket(alice, "general");
		const b = await socket(bob, "general");
		const draft = await say(a, b, "a1", "the meeting is at 3");
		const secret = await say(a, b, "a2", "my password is hunter2");

		a.send({ type: "edit", ref: "e1", room: "general", seq: draft, text: "the meeting is at 4" });
		const mine = await a.expect("update", (u) => u.ref === "e1", 10_000);
		const seen = await b.expect("update", () => true, 10_000);
		expect(seen.ref).toBeUndefined();
		expect(seen).toEqual({ ...mine, ref: undefined } as unknown as Update);
		expect(seen).toMatchObject({ room: "general", change: 1 });
		expect(seen.message).toMatchObject({ seq: draft, text: "the meeting is at 4", change: 1, from: "alice" });
		expect(seen.message.edited).toBeNumber();

		a.send({ type: "delete", ref: "d1", room: "general", seq: secret });
		await a.expect("update", (u) => u.ref === "d1", 10_000);
		const gone = await b.expect("update", () => true, 10_000);
		expect(gone).toMatchObject({ change: 2, message: { seq: secret, text: "", deleted: true, change: 2 } });

		// A reload: the latest messages are as they are now; neither old text is anywhere in the answer.
		const fresh = await socket(bob, "general");
		const joined = fresh.frames.find((f) => f.type === "joined") as ServerFrameOf<"joined">;
		expect(joined.change).toBe(2);
		expect(joined.messages.map((m) => [m.seq, m.text, m.deleted ?? false])).toEqual([
			[draft, "the meeting is at 4", false],
			[secret, "", true],
		]);
		expect(JSON.stringify(fresh.frames)).not.toMatch(/hunter2|at 3/);
		// History pages say the same.
		fresh.send({ type: "history", room: "general", limit: 10, before: secret + 1 });
		const page = await fresh.expect("history");
		expect(JSON.stringify(page)).not.toMatch(/hunter2|at 3/);
		for (const c of [a, b, fresh]) c.close();
	}, 60_000);

	test("a client that was away resumes with since and changes and gets the changes to what it holds; too far behind, a reset", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const a = await socket(alice, "general");
		const b = await socket(bob, "general");
		const one = await say(a, b, "m1", "one");
		const two = await say(a, b, "m2", "two");
		const three = await say(a, b, "m3", "three");
		a.send({ type: "edit", ref: "x", room: "general", seq: one, text: "one, edited while bob was here" });
		const held = (await b.expect("update", () => true, 10_000)).change;
		b.close();
		await b.closed;

		// While bob is away: an edit, a deletion, reactions (one taken back), and a new message.
		a.send({ type: "edit", ref: "e", room: "general", seq: two, text: "two, edited" });
		a.send({ type: "delete", ref: "d", room: "general", seq: three });
		a.send({ type: "react", ref: "r1", room: "general", seq: one, emoji: "👍", on: true });
		a.send({ type: "react", ref: "r2", room: "general", seq: one, emoji: "🎉", on: true });
		a.send({ type: "react", ref: "r3", room: "general", seq: one, emoji: "🎉", on: false });
		// Each answered (in any order: an answer whose update a gap fill sent first goes out alone, later).
		const answered = () => new Set(a.frames.map((f) => (f.type === "update" ? f.ref : undefined)));
		await until(
			() => ["e", "d", "r1", "r2", "r3"].every((ref) => answered().has(ref)),
			10_000,
			"every answer",
		);
		const four = (
			await (async () => {
				a.send({ type: "send", room: "general", id: "m4", text: "four" });
				return a.expect("message", (m) => m.id === "m4", 10_000);
			})()
		).seq;

		const back = await Client.connect(wsUrl(s.url), { headers: { ...bob.wsHeaders(), origin: s.url } });
		await back.expect("welcome");
		back.send({ type: "join", room: "general", since: three, changes: held });
		const joined = await back.expect("joined", () => true, 10_000);
		expect(joined.messages.map((m) => m.seq)).toEqual([four]);
		expect(joined.change).toBe(6);
		// Only held messages (seq ≤ since) changed after `changes`, each once, as it is now.
		expect(joined.updates?.map((m) => [m.seq, m.text, m.deleted ?? false, m.reactions ?? []]).sort()).toEqual(
			[
				[one, "one, edited while bob was here", false, [{ emoji: "👍", names: ["alice"] }]],
				[two, "two, edited", false, []],
				[three, "", true, []],
			].sort(),
		);
		// Up to date: nothing more.
		back.send({ type: "join", room: "general", since: four, changes: 6 });
		const again = await back.expect("joined", () => true, 10_000);
		expect(again).toMatchObject({ messages: [], updates: [], change: 6 });
		// A counter this room never reached (another history): start afresh.
		back.send({ type: "join", room: "general", since: four, changes: 99 });
		const reset = await back.expect("joined", () => true, 10_000);
		expect(reset.reset).toBe(true);
		expect(reset.updates).toBeUndefined();
		expect(reset.messages.map((m) => m.seq)).toEqual([one, two, three, four]);
		// Without `changes` a resume is as in v1: no updates (the counter still comes).
		back.send({ type: "join", room: "general", since: three });
		const plain = await back.expect("joined", () => true, 10_000);
		expect(plain.updates).toBeUndefined();
		expect(plain.change).toBe(6);
		for (const c of [a, back]) c.close();
	}, 60_000);

	test("reactions go on and off live; the same person twice counts once", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const a = await socket(alice, "general");
		const b = await socket(bob, "general");
		const seq = await say(a, b, "m", "lunch?");
		b.send({ type: "react", ref: "r1", room: "general", seq, emoji: "👍", on: true });
		expect((await a.expect("update", () => true, 10_000)).message.reactions).toEqual([
			{ emoji: "👍", names: ["bob"] },
		]);
		a.send({ type: "react", ref: "r2", room: "general", seq, emoji: "👍", on: true });
		a.send({ type: "react", ref: "r3", room: "general", seq, emoji: "👍", on: true });
		await a.expect("update", (u) => u.ref === "r3", 10_000);
		const both = await b.expect("update", (u) => u.change === 3, 10_000);
		expect(both.message.reactions).toEqual([{ emoji: "👍", names: ["bob", "alice"] }]);
		b.send({ type: "react", ref: "r4", room: "general", seq, emoji: "👍", on: false });
		const off = await a.expect("update", (u) => u.change === 4, 10_000);
		expect(off.message.reactions).toEqual([{ emoji: "👍", names: ["alice"] }]);
		// Not an emoji: refused by the schema.
		b.send({ type: "react", ref: "bad", room: "general", seq, emoji: "lol", on: true });
		expect(await b.expect("error", (e) => e.ref === "bad")).toMatchObject({ code: "bad_frame" });
		for (const c of [a, b]) c.close();
	}, 60_000);

	test("only the sender edits; the sender or an admin deletes; a deleted message stays deleted", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const carol = await invite(s, alice, "carol", "carol password");
		const a = await socket(alice, "general");
		const b = await socket(bob, "general");
		const c = await socket(carol, "general");
		const hers = await say(a, c, "a1", "alice says");
		const his = await say(b, c, "b1", "bob says");
		const his2 = await say(b, c, "b2", "bob again");

		b.send({ type: "edit", ref: "e", room: "general", seq: hers, text: "bob was here" });
		expect(await b.expect("error", (e) => e.ref === "e")).toMatchObject({
			code: "forbidden",
			room: "general",
		});
		b.send({ type: "delete", ref: "d", room: "general", seq: hers });
		expect(await b.expect("error", (e) => e.ref === "d")).toMatchObject({ code: "forbidden" });
		c.send({ type: "delete", ref: "d2", room: "general", seq: his });
		expect(await c.expect("error", (e) => e.ref === "d2")).toMatchObject({ code: "forbidden" });
		// The admin deletes anyone's; carol sees it go.
		a.send({ type: "delete", ref: "d3", room: "general", seq: his });
		await a.expect("update", (u) => u.ref === "d3", 10_000);
		expect(await c.expect("update", () => true, 10_000)).toMatchObject({
			change: 1,
			message: { seq: his, deleted: true, text: "" },
		});
		// Bob deletes his own.
		b.send({ type: "delete", ref: "d4", room: "general", seq: his2 });
		expect(await b.expect("update", (u) => u.ref === "d4", 10_000)).toMatchObject({ change: 2 });
		// A deleted message is not edited or reacted to; a seq that does not exist is not found.
		b.send({ type: "edit", ref: "e2", room: "general", seq: his, text: "back" });
		expect(await b.expect("error", (e) => e.ref === "e2")).toMatchObject({ code: "forbidden" });
		b.send({ type: "react", ref: "r", room: "general", seq: his2, emoji: "👍", on: true });
		expect(await b.expect("error", (e) => e.ref === "r")).toMatchObject({ code: "forbidden" });
		b.send({ type: "edit", ref: "e3", room: "general", seq: 99, text: "nothing there" });
		expect(await b.expect("error", (e) => e.ref === "e3")).toMatchObject({ code: "not_found" });
		// A room this connection has not joined.
		b.send({ type: "delete", ref: "d5", room: "elsewhere", seq: 1 });
		expect(await b.expect("error", (e) => e.ref === "d5")).toMatchObject({ code: "not_joined" });
		// None of the refusals changed anything.
		const fresh = await socket(carol, "general");
		const joined = fresh.frames.find((f) => f.type === "joined") as ServerFrameOf<"joined">;
		expect(joined.change).toBe(2);
		expect(joined.messages.map((m) => m.text)).toEqual(["alice says", "", ""]);
		for (const x of [a, b, c, fresh]) x.close();
	}, 60_000);

	test("a private room's creator deletes anyone's message there; an archived room is read-only", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const carol = await invite(s, alice, "carol", "carol password");
		const c = await socket(carol, "general");
		c.send({ type: "create", ref: "mk", room: "secret", kind: "private" });
		await c.expect("room", (f) => f.ref === "mk", 10_000);
		c.send({ type: "member_add", ref: "add", room: "secret", name: "bob" });
		await c.expect("room", (f) => f.ref === "add", 10_000);
		await c.join("secret");
		const b = await socket(bob, "secret");
		b.send({ type: "send", room: "secret", id: "b1", text: "bob in secret" });
		const his = (await c.expect("message", (m) => m.id === "b1", 10_000)).seq;
		c.send({ type: "send", room: "secret", id: "c1", text: "carol in secret" });
		const hers = (await b.expect("message", (m) => m.id === "c1", 10_000)).seq;
		// Bob, not the creator, may not delete carol's; carol, the creator, deletes bob's.
		b.send({ type: "delete", ref: "d1", room: "secret", seq: hers });
		expect(await b.expect("error", (e) => e.ref === "d1", 10_000)).toMatchObject({ code: "forbidden" });
		c.send({ type: "delete", ref: "d2", room: "secret", seq: his });
		expect(await c.expect("update", (u) => u.ref === "d2", 10_000)).toMatchObject({
			message: { seq: his, deleted: true },
		});
		// Archived: readable, not changeable.
		c.send({ type: "room_update", ref: "arch", room: "secret", archived: true });
		await c.expect("room", (f) => f.ref === "arch", 10_000);
		await until(() => b.frames.some((f) => f.type === "room" && f.room.archived !== undefined), 10_000);
		c.send({ type: "edit", ref: "e1", room: "secret", seq: hers, text: "too late" });
		expect(await c.expect("error", (e) => e.ref === "e1", 10_000)).toMatchObject({ code: "read_only" });
		c.send({ type: "react", ref: "r1", room: "secret", seq: hers, emoji: "👍", on: true });
		expect(await c.expect("error", (e) => e.ref === "r1", 10_000)).toMatchObject({ code: "read_only" });
		for (const x of [b, c]) x.close();
	}, 60_000);

	test("search no longer finds a deleted text, and finds an edited message by its new text only", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const a = await socket(alice, "general");
		const seq1 = await say(a, a, "s1", "the vault code is 7412 swordfish");
		const seq2 = await say(a, a, "s2", "standup moves to tuesday");
		const search = async (query: string, ref: string) => {
			a.send({ type: "search", ref, query });
			return (await a.expect("search", (f) => f.ref === ref, 10_000)).hits.map((h) => h.seq);
		};
		expect(await search("swordfish", "q1")).toEqual([seq1]);
		a.send({ type: "delete", ref: "d", room: "general", seq: seq1 });
		a.send({ type: "edit", ref: "e", room: "general", seq: seq2, text: "standup moves to wednesday" });
		await a.expect("update", (u) => u.ref === "e", 10_000);
		expect(await search("swordfish", "q2")).toEqual([]);
		expect(await search("7412", "q3")).toEqual([]);
		expect(await search("tuesday", "q4")).toEqual([]);
		expect(await search("wednesday", "q5")).toEqual([seq2]);
		a.close();
	}, 60_000);

	test("under --auth none the frames are not available and joined carries nothing new", async () => {
		await using s = startServer();
		const c = await chatter(wsUrl(s.url), "ann", "general");
		c.send({ type: "send", room: "general", id: "n1", text: "hi" });
		const m = await c.expect("message");
		c.send({ type: "edit", ref: "e", room: "general", seq: m.seq, text: "changed" });
		expect(await c.expect("error", (e) => e.ref === "e")).toMatchObject({ code: "not_available" });
		const again = await c.join("general", 0);
		expect(Object.keys(again).sort()).toEqual(["members", "messages", "more", "room", "type"]);
		c.close();
	}, 30_000);
});

test("a cluster on PostgreSQL with Redis: edits and deletions made on one process reach the other live and after a resume there", async () => {
	using pg = await startPostgres();
	await using redis = await startRedis();
	const db = await pg.database();
	const flags = ["--db", db, "--redis", redis.url, "--auth", "accounts"];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	try {
		const alice = await setupAdmin(a);
		const bob = await invite(a, alice, "bob", "bob password");
		const onA = await socket(alice, "general");
		const onB = await socket(bob, "general", b.url);
		const first = await say(onA, onB, "c1", "cluster draft");
		const second = await say(onA, onB, "c2", "cluster secret");
		onA.send({ type: "edit", ref: "e", room: "general", seq: first, text: "cluster final" });
		expect(await onB.expect("update", () => true, 10_000)).toMatchObject({
			change: 1,
			message: { seq: first, text: "cluster final" },
		});
		// Bob reacts on his process; alice sees it on hers.
		onB.send({ type: "react", ref: "r", room: "general", seq: first, emoji: "👍", on: true });
		expect(await onA.expect("update", (u) => u.change === 2, 10_000)).toMatchObject({
			message: { reactions: [{ emoji: "👍", names: ["bob"] }] },
		});
		await onB.expect("update", (u) => u.ref === "r", 10_000);
		onB.close();
		await onB.closed;
		onA.send({ type: "delete", ref: "d", room: "general", seq: second });
		await onA.expect("update", (u) => u.ref === "d", 10_000);
		const back = await Client.connect(wsUrl(b.url), { headers: { ...bob.wsHeaders(), origin: b.url } });
		await back.expect("welcome");
		back.send({ type: "join", room: "general", since: second, changes: 2 });
		const joined = await back.expect("joined", () => true, 10_000);
		expect(joined.change).toBe(3);
		expect(joined.updates).toEqual([
			expect.objectContaining({ seq: second, text: "", deleted: true, change: 3 }),
		]);
		// And live again on b.
		onA.send({ type: "edit", ref: "e2", room: "general", seq: first, text: "cluster final, really" });
		expect(await back.expect("update", () => true, 10_000)).toMatchObject({ change: 4 });
		onA.close();
		back.close();
	} finally {
		a.proc.kill();
		b.proc.kill();
		await Promise.all([a.proc.exited, b.proc.exited]);
	}
}, 120_000);

describe("the rules (lib/message-changes.ts)", () => {
	const account = (name: string, role: "admin" | "member" = "member") => ({
		id: name,
		name,
		role,
		bot: false,
		active: true,
		created: 0,
	});
	const message = { type: "message" as const, room: "r", seq: 1, from: "Bob", text: "hi", ts: 0 };
	test("a private room's creator deletes anyone's there, not elsewhere; an archived room refuses everything as read_only", () => {
		const carol = account("carol");
		expect(refusal("delete", carol, message)?.code).toBe("forbidden");
		expect(refusal("delete", carol, message, { kind: "private", creatorId: "carol" })).toBeUndefined();
		expect(refusal("delete", carol, message, { kind: "open", creatorId: "carol" })?.code).toBe("forbidden");
		expect(refusal("edit", carol, message, { kind: "private", creatorId: "carol" })?.code).toBe("forbidden");
		// The sender by name key, whatever the case.
		expect(refusal("edit", account("bob"), message)).toBeUndefined();
		expect(refusal("delete", account("admin", "admin"), message)).toBeUndefined();
		for (const kind of ["edit", "delete", "react"] as const)
			expect(refusal(kind, account("bob", "admin"), message, { archived: true })?.code).toBe("read_only");
	});
});
