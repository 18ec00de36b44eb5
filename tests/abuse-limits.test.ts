// The cost model (issue 10, findings 1, 2 and 8): floods are refused then closed, large answers draw on a byte budget, strikes are forgiven, silence before hello is closed, and a page never meets any of it.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { SqliteStore } from "../lib/store-sqlite.ts";
import type { ClientFrameType } from "../protocol.ts";
import { Client, chatter, fromSource, type Spawned, spawnServer, startServer, tempDir } from "./helpers.ts";

const wsOf = (s: Spawned) => `ws://127.0.0.1:${s.port}/ws`;

function percentile(values: number[], p: number): number {
	const sorted = [...values].sort((a, b) => a - b);
	return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

/** A calm client's ping round trips, one after another, until `done()`. */
async function pings(c: Client, done: () => boolean): Promise<number[]> {
	const rtts: number[] = [];
	while (!done()) {
		const t0 = performance.now();
		c.send({ type: "ping" });
		await c.expect("pong", () => true, 15_000);
		rtts.push(performance.now() - t0);
		await Bun.sleep(10);
	}
	return rtts;
}

interface AttackReport {
	/** Connections that opened (refused upgrades not counted). */
	connections: number;
	refused: number;
	closes: number[];
	sent: number;
	received: number;
}

/** Runs tests/abuse-attacker.ts as its own process for `seconds`, while `during` runs here. */
async function attack<T>(
	url: string,
	mode: "flap" | "history",
	seconds: number,
	during: () => Promise<T>,
): Promise<[AttackReport, T]> {
	const proc = Bun.spawn(
		[process.execPath, join(import.meta.dir, "abuse-attacker.ts"), url, mode, String(seconds)],
		{
			stdout: "pipe",
			stderr: "inherit",
		},
	);
	const result = await during();
	const out = await new Response(proc.stdout).text();
	expect(await proc.exited).toBe(0);
	return [JSON.parse(out) as AttackReport, result];
}

/**
 * The p99 a calm client's ping must stay under during an attack. The aim is
 * 50 ms (an unloaded machine gives 3-15 ms); the bound is 100 ms, or twice the
 * quiet p99 plus 20 ms, because this suite shares 2 cores with other work.
 * Without the limits the attacks put it at seconds (p50 1.7 s, p99 2.7 s).
 */
async function pingBound(calm: Client): Promise<number> {
	const until = performance.now() + 2000;
	const quiet = percentile(await pings(calm, () => performance.now() > until), 99);
	return Math.max(100, 2 * quiet + 20);
}

function summary(rtts: number[]): string {
	return `calm ping p50 ${percentile(rtts, 50).toFixed(1)} ms, p99 ${percentile(rtts, 99).toFixed(1)} ms, max ${Math.max(...rtts).toFixed(1)} ms (${rtts.length} pings)`;
}

describe("join/leave flood (finding 1)", () => {
	test("a connection toggling join/leave as fast as it can is closed with 1008, again after each reconnect; a calm member's ping stays fast", async () => {
		const s = await spawnServer(fromSource("--db", ":memory:", "--rate", "ping=1000/1000"));
		try {
			const calm = await chatter(wsOf(s), "calm", "general");
			const bound = await pingBound(calm);
			const seconds = 6;
			const [report, rtts] = await attack(wsOf(s), "flap", seconds, async () => {
				await Bun.sleep(300); // the attacker's start-up
				const until = performance.now() + (seconds - 1) * 1000;
				return pings(calm, () => performance.now() > until);
			});
			const presence = calm.frames.filter((f) => f.type === "presence").length;
			console.log(
				`join/leave flood: ${report.connections} connection(s) (${report.refused} upgrades refused) sent ${report.sent / 2} join/leave pairs in ${seconds} s, ` +
					`closed with ${JSON.stringify(report.closes.slice(0, 5))}${report.closes.length > 5 ? "…" : ""}; ` +
					`${presence} presence frames reached a member; ${summary(rtts)}; bound ${bound.toFixed(0)} ms`,
			);
			expect(report.closes.length).toBeGreaterThan(0);
			expect(report.closes.every((c) => c === 1008)).toBe(true);
			// Each connection gets the leave burst (10), and a closed flooder's address waits --flood-ban (10 s) to come back:
			// a member hears of a few dozen flaps, not of tens of thousands.
			expect(report.refused).toBeGreaterThan(0);
			expect(presence).toBeLessThan(100);
			expect(percentile(rtts, 99)).toBeLessThan(bound);
			calm.send({ type: "send", room: "general", text: "still here" });
			await calm.expect("message", (m) => m.text === "still here");
		} finally {
			s.proc.kill("SIGKILL");
		}
	}, 60_000);
});

describe("history amplification (finding 2)", () => {
	test("an attacker pipelining history limit:200 on a room of 400 long messages: a calm client's p99 ping stays fast (aim 50 ms)", async () => {
		using dir = tempDir();
		const db = join(dir.path, "hubbub.db");
		const store = new SqliteStore(db);
		const long = "😀".repeat(4000);
		await Promise.all(
			Array.from({ length: 400 }, (_, i) =>
				store.append({ room: "big", from: "filler", text: long, id: `f${i}`, ts: Date.now() }),
			),
		);
		await store.close();
		const s = await spawnServer(fromSource("--db", db, "--rate", "ping=1000/1000"));
		try {
			const calm = await chatter(wsOf(s), "calm");
			const bound = await pingBound(calm);
			const seconds = 8;
			const [report, rtts] = await attack(wsOf(s), "history", seconds, async () => {
				await Bun.sleep(300);
				const until = performance.now() + (seconds - 1) * 1000;
				return pings(calm, () => performance.now() > until);
			});
			console.log(
				`history amplification: ${report.connections} attacker connection(s) (${report.refused} upgrades refused), ${report.sent} requests, ` +
					`${(report.received / 1e6).toFixed(1)} M characters received, closed with ${JSON.stringify(report.closes)}; ${summary(rtts)}; bound ${bound.toFixed(0)} ms`,
			);
			expect(report.closes.every((c) => c === 1008)).toBe(true);
			expect(percentile(rtts, 99)).toBeLessThan(bound);
		} finally {
			s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("answers to one's own requests draw on a byte budget: past it, history and join get rate_limited", async () => {
		await using s = startServer({ config: { replyBurst: 64 * 1024, replyRate: 1024 } });
		const a = await chatter(s.ws, "alice", "general");
		const text = "x".repeat(4000);
		for (let i = 0; i < 40; i++)
			await s.hub.store.append({ room: "general", from: "bob", text, ts: Date.now() });
		a.send({ type: "history", room: "general", limit: 40 }); // ~170 KB: allowed, and spends the budget into debt
		expect((await a.expect("history")).messages).toHaveLength(40);
		a.send({ type: "history", room: "general", limit: 1 });
		expect(await a.expect("error")).toMatchObject({ code: "rate_limited" });
		a.send({ type: "join", room: "general", since: 0 });
		expect(await a.expect("error")).toMatchObject({ code: "rate_limited" });
		// Small frames are not costly: a send still goes through.
		a.send({ type: "send", room: "general", text: "cheap" });
		expect(await a.expect("message", (m) => m.text === "cheap")).toMatchObject({ from: "alice" });
	});
});

describe("every frame type has a rate", () => {
	const flood: [ClientFrameType, object][] = [
		["hello", { type: "hello", name: "again" }],
		["join", { type: "join", room: "general" }],
		["leave", { type: "leave", room: "elsewhere" }],
		["history", { type: "history", room: "general", limit: 1 }],
		["typing", { type: "typing", room: "general" }],
		["send", { type: "send", room: "general", text: "spam" }],
		["ping", { type: "ping" }],
	];
	test.each(flood)("%s", async (_, frame) => {
		await using s = startServer({ config: { floodClose: 10_000 } });
		const a = await chatter(s.ws, "alice", "general");
		for (let i = 0; i < 300; i++) a.send(frame);
		const error = await a.expect("error", (e) => e.code === "rate_limited", 10_000);
		expect(error.message).toContain(String((frame as { type: string }).type));
	});
});

describe("frames that fail validation are rate-limited too", () => {
	const invalid: [string, string | Uint8Array<ArrayBuffer>][] = [
		["malformed JSON", `{"type":"send",${"[".repeat(1000)}`],
		["a binary frame", new Uint8Array(60_000)],
		["an unknown type", '{"type":"nope"}'],
		["a bare JSON number", "1"],
		["a send to a bad room name", '{"type":"send","room":"BAD ROOM","text":"x"}'],
	];
	test.each(invalid)(
		"a flood of %s is closed with 1008 and its address refused for a while",
		async (_, frame) => {
			await using s = startServer();
			const a = await chatter(s.ws, "alice", "general");
			// The first few are answered, so a buggy client learns what is wrong…
			a.sendRaw(frame);
			await a.expect("error", (e) => e.code === "bad_frame");
			// …a flood is not.
			for (let i = 0; i < 500 && a.isOpen; i++) a.sendRaw(frame);
			const closed = await Promise.race([a.closed, Bun.sleep(10_000).then(() => undefined)]);
			expect(closed?.code).toBe(1008);
			await expect(Client.connect(s.ws)).rejects.toThrow();
		},
	);
});

describe("connection churn", () => {
	test("an address connecting faster than --upgrade-rate gets 429 with Retry-After; another /64 and the connections already open are not affected", async () => {
		await using s = startServer({ config: { upgradeRate: 0.5, upgradeBurst: 5, trustProxy: ["127.0.0.1"] } });
		const from = (ip: string) => Client.connect(s.ws, { headers: { "x-forwarded-for": ip } });
		const open: Client[] = [];
		// Connect, then close, as a churning client does: what counts is the rate, not how many are open.
		for (let i = 0; i < 5; i++) (await from("2001:db8:1:2::1")).close();
		open.push(await from("2001:db8:9:9::1"));
		const refused = await fetch(`${s.url}/ws`, {
			headers: {
				upgrade: "websocket",
				connection: "Upgrade",
				"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
				"sec-websocket-version": "13",
				"x-forwarded-for": "2001:db8:1:2::77",
			},
		});
		expect(refused.status).toBe(429);
		expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		expect(await refused.text()).toContain("connecting too often");
		// Someone else's /64 still connects, and an open connection still works.
		open.push(await from("2001:db8:9:9::2"));
		for (const c of open) expect((await c.hello(`u${open.indexOf(c)}`)).type).toBe("welcome");
	});
});

describe("strikes and silence (finding 8)", () => {
	test("strikes are forgiven over time: a client now and then over the burst, but under the rate on average, is never closed", async () => {
		await using s = startServer({ config: { floodClose: 3, floodForgive: 1, sendRate: 10, sendBurst: 5 } });
		const a = await chatter(s.ws, "alice", "general");
		let limited = 0;
		for (let round = 0; round < 7; round++) {
			for (let i = 0; i <= 5; i++)
				a.send({ type: "send", room: "general", id: `r${round}-${i}`, text: "burst" });
			await a.expect("error", (e) => e.code === "rate_limited");
			limited++;
			await Bun.sleep(1200);
		}
		expect(limited).toBe(7);
		expect(a.isOpen).toBe(true);
		// …while a sustained flood still is closed.
		for (let i = 0; i < 50; i++) a.send({ type: "send", room: "general", text: "flood" });
		expect((await a.closed).code).toBe(1008);
	}, 30_000);

	test("a connection that answers pings but never says hello is closed; one that said hello is not", async () => {
		await using s = startServer({ config: { helloTimeout: 1 } });
		const silent = await Client.connect(s.ws);
		const named = await chatter(s.ws, "alice");
		const closed = await Promise.race([silent.closed, Bun.sleep(10_000).then(() => undefined)]);
		expect(closed).toMatchObject({ code: 1008, reason: "no hello within 1 s" });
		await Bun.sleep(500);
		named.send({ type: "ping" });
		await named.expect("pong");
	});
});

describe("the page never meets a limit", () => {
	test("reconnect with name reclaim, resume of many rooms, history paging and typing: no rate_limited, no close", async () => {
		await using s = startServer();
		const rooms = Array.from({ length: 50 }, (_, i) => `room${i}`);
		for (let i = 0; i < 400; i++)
			await s.hub.store.append({
				room: "room0",
				from: "bob",
				text: `old ${i} ${"y".repeat(200)}`,
				ts: Date.now(),
			});
		const first = await chatter(s.ws, "alice");
		for (const r of rooms) first.send({ type: "join", room: r });
		for (const r of rooms) await first.expect("joined", (j) => j.room === r);
		first.close();
		// The page's reconnect: hello once a second until the old connection's name is free.
		const page = await Client.connect(s.ws);
		for (;;) {
			page.send({ type: "hello", name: "alice" });
			const answer = await page.next();
			if (answer.type === "welcome") break;
			expect(answer).toMatchObject({ type: "error", code: "name_taken" });
			await Bun.sleep(1000);
		}
		// Every room at once, with since.
		for (const r of rooms) page.send({ type: "join", room: r, since: 0 });
		for (const r of rooms) await page.expect("joined", (j) => j.room === r, 10_000);
		// Scroll back through the whole history, a screen at a time.
		let before = (await page.join("room0")).messages[0]?.seq ?? 1;
		while (before > 1) {
			page.send({ type: "history", room: "room0", before, limit: 50 });
			const h = await page.expect("history");
			before = h.messages[0]?.seq ?? 1;
			await Bun.sleep(100);
		}
		for (let i = 0; i < 3; i++) {
			page.send({ type: "typing", room: "room0" });
			page.send({ type: "send", room: "room0", id: `p${i}`, text: `typed ${i}` });
			await page.expect("message", (m) => m.id === `p${i}`);
			page.send({ type: "ping" });
			await page.expect("pong");
			await Bun.sleep(2000);
		}
		expect(page.frames.filter((f) => f.type === "error" && f.code !== "name_taken")).toEqual([]);
		expect(page.isOpen).toBe(true);
	}, 30_000);
});
