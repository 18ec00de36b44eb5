// The Presence contract, run against every implementation (this process alone, and Redis), and the cluster's own rules for names and members.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { createLogger, type Logger } from "../lib/log.ts";
import { Metrics } from "../lib/metrics.ts";
import { localPresence, type Presence } from "../lib/presence.ts";
import { RedisPresence } from "../lib/presence-redis.ts";
import { HEARTBEAT_TTL_MS, RedisLink } from "../lib/redis-link.ts";
import type { ServerFrame } from "../protocol.ts";
import { type Redis, startRedis } from "./engines.ts";
import { until } from "./until.ts";

let redis: Redis;
let admin: RedisClient;
beforeAll(async () => {
	redis = await startRedis();
	admin = new RedisClient(redis.url);
	await admin.connect();
}, 30_000);
afterAll(async () => {
	admin?.close();
	await redis?.[Symbol.asyncDispose]();
});

const quiet: Logger = createLogger("error", () => {});

interface Node {
	presence: Presence;
	/** What the presence announced to its rooms. */
	announced: [string, ServerFrame][];
	link?: RedisLink;
}

let serial = 0;

function redisNode(prefix: string, url = redis.url): Node & { link: RedisLink } {
	const link = new RedisLink({
		url,
		prefix,
		store: "s/e",
		log: quiet,
		metrics: new Metrics(),
		backoffMs: { min: 50, max: 200 },
	});
	return { presence: new RedisPresence(link, quiet), announced: [], link };
}

async function started<N extends Node>(node: N): Promise<N> {
	await node.presence.start({ announce: (room, frame) => node.announced.push([room, frame]) });
	return node;
}

const backends: [string, () => () => Node][] = [
	["local", () => () => ({ presence: localPresence, announced: [] })],
	[
		"redis",
		() => {
			const prefix = `test${++serial}`;
			return () => redisNode(prefix);
		},
	],
];

describe.each(backends)("%s presence", (_, cluster) => {
	test("this process's names are its own to take, again after a release; its own members are not listed as elsewhere", async () => {
		const node = await started(cluster()());
		expect(await node.presence.claim("alice")).toBe(true);
		await node.presence.enter("r", "alice");
		expect(await node.presence.members("r")).toEqual([]);
		node.presence.release("alice");
		expect(await node.presence.claim("Alice")).toBe(true);
		node.presence.exit("r", "alice");
		await node.presence.close();
	});
});

describe("redis presence across processes", () => {
	test("one person in a room on two processes stays in it until the last one leaves; only the first arrival and the last leave are news", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		const c = await started(redisNode(prefix));
		expect(await a.presence.enter("r", "alice")).toBe(true);
		expect(await b.presence.enter("r", "Alice")).toBe(false);
		expect(await c.presence.members("r")).toHaveLength(1);
		// The first process's tab leaves: the other still has her.
		expect(await a.presence.exit("r", "alice")).toBe(false);
		expect(await c.presence.members("r")).toHaveLength(1);
		expect(await a.presence.members("r")).toEqual(["Alice"]);
		expect(await b.presence.exit("r", "Alice")).toBe(true);
		expect(await c.presence.members("r")).toEqual([]);
		// A dead process is reaped from her record without taking the live one's place.
		await a.presence.enter("r", "alice");
		await b.presence.enter("r", "alice");
		(a.link as unknown as { up: boolean }).up = false;
		await admin.send("DEL", [`${prefix}:proc:${a.link.id}`]);
		await until(
			async () => !JSON.stringify(await admin.send("HGETALL", [`${prefix}:members:r`])).includes(a.link.id),
			HEARTBEAT_TTL_MS + 5000,
			"a reaped",
		);
		expect(await c.presence.members("r")).toEqual(["alice"]);
		expect([...b.announced, ...c.announced]).toEqual([]);
		(a.link as unknown as { up: boolean }).up = true;
		for (const n of [a, b, c]) await n.presence.close();
	}, 20_000);

	test("a name held by a live process is refused on another, case-insensitively, until it is released", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		expect(await a.presence.claim("alice")).toBe(true);
		expect(await b.presence.claim("ALICE")).toBe(false);
		a.presence.release("alice");
		await until(async () => await b.presence.claim("Alice"));
		expect(await a.presence.claim("alice")).toBe(false);
		await a.presence.close();
		await b.presence.close();
	});

	test("of processes claiming one name at once, free or held by a dead process, exactly one gets it", async () => {
		const prefix = `test${++serial}`;
		const nodes = await Promise.all(Array.from({ length: 4 }, () => started(redisNode(prefix))));
		for (let round = 0; round < 15; round++) {
			const name = `n${round}`;
			// Odd rounds: a process that has stopped beating holds it.
			if (round % 2) await admin.send("SET", [`${prefix}:name:${name}`, "deadprocess"]);
			const results = await Promise.all(nodes.map((n) => n.presence.claim(name)));
			expect(results.filter(Boolean)).toHaveLength(1);
		}
		for (const n of nodes) await n.presence.close();
	});

	test("members entered on one process are listed on the others, and leave the lists on exit", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		await a.presence.enter("r", "Alice");
		await b.presence.enter("r", "bob");
		expect(await b.presence.members("r")).toEqual(["Alice"]);
		expect(await a.presence.members("r")).toEqual(["bob"]);
		a.presence.exit("r", "Alice");
		await until(async () => (await b.presence.members("r")).length === 0);
		// An exit from a process that no longer holds the entry does not remove another's.
		await b.presence.enter("s", "carol");
		a.presence.exit("s", "carol");
		await Bun.sleep(100);
		expect(await a.presence.members("s")).toEqual(["carol"]);
		await a.presence.close();
		await b.presence.close();
	});

	test("an exit and a release made while Redis is unreachable reach Redis once it is back", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		expect(await a.presence.claim("alice")).toBe(true);
		await a.presence.enter("r", "alice");
		await a.presence.enter("r", "ann");
		expect((await b.presence.members("r")).sort()).toEqual(["alice", "ann"]);
		// Every hubbub connection dropped (Redis itself and its data stay): the join failed, the socket closed.
		await admin.send("CLIENT", ["KILL", "TYPE", "normal"]);
		await admin.send("CLIENT", ["KILL", "TYPE", "pubsub"]);
		await until(() => a.link.health() === "degraded", 5000, "a sees Redis gone");
		a.presence.exit("r", "alice");
		a.presence.release("alice");
		await until(() => a.link.health() === "ok" && b.link.health() === "ok", 10_000, "both back");
		await until(async () => (await b.presence.members("r")).join() === "ann", 5000, "alice gone from r");
		expect(await b.presence.claim("alice")).toBe(true);
		await a.presence.close();
		await b.presence.close();
	});

	test("a process that stops beating is reaped once: its members leave, its rooms are told, its names are free", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		const c = await started(redisNode(prefix));
		expect(await a.presence.claim("victim")).toBe(true);
		await a.presence.enter("r", "victim");
		// a freezes: its link goes silent without leaving (as kill -9 would).
		(a.link as unknown as { closed: boolean; up: boolean }).up = false;
		await admin.send("DEL", [`${prefix}:proc:${a.link.id}`]);
		await until(() => b.announced.length + c.announced.length > 0, HEARTBEAT_TTL_MS + 5000);
		// Both survivors reap; one of them tells the room (it reaches the other through the room's channel).
		await Bun.sleep(2500);
		expect([...b.announced, ...c.announced]).toEqual([
			["r", { type: "presence", room: "r", name: "victim", online: false }],
		]);
		expect(await b.presence.members("r")).toEqual([]);
		expect(await b.presence.claim("victim")).toBe(true);
		(a.link as unknown as { up: boolean }).up = true;
		for (const n of [a, b, c]) await n.presence.close();
	}, 20_000);

	test("a stalled process that was reaped and runs again takes its names back and tells its rooms its members are back", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		expect(await a.presence.claim("sleeper")).toBe(true);
		await a.presence.enter("r", "sleeper");
		const stalled = a.link as unknown as { up: boolean };
		stalled.up = false;
		await admin.send("DEL", [`${prefix}:proc:${a.link.id}`]);
		await until(() => b.announced.length > 0, HEARTBEAT_TTL_MS + 5000, "reaped");
		expect(await b.presence.members("r")).toEqual([]);
		stalled.up = true;
		await until(() => a.announced.length > 0, 10_000, "back");
		expect(a.announced).toEqual([["r", { type: "presence", room: "r", name: "sleeper", online: true }]]);
		expect(await b.presence.members("r")).toEqual(["sleeper"]);
		expect(await b.presence.claim("sleeper")).toBe(false);
		await a.presence.close();
		await b.presence.close();
	}, 20_000);

	test("a process taken for dead that beats again registers its names and members again", async () => {
		const prefix = `test${++serial}`;
		const a = await started(redisNode(prefix));
		const b = await started(redisNode(prefix));
		expect(await a.presence.claim("sleeper")).toBe(true);
		await a.presence.enter("r", "sleeper");
		// Reaped while it stalled (SIGSTOP longer than the heartbeat), then it runs again.
		await admin.send("DEL", [`${prefix}:proc:${a.link.id}`, `${prefix}:name:sleeper`, `${prefix}:members:r`]);
		await until(async () => (await b.presence.members("r")).join() === "sleeper", 10_000);
		expect(await b.presence.claim("sleeper")).toBe(false);
		await a.presence.close();
		await b.presence.close();
	}, 20_000);
});
