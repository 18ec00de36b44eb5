// hubbub on PostgreSQL (--db postgres://…): chat guarantees on the shared store, and what a send does while the database is away.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Metrics } from "../lib/metrics.ts";
import { openStore } from "../server.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { chatter, fromSource, ROOT, spawnServer, startServer } from "./helpers.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

async function pgServer(url: string, config = {}) {
	const metrics = new Metrics();
	return startServer({ store: await openStore(url, metrics), metrics, config: { db: url, ...config } });
}

describe("on PostgreSQL", () => {
	test("several senders and joiners at once: every client sees one gap-free, duplicate-free sequence", async () => {
		const url = await pg.database();
		await using s = await pgServer(url, { sendRate: 10_000, sendBurst: 10_000, maxConnsPerIp: 1000 });
		const senders = await Promise.all([1, 2, 3, 4].map((i) => chatter(s.ws, `sender${i}`, "general")));
		const watcher = await chatter(s.ws, "watcher", "general");
		const perSender = 50;
		const total = perSender * senders.length;
		for (let i = 0; i < perSender; i++) {
			for (const [k, c] of senders.entries())
				c.send({ type: "send", room: "general", id: `s${k}-${i}`, text: `${k}:${i}` });
		}
		const joiners = [];
		for (let j = 0; j < 6; j++) {
			await watcher.expect("message", (m) => m.seq >= (j + 1) * 25, 10_000);
			const c = await chatter(s.ws, `joiner${j}`);
			const joined = await c.join("general", j % 2 === 0 ? j * 10 : undefined);
			joiners.push({ c, joined });
		}
		await watcher.expect("message", (m) => m.seq === total, 20_000);
		for (const c of senders) await c.expect("message", (m) => m.seq === total, 20_000);
		for (const { c, joined } of joiners) {
			if ((joined.messages.at(-1)?.seq ?? 0) < total)
				await c.expect("message", (m) => m.seq === total, 20_000);
		}
		for (const c of [watcher, ...senders, ...joiners.map((j) => j.c)]) {
			const seqs = c.frames.flatMap((f) =>
				f.type === "joined" ? f.messages.map((m) => m.seq) : f.type === "message" ? [f.seq] : [],
			);
			const first = seqs[0] ?? 1;
			const want = Array.from({ length: total - first + 1 }, (_, i) => first + i);
			if (JSON.stringify(seqs) !== JSON.stringify(want)) {
				console.log(
					"DEBUG",
					c === watcher
						? "watcher"
						: joiners.find((j) => j.c === c)
							? `joiner since=${JSON.stringify(
									joiners
										.find((j) => j.c === c)
										?.joined.messages.map((m) => m.seq)
										.slice(0, 3),
								)}`
							: "sender",
					JSON.stringify(
						c.frames.map((f) =>
							f.type === "joined"
								? `J${f.messages[0]?.seq}-${f.messages.at(-1)?.seq}`
								: f.type === "message"
									? f.seq
									: f.type,
						),
					),
				);
			}
			expect(seqs).toEqual(Array.from({ length: total - first + 1 }, (_, i) => first + i));
		}
		watcher.send({ type: "history", room: "general", limit: 200 });
		expect((await watcher.expect("history")).messages).toHaveLength(200);
	}, 60_000);

	test("PostgreSQL stopped: a send gets server_error with its ref; after a restart the same id is stored once", async () => {
		const url = await pg.database();
		await using s = await pgServer(url);
		const a = await chatter(s.ws, "alice", "general");
		a.send({ type: "send", room: "general", id: "m1", text: "before" });
		expect(await a.expect("message")).toMatchObject({ seq: 1 });
		pg.stop();
		try {
			a.send({ type: "send", room: "general", id: "m2", text: "during the outage" });
			expect(await a.next(() => true, 15_000)).toMatchObject({
				type: "error",
				code: "server_error",
				ref: "m2",
			});
			const health = await fetch(`${s.url}/healthz`);
			expect(health.status).toBe(503);
		} finally {
			pg.start();
		}
		a.send({ type: "send", room: "general", id: "m2", text: "during the outage" });
		expect(await a.expect("message", () => true, 15_000)).toMatchObject({ seq: 2, id: "m2" });
		a.send({ type: "send", room: "general", id: "m2", text: "during the outage" });
		expect(await a.expect("message")).toMatchObject({ seq: 2, id: "m2" });
		a.send({ type: "history", room: "general" });
		expect((await a.expect("history")).messages.map((m) => m.id)).toEqual(["m1", "m2"]);
		expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
	}, 60_000);

	test("the executable takes --db postgres://… and keeps history and epoch across restarts", async () => {
		const url = await pg.database();
		const args = fromSource("--db", url);
		const first = await spawnServer(args);
		let epoch: string;
		try {
			const a = await chatter(`ws://127.0.0.1:${first.port}/ws`, "alice", "general");
			epoch = (a.frames[0] as { epoch: string }).epoch;
			a.send({ type: "send", room: "general", text: "kept in postgres" });
			await a.expect("message");
		} finally {
			first.proc.kill("SIGKILL");
			await first.proc.exited;
		}
		const second = await spawnServer([...args.slice(0, -2), "--db", url]);
		try {
			const b = await chatter(`ws://127.0.0.1:${second.port}/ws`, "bob");
			expect((b.frames[0] as { epoch: string }).epoch).toBe(epoch);
			expect((await b.join("general")).messages.map((m) => m.text)).toEqual(["kept in postgres"]);
		} finally {
			second.proc.kill("SIGKILL");
		}
		const unreachable = Bun.spawn(
			[
				process.execPath,
				join(ROOT, "server.ts"),
				"--port",
				"0",
				"--db",
				"postgres://postgres@127.0.0.1:1/none",
			],
			{ stdout: "pipe", stderr: "pipe" },
		);
		expect(await unreachable.exited).toBe(2);
		expect(await new Response(unreachable.stderr).text()).toContain(
			"cannot open database postgres://postgres@127.0.0.1:1/none",
		);
	}, 60_000);
});
