// Cluster mode: three hubbub processes, one Redis, one PostgreSQL, acting as one server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { freePort } from "../bench/net.ts";
import type { Message, ServerFrame } from "../protocol.ts";
import { type Postgres, type Redis, startPostgres, startRedis } from "./engines.ts";
import {
	type Client,
	chatter,
	fromSource,
	ROOT,
	type Spawned,
	spawnServer,
	tempDir,
	twoOnOnePort,
} from "./helpers.ts";

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

function consecutive(seqs: number[], last: number): void {
	const first = seqs[0] ?? 1;
	expect(seqs).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i));
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
	const deadline = Date.now() + ms;
	while (!(await check())) {
		if (Date.now() > deadline) throw new Error("condition not met in time");
		await Bun.sleep(20);
	}
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

			// A name held on one process is refused on the others.
			const impostor = await chatter(ws(servers[1] as Spawned), "dave").catch(() => undefined);
			expect(impostor).toBeDefined();
			const again = await (await import("./helpers.ts")).Client.connect(ws(servers[2] as Spawned));
			expect(await again.hello("ALICE")).toMatchObject({ type: "error", code: "name_taken" });

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
				const c = await (await import("./helpers.ts")).Client.connect(ws(s2));
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
			const last = clients.at(-1) as Client;
			const members = (await last.join("r4", 0)).members;
			expect(members).toHaveLength(16);
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
			expect(late.port).toBe(redisPort);
		} finally {
			s.proc.kill("SIGKILL");
		}
	}, 60_000);
});
