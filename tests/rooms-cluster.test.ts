// Room access on a two-process cluster (PostgreSQL + Redis): a non-member learns nothing of a private
// room on either process, membership shows on the devices on the other process, and a removal made
// through one process ends the removed person's live delivery on the other.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Browser, invite, setupAdmin } from "./accounts-helpers.ts";
import { type Postgres, startPostgres, startRedis } from "./engines.ts";
import { Client, fromSource, type Spawned, spawnServer } from "./helpers.ts";
import { ask, tryJoin } from "./rooms-helpers.ts";
import { until } from "./until.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

/** A device of `who` on process `s` (its cookie, and the page's origin there). */
async function on(s: Spawned, who: Browser): Promise<Client> {
	const c = await Client.connect(`${s.url.replace("http", "ws")}/ws`, {
		headers: { ...who.wsHeaders(), origin: s.url },
	});
	await c.expect("welcome", () => true, 10_000);
	return c;
}

test("two processes: private rooms are invisible to non-members on both; removal on one ends delivery on the other", async () => {
	await using redis = await startRedis();
	const flags = ["--db", await pg.database(), "--redis", redis.url, "--auth", "accounts"];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	try {
		const alice = await setupAdmin(a);
		const bob = await invite(a, alice, "bob", "bob password");
		const carol = await invite(a, alice, "carol", "carol password");
		const aliceA = await on(a, alice);
		const bobA = await on(a, bob);
		const bobB = await on(b, bob);
		const carolB = await on(b, carol);

		await ask(aliceA, "room", { type: "create", room: "core", kind: "private" });
		await aliceA.join("core");
		expect(await ask(aliceA, "room", { type: "member_add", room: "core", name: "bob" })).toMatchObject({
			room: { members: 2 },
		});
		// Bob's devices on both processes hear he is in it.
		expect(await bobA.expect("room", (f) => f.room.room === "core")).toBeDefined();
		expect(await bobB.expect("room", (f) => f.room.room === "core", 10_000)).toBeDefined();

		// Carol, on either process: the same not_found as for a room that does not exist, live and stored.
		const carolA = await on(a, carol);
		for (const c of [carolA, carolB]) {
			expect(await tryJoin(c, "core")).toMatchObject({
				code: "not_found",
				message: "no room #core that you can see",
			});
			expect(await tryJoin(c, "core", 0)).toMatchObject({ code: "not_found" });
			expect(await tryJoin(c, "ghost")).toMatchObject({
				code: "not_found",
				message: "no room #ghost that you can see",
			});
			c.send({ type: "history", room: "core" });
			expect(await c.expect("error")).toMatchObject({ code: "not_joined" });
		}
		await carolB.join("general");

		// Bob on process b reads and hears the room; alice sees him arrive, carol sees nothing of it.
		aliceA.send({ type: "send", room: "core", id: "c1", text: "core plans: v2 ships friday" });
		await aliceA.expect("message", (m) => m.id === "c1");
		const joined = await bobB.join("core");
		expect(joined.messages.map((m) => m.text)).toEqual(["core plans: v2 ships friday"]);
		expect(await aliceA.expect("presence", (f) => f.name === "bob" && f.online)).toMatchObject({
			room: "core",
		});
		aliceA.send({ type: "typing", room: "core" });
		expect(await bobB.expect("typing", (f) => f.room === "core")).toMatchObject({ name: "alice" });
		carolB.send({ type: "search", ref: "q", query: "friday" });
		expect((await carolB.expect("search", (f) => f.ref === "q")).hits).toEqual([]);
		bobB.send({ type: "search", ref: "q", query: "friday" });
		expect((await bobB.expect("search", (f) => f.ref === "q")).hits.map((h) => h.room)).toEqual(["core"]);

		// Removed through process a: bob's socket on process b stops receiving the room.
		expect(await ask(aliceA, "room", { type: "member_remove", room: "core", name: "bob" })).toMatchObject({
			room: { members: 1 },
		});
		expect(await bobB.expect("left", (f) => f.room === "core", 10_000)).toBeDefined();
		expect(await bobB.expect("room_gone", (f) => f.room === "core")).toBeDefined();
		expect(await bobA.expect("room_gone", (f) => f.room === "core", 10_000)).toBeDefined();
		const mark = bobB.frames.length;
		aliceA.send({ type: "send", room: "core", id: "c2", text: "after bob left" });
		aliceA.send({ type: "typing", room: "core" });
		await aliceA.expect("message", (m) => m.id === "c2");
		// A message in #general, which bob is still in, arrives after it: had c2 reached him, it would be first.
		carolB.send({ type: "send", room: "general", id: "g1", text: "marker" });
		await bobB.join("general");
		carolB.send({ type: "send", room: "general", id: "g2", text: "marker 2" });
		await bobB.expect("message", (m) => m.id === "g2", 10_000);
		expect(
			bobB.frames.slice(mark).filter((f) => "room" in f && f.room === "core" && f.type !== "left"),
		).toEqual([]);
		for (const c of [bobA, bobB]) {
			expect(await tryJoin(c, "core", 1)).toMatchObject({ code: "not_found" });
			c.send({ type: "search", ref: "q2", query: "friday" });
			expect((await c.expect("search", (f) => f.ref === "q2")).hits).toEqual([]);
		}
		// Carol heard nothing of the room but her own refused requests: no typing, presence or message.
		expect(carolB.frames.filter((f) => "room" in f && f.room === "core" && f.type !== "error")).toEqual([]);
		expect(carolA.frames.filter((f) => "room" in f && f.room === "core" && f.type !== "error")).toEqual([]);
		await until(async () => {
			const offline = aliceA.frames.some((f) => f.type === "presence" && f.name === "bob" && !f.online);
			return offline;
		}, 10_000);
	} finally {
		a.proc.kill();
		b.proc.kill();
		await Promise.all([a.proc.exited, b.proc.exited]);
	}
}, 90_000);
