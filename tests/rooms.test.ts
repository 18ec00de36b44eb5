// Protocol 1.2 rooms under --auth accounts through a real server and real sockets: kinds, membership
// that belongs to the account, access on every path, direct rooms, the directory, read positions, mentions.
import { describe, expect, test } from "bun:test";
import type { ServerFrameOf } from "../protocol.ts";
import {
	type AccountsServer,
	type Browser,
	invite,
	setupAdmin,
	startAccountsServer,
} from "./accounts-helpers.ts";
import { Client } from "./helpers.ts";
import { until } from "./until.ts";

type Welcome = ServerFrameOf<"welcome">;

/** A connection of `who` (one device), with its welcome. */
async function device(s: { ws: string }, who: Browser): Promise<{ c: Client; welcome: Welcome }> {
	const c = await Client.connect(s.ws, { headers: who.wsHeaders() });
	const welcome = await c.expect("welcome");
	return { c, welcome };
}

async function connect(s: { ws: string }, who: Browser): Promise<Client> {
	return (await device(s, who)).c;
}

let refs = 0;
/** Sends a 1.2 frame with a fresh ref and waits for its answer: the frame of `type`, or the error carrying that ref. */
async function ask<T extends ServerFrameOf<"room" | "directory">["type"]>(
	c: Client,
	type: T,
	frame: Record<string, unknown>,
): Promise<ServerFrameOf<T> | ServerFrameOf<"error">> {
	const ref = `r${++refs}`;
	c.send({ ...frame, ref });
	return (await c.next(
		(f) => (f.type === type || f.type === "error") && "ref" in f && f.ref === ref,
		10_000,
		true,
	)) as ServerFrameOf<T> | ServerFrameOf<"error">;
}

/** The answer to a join: `joined`, or the error naming the room. */
async function tryJoin(c: Client, room: string, since?: number) {
	c.send(since === undefined ? { type: "join", room } : { type: "join", room, since });
	return c.next(
		(f) => (f.type === "joined" || f.type === "error") && "room" in f && f.room === room,
		10_000,
		true,
	);
}

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
