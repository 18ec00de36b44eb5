// Delivery under faults, through real sockets: a lossy bus, a store that fails or stalls, sockets that leave mid-join, flapping members.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { LocalBus } from "../lib/bus-local.ts";
import { defaultConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { localPresence, type Presence } from "../lib/presence.ts";
import type { Page } from "../lib/store.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { CLOSE, type Message } from "../protocol.ts";
import { StartError, start } from "../server.ts";
import { type Client, chatter, ROOT, startServer, tempDir } from "./helpers.ts";
import { until } from "./until.ts";

const noLimits = { sendBurst: 100_000, sendRate: 100_000, maxConnsPerIp: 1000 };

/** A gate a store read waits at until the test opens it; `reached` resolves when a read arrives. */
class Gate {
	private open?: () => void;
	readonly opened = new Promise<void>((resolve) => {
		this.open = resolve;
	});
	private arrived?: () => void;
	readonly reached = new Promise<void>((resolve) => {
		this.arrived = resolve;
	});
	async pass(): Promise<void> {
		this.arrived?.();
		await this.opened;
	}
	release(): void {
		this.open?.();
	}
}

/** A real SQLite store whose reads a test can stall or make fail (a fake of the network, not of the engine). */
class FaultyStore extends SqliteStore {
	/** `after` reads that fail before one succeeds again (Infinity: until told otherwise). */
	failAfter = 0;
	gates: { latest?: Gate; since?: Gate } = {};
	closeFails = false;

	/** `latest` reads that fail before one succeeds again. */
	failLatest = 0;

	override async latest(room: string, limit: number): Promise<Page> {
		await this.gates.latest?.pass();
		if (this.failLatest > 0) {
			this.failLatest--;
			throw new Error("connection to the database lost");
		}
		return super.latest(room, limit);
	}
	override async since(room: string, since: number, limit: number): Promise<Page> {
		await this.gates.since?.pass();
		return super.since(room, since, limit);
	}
	override async after(room: string, after: number, limit: number): Promise<Page> {
		if (this.failAfter > 0) {
			this.failAfter--;
			throw new Error("connection to the database lost");
		}
		return super.after(room, after, limit);
	}
	override async close(): Promise<void> {
		await super.close();
		if (this.closeFails) throw new Error("close failed");
	}
}

/** The single-process bus, except that it loses the messages a test names (as Redis does while it is away). */
class LossyBus extends LocalBus {
	readonly lose = new Set<number>();
	override publish(message: Message): void {
		if (!this.lose.has(message.seq)) super.publish(message);
	}
}

/** A cluster's shared view of who is where, kept in memory: what another process would see. */
class SharedPresence implements Presence {
	readonly rooms = new Map<string, Set<string>>();
	async start(): Promise<void> {}
	async close(): Promise<void> {}
	async claim(): Promise<boolean> {
		return true;
	}
	release(): void {}
	async enter(room: string, name: string): Promise<boolean> {
		const names = this.rooms.get(room) ?? new Set();
		const news = !names.has(name);
		names.add(name);
		this.rooms.set(room, names);
		return news;
	}
	async exit(room: string, name: string): Promise<boolean> {
		this.rooms.get(room)?.delete(name);
		return true;
	}
	async members(room: string): Promise<string[]> {
		return [...(this.rooms.get(room) ?? [])];
	}
}

async function messages(c: Client, room: string, count: number): Promise<number[]> {
	const seqs: number[] = [];
	while (seqs.length < count) seqs.push((await c.expect("message", (m) => m.room === room, 10_000)).seq);
	return seqs;
}

function metric(text: string, name: string): number {
	const line = text.split("\n").find((l) => l.startsWith(`${name} `));
	return line ? Number(line.split(" ")[1]) : Number.NaN;
}

describe("store faults", () => {
	test("reads that fail while a gap is filled are retried: the process keeps serving and nothing is skipped", async () => {
		using dir = tempDir();
		const store = new FaultyStore(join(dir.path, "h.db"));
		const bus = new LossyBus();
		await using s = startServer({
			store,
			cluster: { bus, presence: localPresence },
			config: noLimits,
			hub: { feed: { retryMinMs: 20, retryMaxMs: 100 } },
		});
		const alice = await chatter(s.ws, "alice", "general");
		const bob = await chatter(s.ws, "bob", "general");
		bus.lose.add(2).add(3);
		store.failAfter = 3;
		for (let i = 1; i <= 4; i++) alice.send({ type: "send", room: "general", text: `m${i}` });
		expect(await messages(bob, "general", 4)).toEqual([1, 2, 3, 4]);
		const text = await (await fetch(`${s.url}/metrics`)).text();
		expect(metric(text, "hubbub_feed_read_failures_total")).toBe(3);
		expect(metric(text, "hubbub_feeds_lost_total")).toBe(0);
		// Still serving: a newcomer joins and talks.
		const carol = await chatter(s.ws, "carol");
		expect((await carol.join("general", 0)).messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
	});

	test("a store unreachable past the bound closes the room's sockets with 4000; they resume with since and lose nothing", async () => {
		using dir = tempDir();
		const store = new FaultyStore(join(dir.path, "h.db"));
		const bus = new LossyBus();
		await using s = startServer({
			store,
			cluster: { bus, presence: localPresence },
			config: noLimits,
			hub: { feed: { retryMinMs: 10, retryMaxMs: 20, giveUpMs: 200 } },
		});
		const alice = await chatter(s.ws, "alice", "general");
		const bob = await chatter(s.ws, "bob", "general");
		const elsewhere = await chatter(s.ws, "carol", "random");
		bus.lose.add(2);
		store.failAfter = Number.POSITIVE_INFINITY;
		for (let i = 1; i <= 3; i++) alice.send({ type: "send", room: "general", text: `m${i}` });
		expect(await messages(bob, "general", 1)).toEqual([1]);
		expect((await bob.closed).code).toBe(CLOSE.resume);
		expect((await alice.closed).code).toBe(CLOSE.resume);
		expect(elsewhere.isOpen).toBe(true);
		expect(bob.pending().filter((f) => f.type === "message")).toEqual([]);
		store.failAfter = 0;
		const back = await chatter(s.ws, "bob");
		expect((await back.join("general", 1)).messages.map((m) => m.seq)).toEqual([2, 3]);
		const text = await (await fetch(`${s.url}/metrics`)).text();
		expect(metric(text, "hubbub_feeds_lost_total")).toBe(1);
	});

	test("a listen failure closes the store it opened, and a failing close is logged, not a crash", async () => {
		await using first = startServer();
		using dir = tempDir();
		const store = new FaultyStore(join(dir.path, "h.db"));
		store.closeFails = true;
		const lines: string[] = [];
		const config = defaultConfig({
			port: first.server.port,
			host: "127.0.0.1",
			reusePort: false,
			auth: "none",
		});
		expect(() => start(config, { store, log: createLogger("error", (l) => lines.push(l)) })).toThrow(
			StartError,
		);
		await until(() => lines.some((l) => l.includes("store_close_failed")));
	});
});

describe("joins", () => {
	test("a socket that closes while its first join waits for the store leaves no member behind in the cluster", async () => {
		using dir = tempDir();
		const store = new FaultyStore(join(dir.path, "h.db"));
		const presence = new SharedPresence();
		await using s = startServer({ store, cluster: { bus: new LocalBus(), presence } });
		const gate = new Gate();
		store.gates.latest = gate;
		const ghost = await chatter(s.ws, "ghost");
		ghost.send({ type: "join", room: "general" });
		await gate.reached;
		ghost.close();
		await until(() => s.hub.connectionCount === 0);
		gate.release();
		await until(() => s.hub.roomCount === 0);
		store.gates.latest = undefined;
		const bob = await chatter(s.ws, "bob");
		expect((await bob.join("general")).members).toEqual(["bob"]);
		expect(await presence.members("general")).toEqual(["bob"]);
	});

	test("typing from a member whose resume is in flight still reaches the other member", async () => {
		using dir = tempDir();
		const store = new FaultyStore(join(dir.path, "h.db"));
		await using s = startServer({ store, config: noLimits });
		const alice = await chatter(s.ws, "alice", "general");
		const bob = await chatter(s.ws, "bob", "general");
		const gate = new Gate();
		store.gates.since = gate;
		alice.send({ type: "join", room: "general", since: 0 });
		await gate.reached;
		alice.send({ type: "typing", room: "general" });
		expect(await bob.expect("typing")).toMatchObject({ room: "general", name: "alice" });
		gate.release();
		await alice.expect("joined");
	});
});

describe("presence", () => {
	test("someone leaving and joining again and again shows once: no frame per toggle, one leave at the end", async () => {
		await using s = startServer({ config: noLimits, hub: { presenceGraceMs: 1000 } });
		const bob = await chatter(s.ws, "bob", "general");
		const alice = await chatter(s.ws, "alice", "general");
		expect(await bob.next()).toMatchObject({ type: "presence", name: "alice", online: true });
		// Within the leave rate's burst (10): the flapping itself is what is tested, not the rate limit.
		for (let i = 0; i < 8; i++) {
			alice.send({ type: "leave", room: "general" });
			await alice.expect("left");
			await alice.join("general");
		}
		alice.send({ type: "send", room: "general", text: "still here" });
		// Nothing about alice's toggling reached bob: the next frame is her message.
		expect(await bob.next()).toMatchObject({ type: "message", text: "still here" });
		alice.close();
		expect(await bob.next(() => true, 10_000)).toMatchObject({
			type: "presence",
			name: "alice",
			online: false,
		});
		bob.send({ type: "ping" });
		expect(await bob.next()).toEqual({ type: "pong" });
	});
});

describe("the process", () => {
	test("an unhandled rejection is logged and counted, and the process goes on", async () => {
		// Its own process: the test runner would take the rejection for a failed test.
		using dir = tempDir();
		const script = join(dir.path, "reject.ts");
		await Bun.write(
			script,
			`import { guardProcess } from ${JSON.stringify(join(ROOT, "server.ts"))};
			import { createLogger } from ${JSON.stringify(join(ROOT, "lib/log.ts"))};
			import { Metrics } from ${JSON.stringify(join(ROOT, "lib/metrics.ts"))};
			const metrics = new Metrics();
			guardProcess(createLogger("error"), metrics);
			void Promise.reject(new Error("nobody caught me"));
			await Bun.sleep(50);
			console.log(JSON.stringify({ counted: metrics.unhandledRejections.get() }));`,
		);
		const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
		const out = await new Response(proc.stdout).text();
		expect(await proc.exited).toBe(0);
		expect(out).toContain('"event":"unhandled_rejection"');
		expect(out).toContain("nobody caught me");
		expect(out).toContain('{"counted":1}');
	});
});

describe("errors", () => {
	test("a join the store cannot answer is refused with server_error naming its room; asking again later joins", async () => {
		using dir = tempDir();
		const store = new FaultyStore(join(dir.path, "h.db"));
		await using s = startServer({ store });
		const alice = await chatter(s.ws, "alice");
		store.failLatest = 1;
		alice.send({ type: "join", room: "dev" });
		expect(await alice.next()).toMatchObject({ type: "error", code: "server_error", room: "dev" });
		expect((await alice.join("dev")).room).toBe("dev");
	});
});

describe("repeated sends", () => {
	test("a repeat of a send the bus has not delivered yet is acknowledged in order, once, not ahead of the messages before it", async () => {
		const bus = new LossyBus();
		await using s = startServer({ config: noLimits, cluster: { bus, presence: localPresence } });
		const stored = (n: number) => until(() => s.metrics.messagesStored.get() === n);
		const alice = await chatter(s.ws, "alice", "general");
		const bob = await chatter(s.ws, "bob", "general");
		alice.send({ type: "send", room: "general", id: "a1", text: "one" });
		await alice.expect("message", (m) => m.id === "a1");
		// Seqs 2 and 3 are committed but late on the bus (as when another process committed them).
		bus.lose.add(2).add(3);
		bob.send({ type: "send", room: "general", id: "b1", text: "two" });
		await stored(2);
		alice.send({ type: "send", room: "general", id: "a2", text: "three" });
		await stored(3);
		// Alice repeats a2 (stored as 3) while her stream is still at 1; then the room moves on.
		alice.send({ type: "send", room: "general", id: "a2", text: "three" });
		bob.send({ type: "send", room: "general", id: "b2", text: "four" });
		expect(await messages(alice, "general", 3)).toEqual([2, 3, 4]);
		// Nothing after: the repeat was acknowledged by the in-order copy, not by a second one.
		alice.send({ type: "ping" });
		await alice.expect("pong");
		expect(alice.pending()).toEqual([]);
	});
});
