// Protocol 1.2 rooms under --auth accounts through a real server and real sockets: kinds, membership
// that belongs to the account, access on every path, direct rooms, the directory, read positions, mentions.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Accounts } from "../lib/accounts.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import type { ServerFrameOf } from "../protocol.ts";
import { type AccountsServer, Browser, invite, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { tempDir } from "./helpers.ts";
import { ask, connect, device, tryJoin } from "./rooms-helpers.ts";
import { until } from "./until.ts";

async function team(s: AccountsServer) {
	const alice = await setupAdmin(s);
	const bob = await invite(s, alice, "bob", "bob password");
	const carol = await invite(s, alice, "carol", "carol password");
	return { alice, bob, carol };
}

describe("rooms under --auth accounts", () => {
	test("welcome lists the account's rooms (new accounts are in #general) with protocol 1.2 and the role", async () => {
		await using s = await startAccountsServer();
		const { alice, bob } = await team(s);
		const a = await device(s, alice);
		expect(a.welcome).toMatchObject({ name: "alice", version: "1.2.0", role: "admin" });
		expect(a.welcome.rooms?.map((r) => [r.room, r.kind, r.title])).toEqual([["general", "open", "general"]]);
		const b = await device(s, bob);
		expect(b.welcome.role).toBe("member");
		// An account joins #general when it first connects (carol has not yet).
		expect(b.welcome.rooms?.[0]).toMatchObject({ room: "general", members: 2, unread: 0, mentions: 0 });
		const bj = await b.c.join("general");
		expect(bj.people).toEqual(["alice", "bob"]);
		expect(bj.info).toMatchObject({ room: "general", members: 2 });
		// A join makes no room under accounts; the answer is the same as for a private room.
		expect(await tryJoin(b.c, "nowhere")).toMatchObject({
			type: "error",
			code: "not_found",
			message: "no room #nowhere that you can see",
		});
	});

	test("a private room: invisible to non-members on every path, the same error as a room that does not exist", async () => {
		await using s = await startAccountsServer();
		const { alice, bob, carol } = await team(s);
		const a = await connect(s, alice);
		const made = await ask(a, "room", { type: "create", room: "secret", kind: "private", topic: "plans" });
		expect(made).toMatchObject({
			type: "room",
			room: {
				room: "secret",
				kind: "private",
				title: "secret",
				topic: "plans",
				creator: "alice",
				members: 1,
			},
		});
		const joined = await a.join("secret");
		expect(joined.people).toEqual(["alice"]);
		expect(joined.info).toMatchObject({ room: "secret", kind: "private" });
		a.send({ type: "send", room: "secret", id: "s1", text: "the launch code is swordfish" });
		await a.expect("message", (m) => m.text.includes("swordfish"));

		const c = await connect(s, carol);
		const unknown = await tryJoin(c, "nosuchroom");
		const hidden = await tryJoin(c, "secret");
		expect(hidden).toMatchObject({ type: "error", code: "not_found" });
		expect((hidden as { message: string }).message.replace("secret", "X")).toBe(
			(unknown as { message: string }).message.replace("nosuchroom", "X"),
		);
		expect(await tryJoin(c, "secret", 0)).toMatchObject({ type: "error", code: "not_found" });
		c.send({ type: "history", room: "secret" });
		expect(await c.expect("error")).toMatchObject({ code: "not_joined" });
		c.send({ type: "typing", room: "secret" });
		expect(await c.expect("error")).toMatchObject({ code: "not_joined" });
		c.send({ type: "search", ref: "q", query: "swordfish" });
		// The search index fills in the background: alice's own search shows it is there, carol's stays empty.
		await until(async () => {
			a.send({ type: "search", ref: "qa", query: "swordfish" });
			const r = await a.expect("search", (f) => f.ref === "qa");
			return r.hits.length === 1;
		});
		c.send({ type: "search", ref: "q2", query: "swordfish" });
		expect((await c.expect("search", (f) => f.ref === "q2")).hits).toEqual([]);
		const dir = await ask(c, "directory", { type: "directory" });
		expect(dir).toMatchObject({ type: "directory" });
		expect((dir as ServerFrameOf<"directory">).rooms.map((r) => r.room)).toEqual(["general"]);
		// Managing it is as unknown to her as joining it.
		expect(await ask(c, "room", { type: "room_update", room: "secret", title: "mine" })).toMatchObject({
			code: "not_found",
		});

		// Bob is added: his devices hear of the room, he reads its history.
		const b = await connect(s, bob);
		expect(await ask(b, "room", { type: "member_add", room: "secret", name: "carol" })).toMatchObject({
			code: "not_found",
		});
		const added = await ask(a, "room", { type: "member_add", room: "secret", name: "bob" });
		expect(added).toMatchObject({ type: "room", room: { members: 2, people: ["alice", "bob"] } });
		expect(await b.expect("room")).toMatchObject({ room: { room: "secret", kind: "private" } });
		const bj = await b.join("secret");
		expect(bj.messages.map((m) => m.text)).toEqual(["the launch code is swordfish"]);
		expect(bj.people).toEqual(["alice", "bob"]);
		// Only the creator or an admin adds people.
		expect(await ask(b, "room", { type: "member_add", room: "secret", name: "carol" })).toMatchObject({
			code: "forbidden",
		});
	});

	test("removal ends live delivery at once: left and room_gone on every device, no history, no search", async () => {
		await using s = await startAccountsServer();
		const { alice, bob } = await team(s);
		const a = await connect(s, alice);
		await ask(a, "room", { type: "create", room: "core", kind: "private" });
		await ask(a, "room", { type: "member_add", room: "core", name: "bob" });
		await a.join("core");
		const laptop = await connect(s, bob);
		const phone = await connect(s, bob);
		await laptop.join("core");
		a.send({ type: "send", room: "core", text: "before" });
		await laptop.expect("message", (m) => m.text === "before");
		const removed = await ask(a, "room", { type: "member_remove", room: "core", name: "bob" });
		expect(removed).toMatchObject({ type: "room", room: { members: 1 } });
		expect(await laptop.expect("left")).toMatchObject({ room: "core" });
		expect(await laptop.expect("room_gone")).toMatchObject({ room: "core" });
		expect(await phone.expect("room_gone")).toMatchObject({ room: "core" });
		const mark = laptop.frames.length;
		a.send({ type: "send", room: "core", id: "after", text: "after the removal" });
		await a.expect("message", (m) => m.id === "after");
		laptop.send({ type: "history", room: "core" });
		expect(await laptop.expect("error")).toMatchObject({ code: "not_joined" });
		expect(await tryJoin(laptop, "core", 1)).toMatchObject({ code: "not_found" });
		expect(laptop.frames.slice(mark).filter((f) => f.type === "message")).toEqual([]);
		laptop.send({ type: "search", ref: "q", query: "before" });
		expect((await laptop.expect("search", (f) => f.ref === "q")).hits).toEqual([]);
	});

	test("an open room: the directory finds it, a join makes a member on every device; rename, topic, archive", async () => {
		await using s = await startAccountsServer();
		const { alice, bob, carol } = await team(s);
		const a = await connect(s, alice);
		expect(
			await ask(a, "room", {
				type: "create",
				room: "design",
				kind: "open",
				title: "Design crit",
				topic: "pixels",
			}),
		).toMatchObject({ room: { room: "design", title: "Design crit", members: 1 } });
		expect(await ask(a, "room", { type: "create", room: "design", kind: "private" })).toMatchObject({
			code: "room_taken",
		});
		const laptop = await connect(s, bob);
		const phone = await connect(s, bob);
		const found = (await ask(laptop, "directory", {
			type: "directory",
			query: "CRIT",
		})) as ServerFrameOf<"directory">;
		expect(found.rooms).toEqual([{ room: "design", title: "Design crit", topic: "pixels", members: 1 }]);
		const joined = await laptop.join("design");
		expect(joined.info).toMatchObject({ room: "design", members: 2 });
		// His phone hears he is in it now.
		expect(await phone.expect("room")).toMatchObject({ room: { room: "design" } });
		// Only the creator or an admin renames.
		expect(await ask(laptop, "room", { type: "room_update", room: "design", title: "Mine" })).toMatchObject({
			code: "forbidden",
		});
		expect(
			await ask(a, "room", { type: "room_update", room: "design", title: "Design review", topic: "shapes" }),
		).toMatchObject({ room: { title: "Design review", topic: "shapes" } });
		expect(await phone.expect("room")).toMatchObject({ room: { title: "Design review", topic: "shapes" } });
		// Archived: read-only for its members, out of the directory, not joinable by others.
		const archived = await ask(a, "room", { type: "room_update", room: "design", archived: true });
		expect((archived as ServerFrameOf<"room">).room.archived).toBeNumber();
		await laptop.expect("room", (f) => f.room.archived !== undefined);
		laptop.send({ type: "send", room: "design", id: "x", text: "hello?" });
		expect(await laptop.expect("error")).toMatchObject({ code: "read_only", ref: "x" });
		laptop.send({ type: "typing", room: "design" });
		expect(await laptop.expect("error")).toMatchObject({ code: "read_only" });
		const dir = (await ask(laptop, "directory", { type: "directory" })) as ServerFrameOf<"directory">;
		expect(dir.rooms.map((r) => r.room)).toEqual(["general"]);
		const c = await connect(s, carol);
		expect(await tryJoin(c, "design")).toMatchObject({ code: "not_found" });
		expect(await tryJoin(laptop, "design")).toMatchObject({ type: "joined" });
	});
});

describe("direct rooms", () => {
	test("the same set of people always gets the same conversation; 2–8 people; nobody else sees it", async () => {
		await using s = await startAccountsServer();
		const { alice, bob, carol } = await team(s);
		const a = await connect(s, alice);
		const b = await connect(s, bob);
		const dm = await ask(a, "room", { type: "direct", names: ["bob"] });
		expect(dm).toMatchObject({
			type: "room",
			room: { kind: "direct", title: "bob", people: ["alice", "bob"] },
		});
		const id = (dm as ServerFrameOf<"room">).room.room;
		expect(id).toMatch(/^dm-[a-z2-7]{26}$/);
		// Bob's device hears of it, titled with the other person's name.
		expect(await b.expect("room")).toMatchObject({ room: { room: id, title: "alice" } });
		expect(await ask(a, "room", { type: "direct", names: [" BOB "] })).toMatchObject({ room: { room: id } });
		expect(await ask(b, "room", { type: "direct", names: ["alice"] })).toMatchObject({ room: { room: id } });
		const three = await ask(a, "room", { type: "direct", names: ["bob", "carol"] });
		expect(three).toMatchObject({ room: { title: "bob, carol", members: 3 } });
		expect((three as ServerFrameOf<"room">).room.room).not.toBe(id);

		await a.join(id);
		a.send({ type: "send", room: id, text: "just us" });
		await a.expect("message", (m) => m.text === "just us");
		const c = await connect(s, carol);
		expect(await tryJoin(c, id)).toMatchObject({ code: "not_found" });
		expect(await ask(a, "room", { type: "direct", names: ["nobody"] })).toMatchObject({ code: "not_found" });
		expect(await ask(a, "room", { type: "direct", names: ["alice"] })).toMatchObject({ code: "bad_frame" });
		// A direct conversation has no title, topic or members to manage.
		expect(await ask(a, "room", { type: "room_update", room: id, title: "x" })).toMatchObject({
			code: "forbidden",
		});
		expect(await ask(a, "room", { type: "member_add", room: id, name: "carol" })).toMatchObject({
			code: "forbidden",
		});

		// Bob leaves it; starting it again himself brings it back, with its history (alice cannot: tests/rooms-quotas.test.ts).
		b.send({ type: "leave", room: id });
		expect(await b.expect("room_gone", (f) => f.room === id)).toBeDefined();
		expect(await tryJoin(b, id)).toMatchObject({ code: "not_found" });
		expect(await ask(b, "room", { type: "direct", names: ["alice"] })).toMatchObject({ room: { room: id } });
		expect((await b.join(id)).messages.map((m) => m.text)).toEqual(["just us"]);
	});

	test("at most 8 people in one conversation", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const names = ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"];
		for (const n of names) await s.accounts.createUser(n, "long enough password", "member");
		const a = await connect(s, alice);
		expect(await ask(a, "room", { type: "direct", names: names.slice(0, 7) })).toMatchObject({
			room: { kind: "direct", members: 8 },
		});
		expect(await ask(a, "room", { type: "direct", names })).toMatchObject({ code: "bad_frame" });
	});
});

describe("read positions, unread and mentions", () => {
	test("a read on one device moves the position and counts on every device; own messages are not unread", async () => {
		await using s = await startAccountsServer();
		const { alice, bob } = await team(s);
		const a = await connect(s, alice);
		const laptop = await connect(s, bob);
		const phone = await connect(s, bob);
		await a.join("general");
		await laptop.join("general");
		for (const text of ["one", "two @bob", "three", "@Bob, four"]) {
			a.send({ type: "send", room: "general", text });
			await laptop.expect("message", (m) => m.text === text);
		}
		laptop.send({ type: "send", room: "general", text: "mine" });
		await laptop.expect("message", (m) => m.text === "mine");
		laptop.send({ type: "read", room: "general", seq: 2 });
		for (const c of [laptop, phone])
			expect(await c.expect("read")).toEqual({
				type: "read",
				room: "general",
				seq: 2,
				unread: 2,
				mentions: 1,
			});
		// Never backwards: an older position is answered with where it is, to that device alone.
		phone.send({ type: "read", room: "general", seq: 1 });
		expect(await phone.expect("read")).toMatchObject({ seq: 2, unread: 2 });
		laptop.send({ type: "read", room: "general", seq: 5 });
		for (const c of [laptop, phone])
			expect(await c.expect("read")).toEqual({
				type: "read",
				room: "general",
				seq: 5,
				unread: 0,
				mentions: 0,
			});
		// Alice's own counts do not include her own messages, nor the @bob mentions.
		const again = await device(s, alice);
		expect(again.welcome.rooms?.[0]).toMatchObject({ lastSeq: 5, lastRead: 0, unread: 1, mentions: 0 });
		a.send({ type: "read", room: "nowhere", seq: 1 });
		expect(await a.expect("error")).toMatchObject({ code: "not_found", room: "nowhere" });
	});

	test("an @name added by an edit mentions that person; a deletion takes the mention back", async () => {
		await using s = await startAccountsServer();
		const { alice, bob } = await team(s);
		await connect(s, bob); // first seen: a member of #general from here on
		const a = await connect(s, alice);
		await a.join("general");
		a.send({ type: "send", room: "general", text: "lunch?" });
		const sent = await a.expect("message", (m) => m.text === "lunch?");
		const counts = async () => (await device(s, bob)).welcome.rooms?.find((r) => r.room === "general");
		expect(await counts()).toMatchObject({ unread: 1, mentions: 0 });
		a.send({ type: "edit", ref: "e1", room: "general", seq: sent.seq, text: "lunch, @bob?" });
		await a.expect("update", (u) => u.ref === "e1");
		expect(await counts()).toMatchObject({ unread: 1, mentions: 1 });
		a.send({ type: "delete", ref: "d1", room: "general", seq: sent.seq });
		await a.expect("update", (u) => u.ref === "d1");
		expect(await counts()).toMatchObject({ unread: 0, mentions: 0 });
	});

	test("after every device was offline, a new device shows what arrived meanwhile", async () => {
		await using s = await startAccountsServer();
		const { alice, bob } = await team(s);
		const laptop = await connect(s, bob);
		await laptop.join("general");
		laptop.send({ type: "read", room: "general", seq: 0 });
		await laptop.expect("read");
		laptop.close();
		await laptop.closed;
		const a = await connect(s, alice);
		await a.join("general");
		for (const text of ["while you were out", "@bob look", "and this"]) {
			a.send({ type: "send", room: "general", text });
			await a.expect("message", (m) => m.text === text);
		}
		const phone = await device(s, bob);
		expect(phone.welcome.rooms?.find((r) => r.room === "general")).toMatchObject({
			lastSeq: 3,
			lastRead: 0,
			unread: 3,
			mentions: 1,
		});
		const joined = await phone.c.join("general");
		expect(joined.info).toMatchObject({ unread: 3, mentions: 1 });
	});
});

describe("the bot API and access", () => {
	test("a bot posts to open rooms (becoming a member) and to private rooms only as a member; unknown and private answer alike", async () => {
		await using s = await startAccountsServer();
		const { alice } = await team(s);
		const made = await alice.call("POST", "/api/admin/bots", { name: "ci-bot" });
		const token = String(made.body.token);
		const post = (room: string, text: string) =>
			fetch(`${s.url}/api/rooms/${room}/messages`, {
				method: "POST",
				headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
				body: JSON.stringify({ text }),
			});
		const a = await connect(s, alice);
		await ask(a, "room", { type: "create", room: "builds", kind: "private" });
		await a.join("builds");
		const hidden = await post("builds", "sneaky");
		const unknown = await post("nosuch", "sneaky");
		expect(hidden.status).toBe(404);
		expect(unknown.status).toBe(404);
		const [hiddenBody, unknownBody] = [await hidden.json(), await unknown.json()];
		expect(JSON.stringify(hiddenBody).replace("builds", "X")).toBe(
			JSON.stringify(unknownBody).replace("nosuch", "X"),
		);
		expect(await ask(a, "room", { type: "member_add", room: "builds", name: "ci-bot" })).toMatchObject({
			room: { members: 2 },
		});
		expect((await post("builds", "build 7 green")).status).toBe(201);
		expect(await a.expect("message")).toMatchObject({ from: "ci-bot", text: "build 7 green" });
		await ask(a, "room", { type: "room_update", room: "builds", archived: true });
		expect((await post("builds", "late")).status).toBe(409);
		expect((await post("general", "hello all")).status).toBe(201);
		expect(
			(await s.rooms.store.memberships(((await s.accounts.byName("ci-bot")) as { id: string }).id)).sort(),
		).toEqual(["builds", "general"]);
	});
});

test("an older database: its rooms and messages stay readable, its people stay in the rooms they wrote in", async () => {
	using dir = tempDir("hubbub-upgrade-");
	const db = join(dir.path, "old.db");
	// As the previous version left it: messages and accounts, no room tables.
	const old = new SqliteStore(db);
	const accounts = await Accounts.open(db);
	await accounts.setup("Alice", "correct horse", { address: "192.0.2.1", userAgent: "test" });
	await old.append({ room: "dev", from: "Alice", text: "from before", ts: 1 });
	await old.append({ room: "ops", from: "someone", text: "ops note", ts: 2 });
	await accounts.close();
	await old.close();

	await using s = await startAccountsServer({ dbPath: db });
	const alice = new Browser(s.url);
	expect(
		(await alice.call("POST", "/api/auth/signin", { name: "alice", password: "correct horse" })).status,
	).toBe(200);
	const a = await device(s, alice);
	expect(a.welcome.rooms?.map((r) => [r.room, r.kind, r.lastSeq, r.lastRead, r.unread])).toEqual([
		["dev", "open", 1, 1, 0],
		["general", "open", 0, 0, 0],
	]);
	expect((await a.c.join("dev")).messages.map((m) => [m.from, m.text])).toEqual([["Alice", "from before"]]);
	const dir2 = (await ask(a.c, "directory", { type: "directory" })) as ServerFrameOf<"directory">;
	expect(dir2.rooms.map((r) => r.room)).toEqual(["dev", "general", "ops"]);
	expect((await a.c.join("ops")).messages.map((m) => m.text)).toEqual(["ops note"]);
});

test("an admin manages a room it is in that someone else made; a hello gets the welcome with rooms again", async () => {
	await using s = await startAccountsServer();
	const { alice, carol } = await team(s);
	const c = await connect(s, carol);
	await ask(c, "room", { type: "create", room: "carols", kind: "private" });
	const a = await connect(s, alice);
	// Not a member: the admin does not see it either.
	expect(await ask(a, "room", { type: "room_update", room: "carols", topic: "x" })).toMatchObject({
		code: "not_found",
	});
	await ask(c, "room", { type: "member_add", room: "carols", name: "alice" });
	await a.expect("room", (f) => f.room.room === "carols");
	expect(
		await ask(a, "room", { type: "room_update", room: "carols", topic: "admin was here" }),
	).toMatchObject({
		room: { topic: "admin was here", creator: "carol" },
	});
	expect(await ask(a, "room", { type: "member_remove", room: "carols", name: "carol" })).toMatchObject({
		room: { members: 1 },
	});
	expect(await c.expect("room_gone", (f) => f.room === "carols")).toBeDefined();
	a.send({ type: "hello", name: "alice" });
	expect((await a.expect("welcome")).rooms?.map((r) => r.room)).toEqual(["carols", "general"]);
});
