// Fuzzing every frame type at random rates and sizes, against one process and against two processes with Redis:
// nothing crashes, every server frame is within the protocol, and a calm conversation beside it loses nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { ServerFrame } from "../protocol.ts";
import { type Redis, startRedis } from "./engines.ts";
import { Client, chatter, fromSource, type Spawned, spawnServer, tempDir } from "./helpers.ts";

/** mulberry32: a small seeded generator, so a failing run can be repeated with its seed. */
function generator(seed: number) {
	let a = seed >>> 0;
	const next = () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	const int = (n: number) => Math.floor(next() * n);
	const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
	return { next, int, pick };
}
type Gen = ReturnType<typeof generator>;

const ROOMS = ["general", "random", "r1", "r-2", "R", "", "a".repeat(33), "général", "x y"];
const NAMES = [
	"fuzz",
	"Fuzz",
	"fuzz\u200b",
	"\u0192uzz",
	"ｆｕｚｚ",
	"\u202ezzuf",
	"\u3164",
	"😀",
	"a".repeat(40),
	"",
];
const SCALARS: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, Number.MAX_VALUE, "", "x", [], {}, "\ud800"];

function text(g: Gen): string {
	const size = g.pick([0, 1, 5, 100, 4000, 4001, 20_000]);
	const alphabet = ["a", " ", "é", "😀", "\u200b", "\u202e", "\ud800", "\n", "\u0000", '"', "\\"];
	let s = "";
	for (let i = 0; i < size; i++) s += g.pick(alphabet);
	return s;
}

/** One frame of a random type, valid or broken in one random way. */
function frame(g: Gen, i: number): string | Uint8Array<ArrayBuffer> {
	const room = () => (g.next() < 0.8 ? g.pick(["general", "random", "r1"]) : g.pick(ROOMS));
	const value = () => g.pick(SCALARS);
	const frames: (() => Record<string, unknown>)[] = [
		() => ({ type: "hello", name: g.next() < 0.5 ? `fuzz${g.int(1000)}` : g.pick(NAMES) }),
		() => ({
			type: "join",
			room: room(),
			...(g.next() < 0.5 ? { since: g.pick([0, 1, 5, 1e9, -1, 0.5]) } : {}),
		}),
		() => ({ type: "leave", room: room() }),
		() => ({ type: "send", room: room(), text: text(g), ...(g.next() < 0.7 ? { id: `i${g.int(50)}` } : {}) }),
		() => ({
			type: "history",
			room: room(),
			limit: g.pick([1, 50, 200, 201, 0]),
			before: g.pick([1, 10, 1e9]),
		}),
		() => ({ type: "typing", room: room() }),
		() => ({ type: "ping" }),
	];
	const roll = g.next();
	if (roll < 0.6) return JSON.stringify(g.pick(frames)());
	if (roll < 0.75) {
		// A valid frame with one field replaced by something of the wrong shape.
		const f = g.pick(frames)();
		const keys = Object.keys(f);
		f[g.pick(keys)] = value();
		return JSON.stringify(f);
	}
	if (roll < 0.85) return JSON.stringify(g.pick(frames)()).slice(0, g.int(40));
	if (roll < 0.9) return crypto.getRandomValues(new Uint8Array(1 + g.int(100)));
	if (roll < 0.993) return `${"[".repeat(1 + g.int(5000))}`;
	// Near and (rarely) past the payload limit (64 KiB): the latter closes with 1009.
	const size = roll < 0.998 ? 60_000 : 70_000;
	return JSON.stringify({ type: "send", room: "general", id: `big${i}`, text: "z".repeat(size) });
}

interface FuzzReport {
	frames: number;
	connections: number;
	closes: number[];
}

/** Fuzzers that connect, fire bursts of random size with random pauses, and reconnect when closed, until `until`. */
async function fuzz(urls: string[], g: Gen, clients: number, until: number): Promise<FuzzReport> {
	const report: FuzzReport = { frames: 0, connections: 0, closes: [] };
	await Promise.all(
		Array.from({ length: clients }, async (_, k) => {
			while (performance.now() < until) {
				const url = urls[k % urls.length] as string;
				const c = new Client(url);
				try {
					await c.opened;
				} catch {
					await Bun.sleep(100); // refused (e.g. 429 after a flood close): come back later
					continue;
				}
				report.connections++;
				// Most say a proper hello and join rooms first, so that valid frames after it reach the hub and the rooms.
				if (g.next() < 0.7) {
					try {
						await c.hello(`fuzzer${k}-${report.connections}`);
						for (const room of ["general", "random", "r1"].slice(0, 1 + g.int(3))) await c.join(room);
					} catch {
						// refused or closed meanwhile: fuzz on regardless
					}
				}
				while (c.isOpen && performance.now() < until) {
					const burst = 1 + g.int(g.pick([3, 30, 300]));
					for (let i = 0; i < burst && c.isOpen; i++) c.sendRaw(frame(g, report.frames++));
					await Bun.sleep(g.int(g.pick([2, 20, 200])));
				}
				if (c.isOpen) c.close();
				else report.closes.push((await c.closed).code);
			}
		}),
	);
	return report;
}

/** The seqs a client saw in a room: its `joined` and every `message` after. */
function seqsOf(c: Client, room: string): number[] {
	return c.frames.flatMap((f: ServerFrame) =>
		f.type === "joined" && f.room === room
			? f.messages.map((m) => m.seq)
			: f.type === "message" && f.room === room
				? [f.seq]
				: [],
	);
}

/** Alice and Bob talk in `general` while `during` runs; afterwards every message of Alice's reached Bob once, in order. */
async function calmConversation(
	aliceUrl: string,
	bobUrl: string,
	during: () => Promise<void>,
): Promise<void> {
	const alice = await chatter(aliceUrl, "alice", "general");
	const bob = await chatter(bobUrl, "bob", "general");
	let said = 0;
	let stop = false;
	const errors: string[] = [];
	const talk = (async () => {
		while (!stop) {
			// About 5 a second, well under the send rate; an error is retried with the same id, as the page does.
			alice.send({ type: "send", room: "general", id: `calm${said}`, text: `calm ${said}` });
			const answer = await alice.next(
				(f) =>
					(f.type === "message" || f.type === "error") &&
					(f.type === "message" ? f.id : f.ref) === `calm${said}`,
				15_000,
				true,
			);
			if (answer.type === "error") errors.push(answer.code);
			else said++;
			await Bun.sleep(200);
		}
	})();
	await during();
	stop = true;
	await talk;
	// A marker after everything: once Bob has it, nothing of the room is still on its way to him.
	alice.send({ type: "send", room: "general", id: "marker", text: "the end" });
	const last = await alice.expect("message", (m) => m.id === "marker", 15_000);
	await bob.expect("message", (m) => m.seq === last.seq, 15_000);
	const seen = seqsOf(bob, "general");
	const first = seen[0] ?? 1;
	expect(seen).toEqual(Array.from({ length: last.seq - first + 1 }, (_, i) => first + i));
	const fromAlice = bob.frames.filter((f) => f.type === "message" && f.id?.startsWith("calm")).length;
	expect(fromAlice).toBe(said);
	expect(said).toBeGreaterThan(10);
	// A store busy with the fuzzers' writes may ask for a retry; nothing else may go wrong for a calm client.
	expect(errors.filter((e) => e !== "server_error")).toEqual([]);
	expect(alice.isOpen && bob.isOpen).toBe(true);
}

async function healthy(s: Spawned): Promise<void> {
	expect(s.proc.exitCode).toBeNull();
	expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
}

// Short bans, so the fuzzers keep coming back after a flood close instead of waiting 10 s.
const FLAGS = ["--flood-ban", "1", "--hello-timeout", "2"];
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);

describe("fuzzing every frame type", () => {
	let redis: Redis;
	beforeAll(async () => {
		redis = await startRedis();
	}, 60_000);
	afterAll(async () => {
		await redis?.[Symbol.asyncDispose]();
	});

	test("one process: random frames at random rates and sizes; it keeps serving a calm conversation", async () => {
		using dir = tempDir();
		const s = await spawnServer(fromSource("--db", join(dir.path, "fuzz.db"), ...FLAGS));
		const ws = `ws://127.0.0.1:${s.port}/ws`;
		try {
			let report: FuzzReport | undefined;
			await calmConversation(ws, ws, async () => {
				report = await fuzz([ws], generator(SEED), 4, performance.now() + 6000);
			});
			console.log(`fuzz seed ${SEED} (FUZZ_SEED to repeat), one process: ${JSON.stringify(summary(report))}`);
			expect(report?.frames).toBeGreaterThan(1000);
			expect(report?.closes.filter((c) => ![1006, 1008, 1009].includes(c))).toEqual([]);
			await healthy(s);
		} finally {
			s.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("two processes with Redis: the same, with Alice on one process and Bob on the other", async () => {
		using dir = tempDir();
		const db = join(dir.path, "fuzz.db");
		const [a, b] = (await Promise.all(
			[0, 1].map(() => spawnServer(fromSource("--db", db, "--redis", redis.url, ...FLAGS))),
		)) as [Spawned, Spawned];
		const wsA = `ws://127.0.0.1:${a.port}/ws`;
		const wsB = `ws://127.0.0.1:${b.port}/ws`;
		try {
			let report: FuzzReport | undefined;
			await calmConversation(wsA, wsB, async () => {
				report = await fuzz([wsA, wsB], generator(SEED + 1), 4, performance.now() + 6000);
			});
			console.log(`fuzz seed ${SEED + 1}, two processes: ${JSON.stringify(summary(report))}`);
			expect(report?.frames).toBeGreaterThan(1000);
			expect(report?.closes.filter((c) => ![1006, 1008, 1009].includes(c))).toEqual([]);
			await healthy(a);
			await healthy(b);
		} finally {
			a.proc.kill("SIGKILL");
			b.proc.kill("SIGKILL");
		}
	}, 90_000);
});

function summary(r: FuzzReport | undefined) {
	const codes: Record<number, number> = {};
	for (const c of r?.closes ?? []) codes[c] = (codes[c] ?? 0) + 1;
	return { frames: r?.frames, connections: r?.connections, closes: codes };
}
