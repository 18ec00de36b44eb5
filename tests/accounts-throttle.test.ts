// The sign-in and sign-up limits hold across a cluster: the counts live in the account store, so two
// processes sharing one SQLite file or one PostgreSQL database allow 10 failures, not 10 each.
// And the GET routes anyone may call without a session are limited per address.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { FAILURE_LIMIT, OPEN_GET_RATE, SIGNUP_LIMIT } from "../lib/auth-http.ts";
import { Browser, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { type Postgres, type Redis, startPostgres, startRedis } from "./engines.ts";
import { fromSource, type Spawned, spawnServer, tempDir } from "./helpers.ts";

let pg: Postgres;
let redis: Redis;
beforeAll(async () => {
	[pg, redis] = await Promise.all([startPostgres(), startRedis()]);
}, 60_000);
afterAll(async () => {
	pg?.[Symbol.dispose]();
	await redis?.[Symbol.asyncDispose]();
});

/** Two hubbub processes on one database; each trusts the loopback proxy so a test can speak from several addresses. */
async function twoProcesses(db: string, ...extra: string[]): Promise<[Spawned, Spawned] & AsyncDisposable> {
	const flags = ["--db", db, "--auth", "accounts", "--trust-proxy", "127.0.0.1", ...extra];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	return Object.assign([a, b] as [Spawned, Spawned], {
		async [Symbol.asyncDispose]() {
			a.proc.kill();
			b.proc.kill();
			await Promise.all([a.proc.exited, b.proc.exited]);
		},
	});
}

const from = (address: string) => ({ "x-forwarded-for": address });

const stores: [string, () => Promise<{ db: string } & Disposable>][] = [
	[
		"one SQLite file",
		async () => {
			const dir = tempDir("hubbub-throttle-");
			return { db: join(dir.path, "hubbub.db"), [Symbol.dispose]: () => dir[Symbol.dispose]() };
		},
	],
	["one PostgreSQL database", async () => ({ db: await pg.database(), [Symbol.dispose]: () => {} })],
];

describe.each(stores)("two processes sharing %s", (_, makeDb) => {
	test("wrong passwords sent to both at once, in parallel: 10 are checked in all, the rest get 429 with Retry-After; the right password is locked out too, on both", async () => {
		using store = await makeDb();
		await using servers = await twoProcesses(
			store.db,
			"--redis",
			redis.url,
			"--redis-prefix",
			crypto.randomUUID(),
		);
		const [a, b] = servers;
		await setupAdmin(a);
		// Thirty guesses at alice's password from one address, half to each process, all at once.
		const guesses = await Promise.all(
			Array.from({ length: 30 }, (_, i) =>
				new Browser(i % 2 ? a.url : b.url).call(
					"POST",
					"/api/auth/signin",
					{ name: "alice", password: `wrong guess ${i}` },
					from("198.51.100.1"),
				),
			),
		);
		const statuses = guesses.map((g) => g.status).sort();
		// Per process, each would have allowed 10 (20 in all) before.
		expect(statuses.filter((s) => s === 401)).toHaveLength(FAILURE_LIMIT);
		expect(statuses.filter((s) => s === 429)).toHaveLength(30 - FAILURE_LIMIT);
		for (const g of guesses.filter((g) => g.status === 429)) {
			const wait = Number(g.headers.get("retry-after"));
			expect(wait).toBeGreaterThan(0);
			expect(wait).toBeLessThanOrEqual(15 * 60);
		}
		// Alice herself, from another address, on either process: her account is locked.
		for (const s of [a, b]) {
			const right = await new Browser(s.url).call(
				"POST",
				"/api/auth/signin",
				{ name: "alice", password: "correct horse" },
				from("203.0.113.9"),
			);
			expect(right.status).toBe(429);
		}
		// Someone else from that other address is not locked; from the guessing address, nobody may try.
		const other = { name: "bob", password: "bob password" };
		expect(
			(await new Browser(b.url).call("POST", "/api/auth/signin", other, from("203.0.113.9"))).status,
		).toBe(401);
		expect(
			(await new Browser(a.url).call("POST", "/api/auth/signin", other, from("198.51.100.1"))).status,
		).toBe(429);
	}, 90_000);

	test("a right password is not counted: alice signs in on both processes many times without being locked; sign-ups are limited per address across both", async () => {
		using store = await makeDb();
		await using servers = await twoProcesses(
			store.db,
			"--signup",
			"open",
			"--redis",
			redis.url,
			"--redis-prefix",
			crypto.randomUUID(),
		);
		const [a, b] = servers;
		await setupAdmin(a, "alice", "correct horse");
		for (let i = 0; i < FAILURE_LIMIT + 2; i++) {
			const r = await new Browser(i % 2 ? a.url : b.url).call(
				"POST",
				"/api/auth/signin",
				{ name: "alice", password: "correct horse" },
				from("198.51.100.2"),
			);
			expect(r.status).toBe(200);
		}
		// Sign-ups from one address, alternating between the processes: SIGNUP_LIMIT in all, the setup above counted
		// from another address.
		const made: number[] = [];
		for (let i = 0; i < SIGNUP_LIMIT + 2; i++)
			made.push(
				(
					await new Browser(i % 2 ? a.url : b.url).call(
						"POST",
						"/api/auth/signup",
						{ name: `person${i}`, password: "a good password" },
						from("198.51.100.3"),
					)
				).status,
			);
		expect(made).toEqual([...Array(SIGNUP_LIMIT).fill(201), 429, 429]);
		expect(
			(
				await new Browser(b.url).call(
					"POST",
					"/api/auth/signup",
					{ name: "elsewhere", password: "a good password" },
					from("198.51.100.4"),
				)
			).status,
		).toBe(201);
	}, 90_000);
});

describe("the GET routes open to anyone", () => {
	test("a burst from one address gets 429 with Retry-After on state, invite and reset checks and forged-cookie requests; another address is unaffected", async () => {
		await using s = await startAccountsServer({ config: { trustProxy: ["127.0.0.1"] } });
		const admin = await setupAdmin(s);
		const flooder = new Browser(s.url);
		const paths = ["/api/auth/state", "/api/auth/invite?code=nope", "/api/auth/reset?code=nope"];
		const burst = await Promise.all(
			Array.from({ length: OPEN_GET_RATE.burst + 30 }, (_, i) =>
				flooder.call("GET", paths[i % 3] as string, undefined, from("198.51.100.66")),
			),
		);
		const refused = burst.filter((r) => r.status === 429);
		expect(refused.length).toBeGreaterThanOrEqual(20);
		expect(Number(refused[0]?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		expect(refused[0]?.body.code).toBe("too_many_requests");
		// A forged session cookie is refused the same way while the bucket is empty (not another store lookup).
		const forged = await flooder.call("GET", "/api/auth/sessions", undefined, {
			...from("198.51.100.66"),
			cookie: "hubbub_session=forged",
		});
		expect(forged.status).toBe(429);
		// Everyone else: another address, and the signed-in admin.
		const bystander = new Browser(s.url);
		const state = await bystander.call("GET", "/api/auth/state", undefined, from("203.0.113.7"));
		expect(state.status).toBe(200);
		expect(state.body.auth).toBe("accounts");
		expect((await admin.call("GET", "/api/auth/state")).body.account).toMatchObject({ name: "alice" });
		expect((await admin.call("GET", "/api/admin/accounts")).status).toBe(200);
	}, 60_000);
});
