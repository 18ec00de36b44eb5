// The Bus contract, run against every implementation (this process alone, and Redis), and the Redis link's connections.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import type { Bus, BusHandler } from "../lib/bus.ts";
import { LocalBus } from "../lib/bus-local.ts";
import { RedisBus } from "../lib/bus-redis.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { Metrics } from "../lib/metrics.ts";
import { RedisLink } from "../lib/redis-link.ts";
import type { Message, ServerFrame } from "../protocol.ts";
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

/** A handler that keeps what it is handed. */
function recorder() {
	const got = {
		messages: [] as Message[],
		events: [] as [string, ServerFrame][],
		catchUps: [] as (string | undefined)[],
	};
	const handler: BusHandler = {
		deliver: (m) => got.messages.push(m),
		deliverEvent: (room, frame) => got.events.push([room, frame]),
		catchUp: (room) => got.catchUps.push(room),
	};
	return { got, handler };
}

let serial = 0;
const message = (room: string, seq: number, text = `t${seq}`): Message => ({
	type: "message",
	room,
	seq,
	from: "alice",
	text,
	ts: 1,
});
const typing = (room: string, name: string): ServerFrame => ({ type: "typing", room, name });

interface Node {
	bus: Bus;
	metrics: Metrics;
	link?: RedisLink;
}

interface Backend {
	/** A fresh cluster of its own; `node()` is one more process on it. */
	cluster(): { node(): Node };
}

function redisNode(prefix: string, url = redis.url, store = "s/e", log = quiet): Node & { link: RedisLink } {
	const metrics = new Metrics();
	const link = new RedisLink({ url, prefix, store, log, metrics, backoffMs: { min: 50, max: 200 } });
	return { bus: new RedisBus(link, metrics), metrics, link };
}

const backends: [string, Backend][] = [
	["local", { cluster: () => ({ node: () => ({ bus: new LocalBus(), metrics: new Metrics() }) }) }],
	[
		"redis",
		{
			cluster: () => {
				const prefix = `test${++serial}`;
				return { node: () => redisNode(prefix) };
			},
		},
	],
];

describe.each(backends)("%s bus", (_, backend) => {
	test("a published message reaches this process's handler once, at once; an event does not come back", async () => {
		const node = backend.cluster().node();
		const { got, handler } = recorder();
		await node.bus.start(handler);
		node.bus.watch("r");
		node.bus.publish(message("r", 1));
		expect(got.messages).toEqual([message("r", 1)]);
		node.bus.publishEvent("r", typing("r", "alice"));
		node.bus.publish(message("r", 2));
		await Bun.sleep(200);
		expect(got.messages).toEqual([message("r", 1), message("r", 2)]);
		expect(got.events).toEqual([]);
		expect(node.bus.health()).toBe("ok");
		await node.bus.close();
		await node.bus.close();
	});

	test("after close nothing more is handed over", async () => {
		const node = backend.cluster().node();
		const { got, handler } = recorder();
		await node.bus.start(handler);
		await node.bus.close();
		node.bus.publish(message("r", 1));
		expect(got.messages).toEqual([]);
	});
});

describe("redis bus across processes", () => {
	test("a room's messages and events reach every process watching it, once, and no other process", async () => {
		const cluster = backends[1]?.[1].cluster() as ReturnType<Backend["cluster"]>;
		const [a, b, c] = [cluster.node(), cluster.node(), cluster.node()];
		const [ra, rb, rc] = [recorder(), recorder(), recorder()];
		await a.bus.start(ra.handler);
		await b.bus.start(rb.handler);
		await c.bus.start(rc.handler);
		a.bus.watch("r1");
		b.bus.watch("r1");
		c.bus.watch("r2");
		// A subscription that becomes live asks its room to catch up: what was published before it never arrived.
		await until(() => rb.got.catchUps.includes("r1") && rc.got.catchUps.includes("r2"));
		a.bus.publish(message("r1", 1));
		a.bus.publishEvent("r1", typing("r1", "alice"));
		a.bus.publish(message("r2", 1));
		await until(() => rc.got.messages.length === 1 && rb.got.events.length === 1);
		expect(rb.got.messages).toEqual([message("r1", 1)]);
		expect(rb.got.events).toEqual([["r1", typing("r1", "alice")]]);
		expect(rc.got.messages).toEqual([message("r2", 1)]);
		expect(rc.got.events).toEqual([]);
		expect(ra.got.events).toEqual([]);
		expect(ra.got.messages).toEqual([message("r1", 1), message("r2", 1)]);
		// c read only r2's traffic.
		expect(c.metrics.busReceived.get()).toBe(1);
		for (const n of [a, b, c]) await n.bus.close();
	});

	test("unwatch stops a room's traffic; watching it again resumes it", async () => {
		const cluster = backends[1]?.[1].cluster() as ReturnType<Backend["cluster"]>;
		const [a, b] = [cluster.node(), cluster.node()];
		const [ra, rb] = [recorder(), recorder()];
		await a.bus.start(ra.handler);
		await b.bus.start(rb.handler);
		b.bus.watch("r");
		b.bus.watch("marker");
		await until(() => rb.got.catchUps.includes("r") && rb.got.catchUps.includes("marker"));
		a.bus.publish(message("r", 1));
		await until(() => rb.got.messages.length === 1);
		b.bus.unwatch("r");
		await until(() => b.link?.listening === 1);
		a.bus.publish(message("r", 2));
		a.bus.publish(message("marker", 1));
		await until(() => rb.got.messages.some((m) => m.room === "marker"));
		expect(rb.got.messages.map((m) => `${m.room}${m.seq}`)).toEqual(["r1", "marker1"]);
		b.bus.watch("r");
		await until(() => rb.got.catchUps.filter((r) => r === "r").length === 2);
		a.bus.publish(message("r", 3));
		await until(() => rb.got.messages.length === 3);
		expect(rb.got.messages.at(-1)).toEqual(message("r", 3));
		for (const n of [a, b]) await n.bus.close();
	});

	test("a process that stops watching every room and then watches one again gets its traffic", async () => {
		const cluster = backends[1]?.[1].cluster() as ReturnType<Backend["cluster"]>;
		const [a, b] = [cluster.node(), cluster.node()];
		const [ra, rb] = [recorder(), recorder()];
		await a.bus.start(ra.handler);
		await b.bus.start(rb.handler);
		b.bus.watch("r");
		await until(() => rb.got.catchUps.length === 1);
		b.bus.unwatch("r");
		await until(() => b.link?.listening === 0);
		b.bus.watch("r");
		await until(() => rb.got.catchUps.length === 2);
		a.bus.publish(message("r", 1));
		await until(() => rb.got.messages.length === 1);
		expect(rb.got.messages).toEqual([message("r", 1)]);
		for (const n of [a, b]) await n.bus.close();
	});

	test("a watch and an unwatch in quick succession leave the subscription as the last call says", async () => {
		const node = redisNode(`test${++serial}`);
		await node.bus.start(recorder().handler);
		for (let i = 0; i < 20; i++) {
			node.bus.watch("r");
			node.bus.unwatch("r");
		}
		node.bus.watch("s");
		node.bus.watch("r");
		// Dropped while its subscribe is on the wire.
		await Bun.sleep(0);
		node.bus.unwatch("s");
		await until(async () => {
			const channels = (await admin.send("PUBSUB", ["CHANNELS", `${node.link.prefix}:*`])) as string[];
			return channels.length === 1 && channels[0] === node.link.roomChannel("r");
		});
		await node.bus.close();
	});
});

/** Connections to the test Redis made as `user`. */
async function connectionsOf(user: string): Promise<number> {
	const list = (await admin.send("CLIENT", ["LIST"])) as string;
	return list.split("\n").filter((line) => line.includes(` user=${user} `)).length;
}

describe("redis link connections", () => {
	test("a subscribe that fails leaves no connection behind, however often it is retried", async () => {
		// A user that may connect and run commands but not subscribe: every attempt fails at its SUBSCRIBE.
		await admin.send("ACL", ["SETUSER", "nosub", "on", ">pw", "~*", "resetchannels", "+@all"]);
		const attempts: string[] = [];
		const log = createLogger("warn", (line) => attempts.push(line));
		const node = redisNode(`test${++serial}`, redis.url.replace("redis://", "redis://nosub:pw@"), "s/e", log);
		node.bus.watch("r");
		await node.bus.start(recorder().handler);
		const failed = () => attempts.filter((l) => l.includes("redis_unreachable")).length;
		for (let seen = 1; seen <= 6; seen++) {
			await until(() => failed() >= seen, 10_000, `attempt ${seen}`);
			// At most the attempt in progress holds connections.
			expect(await connectionsOf("nosub")).toBeLessThanOrEqual(2);
		}
		expect(failed()).toBeGreaterThanOrEqual(6);
		expect(attempts.some((l) => l.includes("NOPERM") || l.includes("permission"))).toBe(true);
		expect(node.bus.health()).toBe("degraded");
		await node.bus.close();
		await until(async () => (await connectionsOf("nosub")) === 0, 5000, "no connection left");
	});

	test("close() at any point of connecting leaves no connection open", async () => {
		await admin.send("ACL", ["SETUSER", "racer", "on", ">pw", "~*", "&*", "+@all"]);
		const url = redis.url.replace("redis://", "redis://racer:pw@");
		for (const delay of [0, 1, 2, 3, 5, 8, 13]) {
			const node = redisNode(`test${++serial}`, url);
			node.bus.watch("r");
			const started = node.bus.start(recorder().handler).catch(() => {});
			await Bun.sleep(delay);
			await node.bus.close();
			await started;
			await until(async () => (await connectionsOf("racer")) === 0, 5000, `closed after ${delay} ms`);
		}
		// And they stay closed.
		await Bun.sleep(300);
		expect(await connectionsOf("racer")).toBe(0);
	});

	test("a Redis restart: the link reconnects, subscribes again to what it watches and asks to catch up", async () => {
		await using own = await startRedis();
		const prefix = `test${++serial}`;
		const a = redisNode(prefix, own.url);
		const b = redisNode(prefix, own.url);
		const [ra, rb] = [recorder(), recorder()];
		await a.bus.start(ra.handler);
		await b.bus.start(rb.handler);
		b.bus.watch("r");
		await until(() => rb.got.catchUps.includes("r"));
		await own.stop();
		await until(() => b.bus.health() === "degraded");
		a.bus.publish(message("r", 1));
		await own.start();
		// After the reconnect: a catch-up of every room, then live traffic again.
		await until(() => rb.got.catchUps.includes(undefined) && a.bus.health() === "ok", 15_000);
		a.bus.publish(message("r", 2));
		await until(() => rb.got.messages.some((m) => m.seq === 2));
		// Seq 1, published while the link was down, may come first: it is published again once the link is back.
		expect(rb.got.messages.filter((m) => m.seq !== 1)).toEqual([message("r", 2)]);
		expect(rb.got.messages.filter((m) => m.seq === 1).length).toBeLessThanOrEqual(1);
		expect(b.metrics.redisReconnects.get()).toBe(1);
		for (const n of [a, b]) await n.bus.close();
	}, 30_000);

	test("what a process committed while its own link was down reaches the others once it is back (F6)", async () => {
		const prefix = `test${++serial}`;
		await admin.send("ACL", ["SETUSER", "cutoff", "on", ">pw", "~*", "&*", "+@all"]);
		const a = redisNode(prefix, redis.url.replace("redis://", "redis://cutoff:pw@"));
		const b = redisNode(prefix);
		const [ra, rb] = [recorder(), recorder()];
		await a.bus.start(ra.handler);
		await b.bus.start(rb.handler);
		b.bus.watch("r");
		await until(() => rb.got.catchUps.includes("r"));
		a.bus.publish(message("r", 1));
		await until(() => rb.got.messages.length === 1);
		// Only a loses Redis; b stays subscribed and hears nothing until a is back.
		await admin.send("CLIENT", ["KILL", "USER", "cutoff"]);
		await until(() => a.bus.health() === "degraded");
		a.bus.publish(message("r", 2));
		a.bus.publish(message("r", 3));
		a.bus.publishEvent("r", { type: "presence", room: "r", name: "ann", online: true });
		a.bus.publishEvent("r", { type: "presence", room: "r", name: "ann", online: false });
		a.bus.publishEvent("r", { type: "typing", room: "r", name: "ann" });
		// The room then stays quiet: nothing else would make b look.
		await until(() => rb.got.messages.length === 2, 10_000, "the newest message republished");
		expect(rb.got.messages.at(-1)).toEqual(message("r", 3));
		await until(() => rb.got.events.length === 1, 5000, "the last presence republished");
		expect(rb.got.events).toEqual([["r", { type: "presence", room: "r", name: "ann", online: false }]]);
		for (const n of [a, b]) await n.bus.close();
	});

	test("a frozen Redis (SIGSTOP): commands give up within the timeout, the link says degraded, and comes back after SIGCONT", async () => {
		await using own = await startRedis();
		const metrics = new Metrics();
		const link = new RedisLink({
			url: own.url,
			prefix: `test${++serial}`,
			store: "s/e",
			log: quiet,
			metrics,
			commandTimeoutMs: 500,
			backoffMs: { min: 50, max: 200 },
		});
		const bus = new RedisBus(link, metrics);
		const { got, handler } = recorder();
		await bus.start(handler);
		expect(bus.health()).toBe("ok");
		process.kill(own.pid() as number, "SIGSTOP");
		try {
			const t0 = performance.now();
			expect(await link.send("PING", [])).toBeUndefined();
			expect(performance.now() - t0).toBeLessThan(5000);
			expect(bus.health()).toBe("degraded");
		} finally {
			process.kill(own.pid() as number, "SIGCONT");
		}
		await until(() => bus.health() === "ok", 15_000, "back");
		expect(await link.send("PING", [])).toBe("PONG");
		expect(got.catchUps).toContain(undefined);
		await bus.close();
	}, 30_000);
});
