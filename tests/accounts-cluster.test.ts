// Two processes on one database with Redis: a deactivation made through one closes the account's
// sockets on the other within about a second, and the person cannot come back on either.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { RedisClient } from "bun";
import { CLOSE } from "../protocol.ts";
import { Browser, invite, setupAdmin } from "./accounts-helpers.ts";
import { startRedis } from "./engines.ts";
import { Client, fromSource, spawnServer, tempDir } from "./helpers.ts";
import { until } from "./until.ts";

test("deactivating bob on one process closes his socket on the other with 4001 within a second or so", async () => {
	using dir = tempDir("hubbub-acct-cluster-");
	await using redis = await startRedis();
	const db = join(dir.path, "hubbub.db");
	const flags = ["--db", db, "--redis", redis.url, "--auth", "accounts"];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	try {
		const admin = new Browser(a.url);
		expect(
			(await admin.call("POST", "/api/auth/setup", { name: "alice", password: "correct horse" })).status,
		).toBe(201);
		const made = await admin.call("POST", "/api/admin/invites", { uses: 1, hours: 1 });
		const code = String(made.body.link).split("#invite=")[1];
		// Bob signs up and connects through the other process.
		const bob = new Browser(b.url);
		expect(
			(await bob.call("POST", "/api/auth/signup", { name: "bob", password: "bob password", invite: code }))
				.status,
		).toBe(201);
		const onB = await Client.connect(`${b.url.replace("http", "ws")}/ws`, { headers: bob.wsHeaders() });
		expect(await onB.expect("welcome")).toMatchObject({ name: "bob" });
		await onB.join("general");
		const watcher = await Client.connect(`${a.url.replace("http", "ws")}/ws`, { headers: admin.wsHeaders() });
		await watcher.expect("welcome");
		await watcher.join("general");

		const t0 = performance.now();
		expect((await admin.call("POST", "/api/admin/accounts/bob", { active: false })).status).toBe(200);
		const closed = await onB.closed;
		const ms = performance.now() - t0;
		expect(closed.code).toBe(CLOSE.sessionEnded);
		// Within a second on an idle machine; generous here for a loaded one (timings belong in bench/).
		expect(ms).toBeLessThan(5000);
		expect(await watcher.expect("presence", (f) => f.name === "bob" && !f.online)).toBeDefined();
		// Neither process lets him back in.
		for (const url of [a.url, b.url]) {
			const again = new Browser(url);
			expect(
				(await again.call("POST", "/api/auth/signin", { name: "bob", password: "bob password" })).status,
			).toBe(401);
		}
		const retry = new Client(`${b.url.replace("http", "ws")}/ws`, { headers: bob.wsHeaders() });
		await expect(retry.opened).rejects.toThrow();
		// Neither process wrote a password, a session cookie, the invite code or a password hash.
		const logged = JSON.stringify([a.logs, b.logs]);
		for (const secret of ["correct horse", "bob password", code as string, admin.token, bob.token])
			expect(logged).not.toContain(secret as string);
		expect(logged).not.toContain("$argon2id$");
	} finally {
		a.proc.kill();
		b.proc.kill();
		await Promise.all([a.proc.exited, b.proc.exited]);
	}
}, 60_000);

test("one account in a room on two processes stays online until its last socket leaves, and goes offline once", async () => {
	using dir = tempDir("hubbub-acct-cluster-");
	await using redis = await startRedis();
	const flags = ["--db", join(dir.path, "hubbub.db"), "--redis", redis.url, "--auth", "accounts"];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	const ws = (s: { url: string }) => `${s.url.replace("http", "ws")}/ws`;
	// A browser's socket to process `s`: its cookie, and the page's origin there.
	const on = (s: { url: string }, who: Browser) => ({ headers: { ...who.wsHeaders(), origin: s.url } });
	try {
		const admin = await setupAdmin(a);
		const bob = await invite(a, admin, "bob", "bob password");
		const watcher = await Client.connect(ws(a), { headers: admin.wsHeaders() });
		await watcher.expect("welcome");
		await watcher.join("general");
		// Bob on his laptop (process a) and his phone (process b).
		const laptop = await Client.connect(ws(a), { headers: bob.wsHeaders() });
		await laptop.expect("welcome");
		await laptop.join("general");
		const phone = await Client.connect(ws(b), on(b, bob));
		await phone.expect("welcome");
		await phone.join("general");
		await watcher.expect("presence", (f) => f.name === "bob" && f.online);

		laptop.close();
		await laptop.closed;
		// Past the leave's grace period (1 s): bob is still on his phone, nobody may hear him go.
		await Bun.sleep(3000);
		const offline = () =>
			watcher.frames.filter((f) => f.type === "presence" && f.name === "bob" && !f.online);
		expect(offline()).toEqual([]);
		const newcomer = await Client.connect(ws(b), on(b, admin));
		await newcomer.expect("welcome");
		expect((await newcomer.join("general")).members).toContain("bob");

		phone.close();
		await watcher.expect("presence", (f) => f.name === "bob" && !f.online, 10_000);
		await Bun.sleep(1500);
		expect(offline()).toHaveLength(1);
	} finally {
		a.proc.kill();
		b.proc.kill();
		await Promise.all([a.proc.exited, b.proc.exited]);
	}
}, 60_000);

test("leaving process a and coming back on process b within a's grace: a's held-back leave never goes out, bob shows online", async () => {
	using dir = tempDir("hubbub-acct-cluster-");
	await using redis = await startRedis();
	const prefix = `race${process.pid}`;
	const flags = [
		"--db",
		join(dir.path, "hubbub.db"),
		"--redis",
		redis.url,
		"--redis-prefix",
		prefix,
		"--auth",
		"accounts",
	];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	const ws = (s: { url: string }) => `${s.url.replace("http", "ws")}/ws`;
	const on = (s: { url: string }, who: Browser) => ({ headers: { ...who.wsHeaders(), origin: s.url } });
	const peek = new RedisClient(redis.url);
	try {
		const admin = await setupAdmin(a);
		const bob = await invite(a, admin, "bob", "bob password");
		const watcher = await Client.connect(ws(a), { headers: admin.wsHeaders() });
		await watcher.expect("welcome");
		await watcher.join("general");
		const laptop = await Client.connect(ws(a), { headers: bob.wsHeaders() });
		await laptop.expect("welcome");
		await laptop.join("general");
		await watcher.expect("presence", (f) => f.name === "bob" && f.online);
		// Bob's phone is already connected to b (not yet in the room), so its join is one frame away.
		const phone = await Client.connect(ws(b), on(b, bob));
		await phone.expect("welcome");

		// The laptop's socket drops; once a has told Redis bob left (its leave is then held for 1 s), the phone joins on b.
		laptop.close();
		await laptop.closed;
		await until(async () => (await peek.hget(`${prefix}:members:general`, "bob")) === null, 10_000);
		const t0 = performance.now();
		await phone.join("general");
		// This test shows the race only if b had him back within a's grace; on a machine too loaded for that, say so.
		expect(performance.now() - t0).toBeLessThan(1000);

		// Well past a's grace: nobody may have heard bob go, and a newcomer on a sees him.
		await Bun.sleep(3000);
		expect(watcher.frames.filter((f) => f.type === "presence" && f.name === "bob" && !f.online)).toEqual([]);
		const newcomer = await Client.connect(ws(a), on(a, admin));
		await newcomer.expect("welcome");
		expect((await newcomer.join("general")).members).toContain("bob");

		// And when he really leaves, the room hears it once.
		phone.close();
		await watcher.expect("presence", (f) => f.name === "bob" && !f.online, 10_000);
	} finally {
		peek.close();
		a.proc.kill();
		b.proc.kill();
		await Promise.all([a.proc.exited, b.proc.exited]);
	}
}, 60_000);
