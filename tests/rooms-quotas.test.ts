// Per-account bounds of protocol 1.2 rooms (docs/PROTOCOL.md "Bounds per account"): rooms created per hour
// and in all, new direct conversations per day, memberships held — counted in the store, so every
// connection and process of an account shares them. And a direct conversation cannot be pushed back on
// someone who left it.
import { describe, expect, test } from "bun:test";
import { accountKey } from "../lib/accounts.ts";
import type { RoomRow } from "../lib/room-store.ts";
import { LIMITS, type ServerFrameOf } from "../protocol.ts";
import { type AccountsServer, invite, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { ask, connect, device, tryJoin } from "./rooms-helpers.ts";

async function idOf(s: AccountsServer, name: string): Promise<string> {
	const row = await s.accounts.store.accountByKey(accountKey(name) as string);
	if (!row) throw new Error(`no account ${name}`);
	return row.id;
}

const row = (room: string, kind: RoomRow["kind"], creator: string | null, created = Date.now()): RoomRow => ({
	room,
	kind,
	title: null,
	topic: "",
	creator,
	created,
	archived: null,
});

const quota = (starter: string, kind: "room" | "direct", perWindow: number) => ({
	starter,
	kind,
	since: Date.now() - 3600_000,
	perWindow,
	memberCap: LIMITS.membershipsMax,
});

describe("bounds per account", () => {
	test("rooms created: a rate per account shared by all its connections, and a total for non-admins", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const aliceId = await idOf(s, "alice");
		const bobId = await idOf(s, "bob");
		// Alice (an admin) started all but one of this hour's rooms elsewhere (another connection or process).
		for (let i = 1; i < LIMITS.roomsPerHour; i++)
			expect(
				await s.rooms.store.insertRoom(row(`a${i}`, "open", aliceId), [aliceId], quota(aliceId, "room", 1e9)),
			).toBe("ok");
		const a1 = await connect(s, alice);
		const a2 = await connect(s, alice);
		expect(await ask(a1, "room", { type: "create", room: "last", kind: "open" })).toMatchObject({
			type: "room",
			room: { room: "last" },
		});
		const refused = await ask(a2, "room", { type: "create", room: "one_more", kind: "private" });
		expect(refused).toMatchObject({ type: "error", code: "quota_exceeded", room: "one_more" });
		expect((refused as ServerFrameOf<"error">).message).toContain(`${LIMITS.roomsPerHour} rooms an hour`);
		expect(await tryJoin(a1, "one_more")).toMatchObject({ code: "not_found" });

		// Bob (a member) made all but one of his rooms long ago: one more, then no more, whatever the hour.
		for (let i = 1; i < LIMITS.roomsCreatedMax; i++)
			await s.rooms.store.insertRoom(row(`b${i}`, "private", bobId, 1), [], undefined);
		const b = await connect(s, bob);
		expect(await ask(b, "room", { type: "create", room: "bobs_last", kind: "open" })).toMatchObject({
			room: { room: "bobs_last" },
		});
		const over = await ask(b, "room", { type: "create", room: "bobs_more", kind: "open" });
		expect(over).toMatchObject({ code: "quota_exceeded" });
		expect((over as ServerFrameOf<"error">).message).toContain(`at most ${LIMITS.roomsCreatedMax} rooms`);
	}, 90_000);

	test("new direct conversations per day; an existing one opens whatever the count", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		await invite(s, alice, "bob", "bob password");
		await invite(s, alice, "carol", "carol password");
		const aliceId = await idOf(s, "alice");
		const a = await connect(s, alice);
		const dm = (await ask(a, "room", { type: "direct", names: ["bob"] })) as ServerFrameOf<"room">;
		expect(dm.room.kind).toBe("direct");
		for (let i = 1; i < LIMITS.directPerDay; i++)
			expect(
				await s.rooms.store.insertRoom(
					row(`dm-x${i}`, "direct", null),
					[aliceId],
					quota(aliceId, "direct", 1e9),
				),
			).toBe("ok");
		const refused = await ask(a, "room", { type: "direct", names: ["carol"] });
		expect(refused).toMatchObject({ code: "quota_exceeded" });
		expect((refused as ServerFrameOf<"error">).message).toContain(
			`${LIMITS.directPerDay} new direct conversations a day`,
		);
		expect(await ask(a, "room", { type: "direct", names: ["bob"] })).toMatchObject({
			room: { room: dm.room.room },
		});
	}, 90_000);

	test("memberships: an account in the most rooms cannot be put in more, by itself or by others", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const carol = await invite(s, alice, "carol", "carol password");
		const a = await connect(s, alice);
		await ask(a, "room", { type: "create", room: "lobby", kind: "open" });
		const { c, welcome } = await device(s, carol);
		expect(welcome.rooms?.map((r) => r.room)).toEqual(["general"]);
		const carolId = await idOf(s, "carol");
		for (let i = 1; i < LIMITS.membershipsMax; i++)
			await s.rooms.store.insertRoom(row(`c${i}`, "private", null), [carolId]);
		expect(await s.rooms.store.membershipCount(carolId)).toBe(LIMITS.membershipsMax);

		expect(await tryJoin(c, "lobby")).toMatchObject({ type: "error", code: "too_many_rooms", room: "lobby" });
		expect(await ask(c, "room", { type: "create", room: "carols", kind: "open" })).toMatchObject({
			code: "too_many_rooms",
		});
		expect(await ask(a, "room", { type: "member_add", room: "lobby", name: "carol" })).toMatchObject({
			code: "too_many_rooms",
		});
		const dm = await ask(a, "room", { type: "direct", names: ["carol"] });
		expect(dm).toMatchObject({ code: "too_many_rooms" });
		expect((dm as ServerFrameOf<"error">).message).toContain("carol is in too many rooms");
		expect(await s.rooms.store.membershipCount(carolId)).toBe(LIMITS.membershipsMax);

		// Leaving one makes room for one.
		c.send({ type: "leave", room: "general" });
		await c.expect("room_gone", (f) => f.room === "general");
		expect((await tryJoin(c, "lobby")).type).toBe("joined");
		expect(await tryJoin(c, "general")).toMatchObject({ code: "too_many_rooms" });
		// A new device's welcome lists every room, bounded by the cap.
		const again = await device(s, carol);
		expect(again.welcome.rooms).toHaveLength(LIMITS.membershipsMax);
	}, 120_000);
});

describe("direct conversations cannot be pushed on people", () => {
	test("someone who left is not brought back by another's `direct`, only by their own", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const a = await connect(s, alice);
		const b = await connect(s, bob);
		const dm = (await ask(a, "room", { type: "direct", names: ["bob"] })) as ServerFrameOf<"room">;
		const id = dm.room.room;
		await b.expect("room", (f) => f.room.room === id);
		await a.join(id);
		a.send({ type: "send", room: id, text: "before you left" });
		await a.expect("message", (m) => m.text === "before you left");

		b.send({ type: "leave", room: id });
		await b.expect("room_gone", (f) => f.room === id);
		await a.expect("room", (f) => f.room.room === id && f.room.members === 1);
		// Alice starts it again, twice: still only her.
		for (let i = 0; i < 2; i++)
			expect(await ask(a, "room", { type: "direct", names: ["bob"] })).toMatchObject({
				room: { room: id, members: 1, people: ["alice"] },
			});
		a.send({ type: "send", room: id, text: "are you there?" });
		await a.expect("message", (m) => m.text === "are you there?");
		// Bob heard nothing of it; a new device of his does not list it.
		const later = await device(s, bob);
		expect(later.welcome.rooms?.map((r) => r.room)).not.toContain(id);
		expect(await tryJoin(b, id)).toMatchObject({ code: "not_found" });
		expect(b.pending().some((f) => f.type === "room" && f.room.room === id && f.room.members === 2)).toBe(
			false,
		);

		// Bob starts it himself: back, with its history; alice hears he is back.
		expect(await ask(b, "room", { type: "direct", names: ["alice"] })).toMatchObject({
			room: { room: id, members: 2 },
		});
		await a.expect("room", (f) => f.room.room === id && f.room.members === 2);
		expect((await b.join(id)).messages.map((m) => m.text)).toEqual(["before you left", "are you there?"]);
	}, 90_000);
});

test("read: its answer and its errors carry the frame's ref (to the asking device only)", async () => {
	await using s = await startAccountsServer();
	const alice = await setupAdmin(s);
	const a = await connect(s, alice);
	const other = await connect(s, alice);
	a.send({ type: "read", room: "zzzznope", seq: 1, ref: "q1" });
	expect(await a.next((f) => f.type === "error", 10_000, true)).toMatchObject({
		code: "not_found",
		ref: "q1",
		room: "zzzznope",
	});
	await a.join("general");
	a.send({ type: "send", room: "general", text: "hi" });
	await a.expect("message", (m) => m.text === "hi");
	a.send({ type: "read", room: "general", seq: 1, ref: "q2" });
	expect(await a.expect("read")).toEqual({
		type: "read",
		ref: "q2",
		room: "general",
		seq: 1,
		unread: 0,
		mentions: 0,
	});
	expect(await other.expect("read")).toEqual({
		type: "read",
		room: "general",
		seq: 1,
		unread: 0,
		mentions: 0,
	});
	// Nothing moved: answered to the asker alone, still with its ref.
	a.send({ type: "read", room: "general", seq: 1, ref: "q3" });
	expect(await a.expect("read")).toMatchObject({ ref: "q3", seq: 1 });
}, 60_000);
