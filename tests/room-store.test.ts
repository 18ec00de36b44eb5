// The room tables (lib/room-store.ts) against SQLite and PostgreSQL alike: rooms and kinds, membership,
// read positions and unread counts, mentions, the directory, the event log, and the upgrade of an older database.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { AccountStore } from "../lib/account-store.ts";
import { nameKey } from "../lib/names.ts";
import { type RoomRow, RoomStore, UNREAD_CAP } from "../lib/room-store.ts";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { tempDir } from "./helpers.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

interface Opened {
	messages: Store;
	accounts: AccountStore;
	rooms: RoomStore;
	db: string;
	close(): Promise<void>;
}

interface Backend {
	fresh(): Promise<{ db: string; [Symbol.dispose](): void }>;
	messages(db: string): Promise<Store>;
}

const backends: [string, Backend][] = [
	[
		"sqlite",
		{
			async fresh() {
				const dir = tempDir("hubbub-rooms-");
				return { db: join(dir.path, "hubbub.db"), [Symbol.dispose]: () => dir[Symbol.dispose]() };
			},
			messages: async (db) => new SqliteStore(db),
		},
	],
	[
		"postgres",
		{
			fresh: async () => ({ db: await pg.database(), [Symbol.dispose]: () => {} }),
			messages: (db) => PostgresStore.open(db),
		},
	],
];

/** Opens the three sets of tables in the server's order. */
async function open(backend: Backend, db: string): Promise<Opened> {
	const messages = await backend.messages(db);
	const accounts = await AccountStore.open(db);
	const rooms = await RoomStore.open(db);
	return {
		messages,
		accounts,
		rooms,
		db,
		async close() {
			await rooms.close();
			await accounts.close();
			await messages.close();
		},
	};
}

let ids = 0;
async function account(o: Opened, name: string): Promise<{ id: string; key: string }> {
	const id = `acct-${++ids}`;
	await o.accounts.insertAccount({
		id,
		name,
		nameKey: nameKey(name),
		passwordHash: null,
		role: "member",
		bot: false,
		active: true,
		created: 1,
	});
	// How the message store keys senders (unread leaves out one's own messages by it).
	return { id, key: name.toLowerCase() };
}

const row = (room: string, kind: RoomRow["kind"], creator: string | null = null): RoomRow => ({
	room,
	kind,
	title: null,
	topic: "",
	creator,
	created: 5,
	archived: null,
});

describe.each(backends)("%s room store", (_, backend) => {
	test("#general exists from the start; an account is made a member of it once, when first seen", async () => {
		using h = await backend.fresh();
		const o = await open(backend, h.db);
		try {
			expect(await o.rooms.room("general")).toMatchObject({ kind: "open", creator: null, archived: null });
			const bob = await account(o, "Bob");
			expect(await o.rooms.welcomeNewcomer(bob.id, 10)).toBe(true);
			expect(await o.rooms.memberships(bob.id)).toEqual(["general"]);
			await o.rooms.removeMember("general", bob.id);
			// Leaving #general sticks: being seen again does not bring it back.
			expect(await o.rooms.welcomeNewcomer(bob.id, 11)).toBe(false);
			expect(await o.rooms.memberships(bob.id)).toEqual([]);
		} finally {
			await o.close();
		}
	});

	test("rooms of every kind; an id is taken once whatever its kind; the directory shows open unarchived rooms", async () => {
		using h = await backend.fresh();
		const o = await open(backend, h.db);
		try {
			const alice = await account(o, "alice");
			expect(
				await o.rooms.insertRoom({ ...row("design", "open", alice.id), title: "Design 100%" }, [alice.id]),
			).toBe("ok");
			expect(await o.rooms.insertRoom(row("secret", "private", alice.id), [alice.id])).toBe("ok");
			expect(await o.rooms.insertRoom(row("secret", "open"), [])).toBe("taken");
			expect(await o.rooms.insertRoom(row("old_stuff", "open"), [])).toBe("ok");
			await o.rooms.updateRoom("old_stuff", { archived: 99 });
			expect((await o.rooms.directory("", 200)).map((r) => r.room)).toEqual(["design", "general"]);
			expect(await o.rooms.directory("100%", 200)).toEqual([
				{ room: "design", title: "Design 100%", topic: "", members: 1 },
			]);
			// LIKE wildcards in a query are plain characters.
			expect(await o.rooms.directory("_", 200)).toEqual([]);
			expect(await o.rooms.archivedRooms()).toEqual(["old_stuff"]);
			await o.rooms.updateRoom("old_stuff", { archived: null, title: "Old", topic: "was archived" });
			expect(await o.rooms.room("old_stuff")).toMatchObject({
				title: "Old",
				topic: "was archived",
				archived: null,
			});
		} finally {
			await o.close();
		}
	});

	test("bounds per account: starts per window, rooms made in all, memberships; parallel starts cannot overshoot", async () => {
		using h = await backend.fresh();
		const o = await open(backend, h.db);
		try {
			const alice = await account(o, "alice");
			const bob = await account(o, "bob");
			const quota = { starter: alice.id, kind: "room" as const, since: 0, perWindow: 3, memberCap: 4 };
			// Ten at once (as from ten connections): three get through.
			const results = await Promise.all(
				Array.from({ length: 10 }, (_, i) =>
					o.rooms.insertRoom(row(`r${i}`, "open", alice.id), [alice.id], quota),
				),
			);
			expect(results.filter((r) => r === "ok")).toHaveLength(3);
			expect(results.filter((r) => r === "rate")).toHaveLength(7);
			// Starts before `since` do not count; the total does.
			expect(
				await o.rooms.insertRoom(row("t1", "open", alice.id), [alice.id], { ...quota, since: 5, total: 4 }),
			).toBe("ok");
			expect(
				await o.rooms.insertRoom(row("t2", "open", alice.id), [], { ...quota, since: 5, total: 4 }),
			).toBe("total");
			// A direct start counts apart from rooms; a member at the cap refuses it, naming who.
			expect(await o.rooms.membershipCount(alice.id)).toBe(4);
			const direct = { ...quota, kind: "direct" as const };
			expect(await o.rooms.insertRoom(row("dm-a", "direct"), [bob.id, alice.id], direct)).toEqual({
				full: alice.id,
			});
			expect(await o.rooms.insertRoom(row("dm-a", "direct"), [bob.id], direct)).toBe("ok");
			// An existing id is "taken" before any count (one of the three that got through: which three is a race).
			const made = `r${results.indexOf("ok")}`;
			expect(await o.rooms.insertRoom(row(made, "open", alice.id), [], quota)).toBe("taken");
			expect(await o.rooms.addMember("dm-a", alice.id, 6, 4)).toBe("full");
			expect(await o.rooms.addMember("dm-a", alice.id, 6, 5)).toBe("added");
			expect(await o.rooms.addMember("dm-a", alice.id, 6, 5)).toBe("member");
			await o.rooms.pruneStarts(Number.MAX_SAFE_INTEGER);
			expect(
				await o.rooms.insertRoom(row("r9", "open", bob.id), [bob.id], { ...quota, starter: bob.id }),
			).toBe("ok");
		} finally {
			await o.close();
		}
	});

	test("unread and mention counts stop at UNREAD_CAP however far behind the reader is", async () => {
		using h = await backend.fresh();
		const o = await open(backend, h.db);
		try {
			await account(o, "alice");
			const bob = await account(o, "bob");
			await o.rooms.addMember("general", bob.id, 1);
			for (let i = 0; i < UNREAD_CAP + 20; i++) {
				const { message } = await o.messages.append({ room: "general", from: "alice", text: "@bob", ts: 2 });
				await o.rooms.addMentions("general", message.seq, [bob.id]);
			}
			expect((await o.rooms.views(bob.id, bob.key, "general"))[0]).toMatchObject({
				lastSeq: UNREAD_CAP + 20,
				unread: UNREAD_CAP,
				mentions: UNREAD_CAP,
			});
		} finally {
			await o.close();
		}
	});

	test("unread counts messages after the read position from other people; mentions count until read", async () => {
		using h = await backend.fresh();
		const o = await open(backend, h.db);
		try {
			const alice = await account(o, "alice");
			const bob = await account(o, "bob");
			await o.messages.append({ room: "general", from: "alice", text: "before bob", ts: 1 });
			// A member's read position starts at the newest message when it joins.
			expect(await o.rooms.addMember("general", bob.id, 2)).toBe("added");
			expect(await o.rooms.addMember("general", bob.id, 2)).toBe("member");
			expect(await o.rooms.addMember("general", alice.id, 2)).toBe("added");
			for (const [from, text] of [
				["alice", "one"],
				["bob", "mine"],
				["alice", "two @bob"],
				["alice", "three"],
			] as const) {
				const { message } = await o.messages.append({
					room: "general",
					from,
					text,
					ts: 3,
				});
				if (text.includes("@bob")) await o.rooms.addMentions("general", message.seq, [bob.id]);
			}
			const [view] = await o.rooms.views(bob.id, bob.key);
			expect(view).toMatchObject({
				room: "general",
				lastSeq: 5,
				lastRead: 1,
				unread: 3,
				mentions: 1,
				members: 2,
			});
			// A deleted message (a tombstone) is neither unread nor a mention (lib/rooms.ts removes its mentions).
			await o.messages.remove("general", 4);
			expect((await o.rooms.views(bob.id, bob.key, "general"))[0]).toMatchObject({ unread: 2, mentions: 1 });
			await o.rooms.removeMentions("general", 4);
			expect((await o.rooms.views(bob.id, bob.key, "general"))[0]).toMatchObject({ unread: 2, mentions: 0 });
			expect(await o.rooms.markRead("general", bob.id, 4)).toBe(true);
			expect((await o.rooms.views(bob.id, bob.key, "general"))[0]).toMatchObject({
				lastRead: 4,
				unread: 1,
				mentions: 0,
			});
			// Never backwards, never past the newest message.
			expect(await o.rooms.markRead("general", bob.id, 2)).toBe(false);
			await o.rooms.markRead("general", bob.id, 1000);
			expect((await o.rooms.views(bob.id, bob.key, "general"))[0]).toMatchObject({ lastRead: 5, unread: 0 });
			expect(await o.rooms.membersByKey("general", ["bob", "nobody"])).toEqual([bob.id]);
			expect(await o.rooms.people("general")).toEqual(["alice", "bob"]);
		} finally {
			await o.close();
		}
	});

	test("the event log is read by another handle (another process) in order", async () => {
		using h = await backend.fresh();
		const a = await open(backend, h.db);
		const b = await RoomStore.open(h.db);
		try {
			const from = await b.lastEvent();
			const first = await a.rooms.appendEvent("general", "x", "member", 1);
			await a.rooms.appendEvent("general", null, "room", 2);
			expect((await b.eventsAfter(from)).map((e) => [e.seq >= first, e.room, e.accountId, e.kind])).toEqual([
				[true, "general", "x", "member"],
				[true, "general", null, "room"],
			]);
			await a.rooms.pruneEvents(3);
			expect(await b.eventsAfter(0)).toEqual([]);
		} finally {
			await b.close();
			await a.close();
		}
	});

	test("an older database: rooms with messages become open rooms, their writers stay members, all read", async () => {
		using h = await backend.fresh();
		// A database as the previous version left it: messages and accounts, no room tables.
		const messages = await backend.messages(h.db);
		const accounts = await AccountStore.open(h.db);
		for (const [room, from] of [
			["dev", "alice"],
			["dev", "bob"],
			["ops", "alice"],
		] as const)
			await messages.append({ room, from, text: `${from} in ${room}`, ts: 1 });
		await accounts.insertAccount({
			id: "a1",
			name: "Alice",
			nameKey: nameKey("Alice"),
			passwordHash: null,
			role: "admin",
			bot: false,
			active: true,
			created: 1,
		});
		await accounts.close();
		await messages.close();

		const o = await open(backend, h.db);
		try {
			expect(await o.rooms.room("dev")).toMatchObject({ kind: "open", creator: null });
			expect(await o.rooms.room("ops")).toMatchObject({ kind: "open" });
			// #general exists in every database: new accounts are made members of it.
			expect(await o.rooms.room("general")).toMatchObject({ kind: "open" });
			expect(await o.rooms.memberships("a1")).toEqual(["dev", "ops"]);
			expect(
				(await o.rooms.views("a1", "alice")).map((v) => [v.room, v.lastSeq, v.lastRead, v.unread]),
			).toEqual([
				["dev", 2, 2, 0],
				["ops", 1, 1, 0],
			]);
			expect((await o.messages.latest("dev", 10)).messages.map((m) => m.text)).toEqual([
				"alice in dev",
				"bob in dev",
			]);
			// Rooms written to later without the room tables (e.g. under --auth none) are adopted at the next open.
			await o.messages.append({ room: "later", from: "carol", text: "hi", ts: 2 });
			const again = await RoomStore.open(h.db);
			expect(await again.room("later")).toMatchObject({ kind: "open" });
			await again.close();
		} finally {
			await o.close();
		}
	});
});
