// Cluster mode: three hubbub processes, one Redis, one PostgreSQL, acting as one server.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../bench/net.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import type { Message, ServerFrame } from "../protocol.ts";
import { type Postgres, type Redis, startPostgres, startRedis } from "./engines.ts";
import {
	Client,
	chatter,
	fromSource,
	ROOT,
	type Spawned,
	spawnServer,
	tempDir,
	twoOnOnePort,
} from "./helpers.ts";
import { until } from "./until.ts";

let pg: Postgres;
let redis: Redis;

beforeAll(async () => {
	pg = await startPostgres();
	redis = await startRedis();
}, 60_000);
afterAll(async () => {
	await redis?.[Symbol.asyncDispose]();
	pg?.[Symbol.dispose]();
});

async function cluster(count: number, db: string, ...flags: string[]): Promise<Spawned[]> {
	// A room of its own per test: the Redis is shared by the whole file.
	return Promise.all(
		Array.from({ length: count }, () =>
			spawnServer(
				fromSource(
					"--db",
					db,
					"--redis",
					redis.url,
					...["--send-rate", "1000", "--send-burst", "1000", ...flags],
				),
			),
		),
	);
}

const ws = (s: Spawned) => `ws://127.0.0.1:${s.port}/ws`;

function seqsOf(c: Client, room: string): number[] {
	return c.frames.flatMap((f: ServerFrame) =>
		f.type === "joined" && f.room === room
			? f.messages.map((m) => m.seq)
			: f.type === "message" && f.room === room
				? [f.seq]
				: [],
	);
}

/** The members a client knows of in `room`: its `joined` list, then every presence frame after it. */
function membersSeen(c: Client, room: string): string[] {
	const names = new Set<string>();
	for (const f of c.frames) {
		if (f.type === "joined" && f.room === room) for (const n of f.members) names.add(n);
		if (f.type === "presence" && f.room === room) {
			if (f.online) names.add(f.name);
			else names.delete(f.name);
		}
	}
	return [...names].sort();
}

function consecutive(seqs: number[], last: number): void {
	const first = seqs[0] ?? 1;
	expect(seqs).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i));
}

describe("three processes, one Redis, one PostgreSQL", () => {
	test("clients on different processes chat as in one server: every message once, one order, one member list, one name", async () => {
		const servers = await cluster(3, await pg.database());
		try {
			const [a, b, c] = await Promise.all(
				servers.map((s, i) => chatter(ws(s), ["alice", "bob", "carol"][i] as string)),
			);
			const alice = a as Client;
			const bob = b as Client;
			const carol = c as Client;
			await alice.join("r1");
			await bob.join("r1");
			const joinedCarol = await carol.join("r1");
			expect([...joinedCarol.members].sort()).toEqual(["alice", "bob", "carol"]);
			await alice.expect("presence", (p) => p.name === "carol" && p.online);
			await bob.expect("presence", (p) => p.name === "carol" && p.online);

			// A name held on one process is refused on every process, in any case.
			for (const s of servers)
				for (const name of ["alice", "ALICE", "Carol"]) {
					const impostor = await Client.connect(ws(s));
					expect(await impostor.hello(name)).toMatchObject({ type: "error", code: "name_taken" });
					impostor.close();
				}

			// Everyone talks at once, on every process, while others join on every process, with and without since.
			const rounds = 8;
			const perRound = 5;
			const joiners: { c: Client; first: number }[] = [];
			for (let r = 0; r < rounds; r++) {
				for (let i = 0; i < perRound; i++) {
					for (const [k, who] of [alice, bob, carol].entries()) {
						who.send({ type: "send", room: "r1", id: `${k}-${r}-${i}`, text: `${k}:${r}:${i}` });
					}
				}
				const c = await chatter(ws(servers[r % 3] as Spawned), `joiner${r}`);
				// A since a client could really hold: a little behind what alice has seen so far.
				const seenByAlice = Math.max(0, ...seqsOf(alice, "r1"));
				const since = r % 2 === 0 ? Math.max(0, seenByAlice - 3) : undefined;
				const joined = await c.join("r1", since);
				joiners.push({ c, first: since === undefined ? (joined.messages[0]?.seq ?? 1) : since + 1 });
			}
			const total = rounds * perRound * 3;
			const seen = await Promise.all(
				[alice, bob, carol].map(async (who) => {
					await who.expect("message", (m) => m.seq === total, 20_000);
					return who.frames.filter((f): f is Message => f.type === "message" && f.room === "r1");
				}),
			);
			for (const list of seen)
				consecutive(
					list.map((m) => m.seq),
					total,
				);
			expect(seen[1]).toEqual(seen[0] as Message[]);
			expect(seen[2]).toEqual(seen[0] as Message[]);
			for (const { c, first } of joiners) {
				if (!seqsOf(c, "r1").includes(total)) await c.expect("message", (m) => m.seq === total, 20_000);
				const seqs = seqsOf(c, "r1");
				expect(seqs[0]).toBe(first);
				consecutive(seqs, total);
			}

			// Typing crosses processes too.
			bob.send({ type: "typing", room: "r1" });
			expect(await carol.expect("typing")).toMatchObject({ name: "bob" });

			// A joiner on any process, with and without since, continues the one sequence.
			const late = await chatter(ws(servers[0] as Spawned), "erin");
			const resumed = await late.join("r1", 100);
			expect(resumed.messages.map((m) => m.seq)).toEqual(
				Array.from({ length: total - 100 }, (_, i) => 101 + i),
			);
			carol.send({ type: "send", room: "r1", text: "after all that" });
			expect(await late.expect("message")).toMatchObject({ seq: total + 1, from: "carol" });
		} finally {
			for (const s of servers) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("kill -9 of a process: its members leave every list within 10 s; its clients resume elsewhere and lose nothing", async () => {
		const servers = await cluster(3, await pg.database());
		const [s0, s1, s2] = servers as [Spawned, Spawned, Spawned];
		try {
			const watcher = await chatter(ws(s0), "watcher", "r2");
			const victim = await chatter(ws(s1), "victim", "r2");
			const other = await chatter(ws(s2), "other", "r2");
			await watcher.expect("presence", (p) => p.name === "other" && p.online);
			for (let i = 1; i <= 10; i++) victim.send({ type: "send", room: "r2", id: `v${i}`, text: `v${i}` });
			await victim.expect("message", (m) => m.id === "v10");
			const acked = victim.frames.filter((f): f is Message => f.type === "message");
			s1.proc.kill("SIGKILL");
			const killedAt = performance.now();
			await watcher.expect("presence", (p) => p.name === "victim" && !p.online, 15_000);
			await other.expect("presence", (p) => p.name === "victim" && !p.online, 15_000);
			const gone = (performance.now() - killedAt) / 1000;
			expect(gone).toBeLessThan(10);
			// The victim's client comes back on another process, under the same name, and misses nothing.
			await until(async () => {
				const c = await Client.connect(ws(s2));
				const answer = await c.hello("victim");
				c.close();
				return answer.type === "welcome";
			}, 10_000);
			const back = await chatter(ws(s2), "victim");
			const joined = await back.join("r2", 0);
			expect(joined.messages).toEqual(acked);
			expect([...joined.members].sort()).toEqual(["other", "victim", "watcher"]);
		} finally {
			for (const s of servers) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("a process stopped past its heartbeat (SIGSTOP) is taken for dead; once it runs again its members are back everywhere", async () => {
		const servers = await cluster(2, await pg.database());
		const [s0, s1] = servers as [Spawned, Spawned];
		try {
			const watcher = await chatter(ws(s0), "watcher", "r5");
			const sleeper = await chatter(ws(s1), "sleeper", "r5");
			await watcher.expect("presence", (p) => p.name === "sleeper" && p.online);
			s1.proc.kill("SIGSTOP");
			await watcher.expect("presence", (p) => p.name === "sleeper" && !p.online, 15_000);
			// Its name was let go while it looked dead; nobody took it.
			s1.proc.kill("SIGCONT");
			await watcher.expect("presence", (p) => p.name === "sleeper" && p.online, 15_000);
			const again = await Client.connect(ws(s0));
			expect(await again.hello("sleeper")).toMatchObject({ type: "error", code: "name_taken" });
			sleeper.send({ type: "send", room: "r5", text: "I was only asleep" });
			expect(await watcher.expect("message")).toMatchObject({ from: "sleeper", text: "I was only asleep" });
			const late = await chatter(ws(s0), "late");
			expect([...(await late.join("r5")).members].sort()).toEqual(["late", "sleeper", "watcher"]);
		} finally {
			for (const s of servers) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("Redis restarted during a stream: nothing acknowledged is lost, and remote clients get what they missed, in order, without reconnecting", async () => {
		const servers = await cluster(2, await pg.database());
		const [s0, s1] = servers as [Spawned, Spawned];
		try {
			const sender = await chatter(ws(s0), "sender", "r3");
			const remote = await chatter(ws(s1), "remote", "r3");
			await sender.expect("presence", (p) => p.name === "remote");
			let sent = 0;
			const send = (n: number) => {
				for (let i = 0; i < n; i++)
					sender.send({ type: "send", room: "r3", id: `m${++sent}`, text: `m${sent}` });
			};
			send(20);
			await remote.expect("message", (m) => m.seq === 20);
			await redis.stop();
			send(20);
			// Acknowledged to the sender while Redis is down: stored, and seen on the sender's own process.
			await sender.expect("message", (m) => m.seq === 40, 10_000);
			const health = await (await fetch(`http://127.0.0.1:${s0.port}/healthz`)).json();
			expect(health).toMatchObject({ status: "degraded", redis: false, database: true });
			await redis.start();
			await remote.expect("message", (m) => m.seq === 40, 20_000);
			send(5);
			await remote.expect("message", (m) => m.seq === 45, 10_000);
			await sender.expect("message", (m) => m.seq === 45, 10_000);
			expect(remote.isOpen).toBe(true);
			consecutive(seqsOf(remote, "r3"), 45);
			consecutive(seqsOf(sender, "r3"), 45);
			await until(
				async () => (await (await fetch(`http://127.0.0.1:${s1.port}/healthz`)).json()).status === "ok",
				10_000,
			);
		} finally {
			for (const s of servers) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("two processes sharing one SQLite file and one port (--reuse-port): the same chat guarantees", async () => {
		using dir = tempDir();
		const { port, servers } = await twoOnOnePort(
			[process.execPath, join(ROOT, "server.ts")],
			join(dir.path, "shared.db"),
			redis.url,
			...["--send-rate", "1000", "--send-burst", "1000"],
		);
		try {
			const url = `ws://127.0.0.1:${port}/ws`;
			const clients = await Promise.all(Array.from({ length: 16 }, (_, i) => chatter(url, `p${i}`, "r4")));
			// Linux spread the connections over both processes.
			for (const s of servers)
				expect(s.logs.filter((l) => l.event === "connection_open").length).toBeGreaterThan(0);
			// Joined at the same time on two processes, every client still learns of all 16: from its
			// `joined` list or a presence frame after it, none lost between two processes' joins.
			const everyone = clients.map((_, i) => `p${i}`).sort();
			for (const c of clients) {
				await until(() => membersSeen(c, "r4").length === 16, 10_000);
				expect(membersSeen(c, "r4")).toEqual(everyone);
			}
			for (const [i, c] of clients.entries())
				for (let k = 0; k < 10; k++) c.send({ type: "send", room: "r4", id: `${i}-${k}`, text: `${i}:${k}` });
			const total = 160;
			const lists = await Promise.all(
				clients.map(async (c) => {
					await c.expect("message", (m) => m.seq === total, 20_000);
					return c.frames
						.filter((f): f is Message => f.type === "message" && f.room === "r4")
						.map((m) => `${m.seq}:${m.text}`);
				}),
			);
			for (const list of lists) expect(list).toEqual(lists[0] as string[]);
			consecutive(
				(lists[0] as string[]).map((x) => Number(x.split(":")[0])),
				total,
			);
		} finally {
			for (const s of servers) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("--redis with no Redis at start-up: it starts, says degraded, chats locally, and joins the cluster once Redis is there", async () => {
		using dir = tempDir();
		const redisPort = await freePort();
		const s = await spawnServer(
			fromSource("--db", join(dir.path, "h.db"), "--redis", `redis://127.0.0.1:${redisPort}`),
		);
		try {
			expect(s.logs.some((l) => l.event === "redis_unreachable" && l.level === "warn")).toBe(true);
			expect(await (await fetch(`${s.url}/healthz`)).json()).toMatchObject({
				status: "degraded",
				redis: false,
			});
			const a = await chatter(ws(s), "alice", "general");
			a.send({ type: "send", room: "general", text: "works without redis" });
			expect(await a.expect("message")).toMatchObject({ seq: 1 });
			await using late = await startRedis(redisPort);
			await until(async () => (await (await fetch(`${s.url}/healthz`)).json()).status === "ok", 15_000);
			expect(s.logs.some((l) => l.event === "redis_connected")).toBe(true);
			// Part of the cluster now: a second process on the same database and Redis chats with it live.
			const second = await spawnServer(fromSource("--db", join(dir.path, "h.db"), "--redis", late.url));
			try {
				const b = await chatter(ws(second), "bob", "general");
				expect(await a.expect("presence", (p) => p.name === "bob")).toMatchObject({ online: true });
				a.send({ type: "send", room: "general", text: "now through redis" });
				expect(await b.expect("message")).toMatchObject({ seq: 2, from: "alice", text: "now through redis" });
				expect(b.isOpen).toBe(true);
			} finally {
				second.proc.kill("SIGKILL");
			}
		} finally {
			s.proc.kill("SIGKILL");
		}
	}, 60_000);
});

/** Scrapes one counter from a process's /metrics. */
async function counter(s: Spawned, name: string): Promise<number> {
	const text = await (await fetch(`${s.url}/metrics`)).text();
	const line = text.split("\n").find((l) => l.startsWith(`${name} `));
	if (!line) throw new Error(`${name} not in /metrics`);
	return Number(line.split(" ")[1]);
}

/** A database file that already exists, and a byte-for-byte copy of it (the same id and epoch), as an operator's `cp` makes. */
async function databaseAndCopy(dir: string): Promise<[string, string]> {
	const first = join(dir, "prod.db");
	const copy = join(dir, "staging.db");
	const store = new SqliteStore(first);
	await store.close();
	copyFileSync(first, copy);
	return [first, copy];
}

describe("deployments sharing one Redis server", () => {
	async function deployment(db: string, redisUrl: string, ...flags: string[]): Promise<Spawned[]> {
		return Promise.all([0, 1].map(() => spawnServer(fromSource("--db", db, "--redis", redisUrl, ...flags))));
	}

	/** Two deployments chat in the same room names with the same user names; neither sees the other. */
	async function neverMeet(one: Spawned[], two: Spawned[]): Promise<void> {
		const [a1, a2] = one as [Spawned, Spawned];
		const [b1, b2] = two as [Spawned, Spawned];
		const alice = await chatter(ws(a1), "alice", "general");
		const bob = await chatter(ws(a2), "bob", "general");
		await alice.expect("presence", (p) => p.name === "bob" && p.online);
		// The same name is free on the other deployment: names are its own.
		const alice2 = await chatter(ws(b1), "alice", "general");
		const carol = await chatter(ws(b2), "carol", "general");
		await alice2.expect("presence", (p) => p.name === "carol" && p.online);
		alice.send({ type: "send", room: "general", text: "secret production text" });
		expect(await bob.expect("message")).toMatchObject({ seq: 1, text: "secret production text" });
		bob.send({ type: "typing", room: "general" });
		await alice.expect("typing", (t) => t.name === "bob");
		carol.send({ type: "send", room: "general", text: "staging text" });
		expect(await alice2.expect("message")).toMatchObject({ seq: 1, text: "staging text" });
		// A last frame on each side, after all of the other's: once it is in, nothing else is on its way.
		alice.send({ type: "send", room: "general", text: "production marker" });
		carol.send({ type: "send", room: "general", text: "staging marker" });
		await bob.expect("message", (m) => m.text === "production marker");
		await alice2.expect("message", (m) => m.text === "staging marker");
		for (const c of [alice, bob]) {
			expect(JSON.stringify(c.frames)).not.toContain("staging");
			expect(JSON.stringify(c.frames)).not.toContain("carol");
			expect(membersSeen(c, "general")).toEqual(["alice", "bob"]);
		}
		for (const c of [alice2, carol]) {
			expect(JSON.stringify(c.frames)).not.toContain("production");
			expect(JSON.stringify(c.frames)).not.toContain("bob");
			expect(membersSeen(c, "general")).toEqual(["alice", "carol"]);
		}
	}

	test("copies of one database on two Redis database numbers never see each other's messages, presence or names", async () => {
		using dir = tempDir();
		const [prod, staging] = await databaseAndCopy(dir.path);
		const one = await deployment(prod, `${redis.url}/1`);
		const two = await deployment(staging, `${redis.url}/2`);
		try {
			await neverMeet(one, two);
		} finally {
			for (const s of [...one, ...two]) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("copies of one database on one Redis database, each with its own --redis-prefix, never see each other", async () => {
		using dir = tempDir();
		const [prod, staging] = await databaseAndCopy(dir.path);
		const one = await deployment(prod, redis.url, "--redis-prefix", "prod");
		const two = await deployment(staging, redis.url, "--redis-prefix", "staging");
		try {
			await neverMeet(one, two);
		} finally {
			for (const s of [...one, ...two]) s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("a process refuses, with exit status 2 and a sentence saying why, to join a bus whose processes use another database", async () => {
		using dir = tempDir();
		const running = await spawnServer(
			fromSource("--db", join(dir.path, "a.db"), "--redis", redis.url, "--redis-prefix", "shared"),
		);
		try {
			const other = Bun.spawn(
				fromSource("--db", join(dir.path, "b.db"), "--redis", redis.url, "--redis-prefix", "shared"),
				{ cwd: ROOT, stdout: "pipe", stderr: "pipe" },
			);
			expect(await other.exited).toBe(2);
			const stderr = await new Response(other.stderr).text();
			expect(stderr).toContain('Redis prefix "shared"');
			expect(stderr).toContain("another database");
			expect(stderr).toContain("--redis-prefix");
			// The running one never noticed.
			expect(await (await fetch(`${running.url}/healthz`)).json()).toMatchObject({ status: "ok" });
		} finally {
			running.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("a restored copy of the database (same id, new epoch) is refused beside the processes still serving the old one", async () => {
		using dir = tempDir();
		const [prod, restored] = await databaseAndCopy(dir.path);
		const db = new Database(restored);
		db.run("UPDATE meta SET value = 'restored' WHERE key = 'epoch'");
		db.close();
		const running = await spawnServer(fromSource("--db", prod, "--redis", redis.url));
		try {
			const other = Bun.spawn(fromSource("--db", restored, "--redis", redis.url), {
				cwd: ROOT,
				stdout: "pipe",
				stderr: "pipe",
			});
			expect(await other.exited).toBe(2);
			expect(await new Response(other.stderr).text()).toMatch(
				/Redis prefix "hubbub:[a-z0-9]+" serve another database/,
			);
		} finally {
			running.proc.kill("SIGKILL");
		}
	}, 60_000);
});

describe("per-room channels", () => {
	test("four processes serving disjoint rooms: one process's bus bytes stay flat as the others' traffic grows", async () => {
		const servers = await cluster(4, await pg.database());
		const [p0, p1] = servers as [Spawned, Spawned];
		try {
			const talkers = await Promise.all(servers.map((s, i) => chatter(ws(s), `u${i}`, `room${i}`)));
			// One room served by p0 and p1: the bus does reach p0 for rooms it serves.
			const here = await chatter(ws(p0), "here", "shared");
			const there = await chatter(ws(p1), "there", "shared");
			await here.expect("presence", (p) => p.name === "there");
			let markers = 0;
			/** A message from p1 in the shared room, after everything p1 published before: p0 has read all it will. */
			const marker = async () => {
				there.send({ type: "send", room: "shared", text: "marker" });
				markers++;
				await here.expect("message", (m) => m.seq === markers);
			};
			await marker();
			const before = await counter(p0, "hubbub_bus_received_bytes_total");
			await marker();
			const oneMarker = (await counter(p0, "hubbub_bus_received_bytes_total")) - before;
			expect(oneMarker).toBeGreaterThan(0);

			let sent = 0;
			const others = talkers.slice(1);
			const talk = async (n: number) => {
				for (const c of others)
					for (let i = 0; i < n; i++)
						c.send({ type: "send", room: `room${talkers.indexOf(c)}`, text: "x".repeat(200) });
				sent += n;
				await Promise.all(others.map((c) => c.expect("message", (m) => m.seq === sent, 20_000)));
			};
			const published = () =>
				Promise.all(servers.slice(1).map((s) => counter(s, "hubbub_bus_published_total")));
			for (const n of [20, 80]) {
				const start = await counter(p0, "hubbub_bus_received_bytes_total");
				const was = await published();
				await talk(n);
				await marker();
				const grew = (await counter(p0, "hubbub_bus_received_bytes_total")) - start;
				// The others published n more each (p1 the marker too), and p0 read the marker only.
				expect((await published()).map((x, i) => x - (was[i] as number))).toEqual([n + 1, n, n]);
				expect(grew).toBeLessThanOrEqual(oneMarker + 2);
			}
			// p0 listens to its two rooms' channels only.
			expect(await counter(p0, "hubbub_bus_channels")).toBe(2);
			// and lets a room's channel go when its last member there leaves.
			here.send({ type: "leave", room: "shared" });
			await here.expect("left");
			await until(async () => (await counter(p0, "hubbub_bus_channels")) === 1, 10_000);
		} finally {
			for (const s of servers) s.proc.kill("SIGKILL");
		}
	}, 60_000);
});
