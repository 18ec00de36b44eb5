// --auth accounts over real HTTP and WebSockets: setup, sign-in, cookies, CSRF, throttling, the
// authenticated upgrade, ended sessions closing sockets, admin routes and the bot API.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CLOSE } from "../protocol.ts";
import { type AccountsServer, Browser, invite, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { Client, ROOT, tempDir } from "./helpers.ts";

const wsUrl = (s: AccountsServer) => s.ws;

/** Tries an upgrade and tells how it ended: "open", or the HTTP status of the refusal. */
async function upgrade(s: AccountsServer, headers: Record<string, string>): Promise<string> {
	const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
	const r = await fetch(`${s.url}/ws`, {
		headers: {
			connection: "Upgrade",
			upgrade: "websocket",
			"sec-websocket-version": "13",
			"sec-websocket-key": key,
			...headers,
		},
	});
	return r.status === 101 ? "open" : String(r.status);
}

/** Every secret these tests handed out must stay out of the logs and /metrics. */
function expectNoSecrets(s: AccountsServer, secrets: string[]): Promise<void> {
	return (async () => {
		const metrics = await (await fetch(`${s.url}/metrics`)).text();
		const everything = `${s.logs.join("")}\n${metrics}`;
		expect(s.logs.length).toBeGreaterThan(0);
		for (const secret of secrets.filter((x) => x.length >= 8)) expect(everything).not.toContain(secret);
		expect(everything).not.toContain("$argon2id$");
		expect(everything).not.toContain("hubbub_session=");
	})();
}

describe("first run and sign-in", () => {
	test("setup makes the first admin once, with an HttpOnly SameSite=Lax cookie (no Secure over plain HTTP)", async () => {
		await using s = await startAccountsServer();
		const anon = new Browser(s.url);
		expect((await anon.call("GET", "/api/auth/state")).body).toMatchObject({ auth: "accounts", setup: true });
		expect(s.logs.join("")).toContain('"setup_needed"');
		const r = await anon.call("POST", "/api/auth/setup", { name: "alice", password: "correct horse" });
		expect(r.status).toBe(201);
		const cookie = r.headers.get("set-cookie") as string;
		expect(cookie).toMatch(/^hubbub_session=[\w-]{43}; HttpOnly; SameSite=Lax; Path=\/; Max-Age=2592000$/);
		expect((await anon.call("GET", "/api/auth/state")).body).toMatchObject({
			setup: false,
			account: { name: "alice", role: "admin" },
		});
		const late = new Browser(s.url);
		expect(
			(await late.call("POST", "/api/auth/setup", { name: "mallory", password: "evil evil evil" })).status,
		).toBe(409);
		// Without an account nothing else works: the upgrade check says to sign in.
		const check = await late.call("GET", "/api/upgrade-check");
		expect(check.status).toBe(401);
		expect(check.body.code).toBe("not_signed_in");
		await expectNoSecrets(s, [anon.token as string, "correct horse"]);
	});

	test("sign in, wrong password and unknown name get one answer, sign out ends the session", async () => {
		await using s = await startAccountsServer();
		await setupAdmin(s);
		const b = new Browser(s.url);
		const wrong = await b.call("POST", "/api/auth/signin", { name: "alice", password: "wrong horse" });
		const unknown = await b.call("POST", "/api/auth/signin", { name: "nobody", password: "wrong horse" });
		expect([wrong.status, unknown.status]).toEqual([401, 401]);
		expect(wrong.body.message).toBe(unknown.body.message as string);
		expect(
			(await b.call("POST", "/api/auth/signin", { name: "Alice", password: "correct horse" })).status,
		).toBe(200);
		const token = b.token as string;
		expect((await b.call("GET", "/api/auth/sessions")).body.sessions).toHaveLength(2);
		expect((await b.call("POST", "/api/auth/signout", {})).status).toBe(200);
		expect(b.cookie).toBeUndefined();
		b.cookie = `hubbub_session=${token}`;
		expect((await b.call("GET", "/api/auth/sessions")).status).toBe(401);
		await expectNoSecrets(s, [token, "correct horse", "wrong horse"]);
	});

	test("the cookie is Secure over TLS, and behind a trusted proxy that says https", async () => {
		using dir = tempDir();
		const cert = join(dir.path, "cert.pem");
		const key = join(dir.path, "key.pem");
		const openssl = Bun.spawnSync(
			[
				"openssl",
				...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
				...["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
			],
			{ stderr: "pipe" },
		);
		expect(openssl.exitCode).toBe(0);
		const ca = readFileSync(cert, "utf8");
		{
			await using s = await startAccountsServer({ config: { tlsCert: cert, tlsKey: key } });
			const b = new Browser(s.url, { tls: { ca } });
			const r = await b.call("POST", "/api/auth/setup", { name: "alice", password: "correct horse" });
			expect(r.headers.get("set-cookie")).toEndWith("; Secure");
			const c = await Client.connect(`${s.url.replace("https", "wss")}/ws`, { ca, headers: b.wsHeaders() });
			expect(await c.expect("welcome")).toMatchObject({ name: "alice" });
		}
		{
			await using s = await startAccountsServer({ config: { trustProxy: ["127.0.0.1"] } });
			const viaProxy = new Browser(s.url);
			const r = await viaProxy.call(
				"POST",
				"/api/auth/setup",
				{ name: "alice", password: "correct horse" },
				{ "x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9" },
			);
			expect(r.headers.get("set-cookie")).toEndWith("; Secure");
			const plain = new Browser(s.url);
			const r2 = await plain.call("POST", "/api/auth/signin", { name: "alice", password: "correct horse" });
			expect(r2.headers.get("set-cookie")).not.toContain("Secure");
		}
	}, 30_000);

	test("CSRF: a state-changing request from another origin or site, or not JSON, is refused", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		const forged = (headers: Record<string, string>, body = JSON.stringify({ uses: 5 })) =>
			fetch(`${s.url}/api/admin/invites`, {
				method: "POST",
				headers: { cookie: admin.cookie as string, "content-type": "application/json", ...headers },
				body,
			});
		expect((await forged({ origin: "http://evil.example" })).status).toBe(403);
		expect((await forged({ origin: s.url, "sec-fetch-site": "cross-site" })).status).toBe(403);
		expect((await forged({ origin: s.url, "sec-fetch-site": "same-site" })).status).toBe(403);
		expect((await forged({ origin: s.url, "content-type": "text/plain" })).status).toBe(415);
		expect(
			(
				await fetch(`${s.url}/api/auth/signout`, {
					method: "POST",
					headers: { cookie: admin.cookie as string, origin: "http://evil.example" },
				})
			).status,
		).toBe(403);
		// The session survived every attempt, and nothing was made.
		expect((await admin.call("GET", "/api/admin/invites")).body.invites).toEqual([]);
		expect((await forged({ origin: s.url, "sec-fetch-site": "same-origin" })).status).toBe(201);
	});

	test("throttling: 10 failed sign-ins per address or per account, then 429 with Retry-After, even with the right password", async () => {
		await using s = await startAccountsServer({ config: { trustProxy: ["127.0.0.1"] } });
		await setupAdmin(s);
		const from = (address: string) => ({ "x-forwarded-for": address });
		const b = new Browser(s.url);
		const attempts = await Promise.all(
			Array.from({ length: 10 }, (_, i) =>
				b.call(
					"POST",
					"/api/auth/signin",
					{ name: "alice", password: `wrong ${i} horse` },
					from("198.51.100.1"),
				),
			),
		);
		expect(attempts.map((a) => a.status)).toEqual(Array(10).fill(401));
		const locked = await b.call(
			"POST",
			"/api/auth/signin",
			{ name: "alice", password: "correct horse" },
			from("198.51.100.1"),
		);
		expect(locked.status).toBe(429);
		expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
		// Per account: alice from another address is locked too; someone else from another address is not.
		const other = await b.call(
			"POST",
			"/api/auth/signin",
			{ name: "alice", password: "correct horse" },
			from("203.0.113.5"),
		);
		expect(other.status).toBe(429);
		const elsewhere = await b.call(
			"POST",
			"/api/auth/signin",
			{ name: "bob", password: "whatever1" },
			from("203.0.113.5"),
		);
		expect(elsewhere.status).toBe(401);
		// Per address: the first address is locked for every name.
		const sameAddress = await b.call(
			"POST",
			"/api/auth/signin",
			{ name: "bob", password: "whatever1" },
			from("198.51.100.1"),
		);
		expect(sameAddress.status).toBe(429);
	});

	test("sign-up: only with an invite by default; open and closed modes; limited per address", async () => {
		await using s = await startAccountsServer({ config: { signup: "invite" } });
		const admin = await setupAdmin(s);
		const anon = new Browser(s.url);
		expect(
			(await anon.call("POST", "/api/auth/signup", { name: "bob", password: "bob password" })).status,
		).toBe(403);
		const made = await admin.call("POST", "/api/admin/invites", { uses: 2, hours: 1 });
		const code = String(made.body.link).split("#invite=")[1] as string;
		expect(String(made.body.link)).toStartWith(`${s.url}/account#invite=`);
		expect((await anon.call("GET", `/api/auth/invite?code=${code}`)).body.usable).toBe(true);
		expect(
			(await anon.call("POST", "/api/auth/signup", { name: "bob", password: "bob password", invite: code }))
				.status,
		).toBe(201);
		const listed = (await admin.call("GET", "/api/admin/invites")).body.invites as { usedBy: string[] }[];
		expect(listed[0]?.usedBy).toEqual(["bob"]);
		expect(JSON.stringify(listed)).not.toContain(code);
		// Per address: ten sign-up attempts an hour.
		const results: number[] = [];
		for (let i = 0; i < 10; i++)
			results.push(
				(await anon.call("POST", "/api/auth/signup", { name: `x${i}`, password: "short" })).status,
			);
		expect(results.at(-1)).toBe(429);
		await expectNoSecrets(s, [code, admin.token as string]);
	});
});

describe("the authenticated WebSocket", () => {
	test("no cookie, a forged one, or an ended session: HTTP 401; a live one: welcome with the account's name", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		expect(await upgrade(s, { origin: s.url })).toBe("401");
		expect(await upgrade(s, { origin: s.url, cookie: `hubbub_session=${"A".repeat(43)}` })).toBe("401");
		expect(await upgrade(s, admin.wsHeaders())).toBe("open");
		// The origin check stays: a good cookie from another origin is refused.
		expect(await upgrade(s, { ...admin.wsHeaders(), origin: "http://evil.example" })).toBe("403");

		const c = await Client.connect(wsUrl(s), { headers: admin.wsHeaders() });
		expect(await c.next()).toMatchObject({ type: "welcome", name: "alice", version: "1.2.0", role: "admin" });
		c.send({ type: "hello", name: "mallory" });
		expect(await c.next()).toMatchObject({ type: "error", code: "already_identified" });
		c.send({ type: "hello", name: "ALICE" });
		expect(await c.next()).toMatchObject({ type: "welcome", name: "alice" });
		await c.join("general");
		c.send({ type: "send", room: "general", id: "m1", text: "hi" });
		expect(await c.expect("message")).toMatchObject({ from: "alice", text: "hi" });

		const ended = admin.cookie as string;
		expect((await admin.call("POST", "/api/auth/signout", {})).status).toBe(200);
		expect(await c.closed).toMatchObject({ code: CLOSE.sessionEnded });
		expect(await upgrade(s, { origin: s.url, cookie: ended })).toBe("401");
	});

	test("one person on several devices: both connections get everything, presence shows them once", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		const phone = new Browser(s.url);
		await phone.call("POST", "/api/auth/signin", { name: "alice", password: "correct horse" });
		const bob = await invite(s, admin, "bob", "bob password");
		const a1 = await Client.connect(wsUrl(s), { headers: admin.wsHeaders() });
		const a2 = await Client.connect(wsUrl(s), { headers: phone.wsHeaders() });
		const b = await Client.connect(wsUrl(s), { headers: bob.wsHeaders() });
		for (const c of [a1, a2, b]) await c.expect("welcome");
		await b.join("general");
		await a1.join("general");
		expect(await b.expect("presence")).toMatchObject({ name: "alice", online: true });
		const joined = await a2.join("general");
		expect(joined.members.filter((n) => n === "alice")).toHaveLength(1);
		b.send({ type: "send", room: "general", text: "hello alice" });
		for (const c of [a1, a2, b])
			expect(await c.expect("message")).toMatchObject({ from: "bob", text: "hello alice" });
		// One of alice's tabs closes: she is still online, so nobody hears she left.
		const mark = b.frames.length;
		a1.close();
		await a1.closed;
		b.send({ type: "send", room: "general", text: "still there?" });
		expect(await b.expect("message")).toMatchObject({ text: "still there?" });
		expect(b.frames.slice(mark).filter((f) => f.type === "presence")).toEqual([]);
		a2.close();
		expect(await b.expect("presence")).toMatchObject({ name: "alice", online: false });
	});

	test("sign out everywhere, a password change and deactivation close the other sockets with 4001 at once", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		const bob = await invite(s, admin, "bob", "bob password");
		const bobPhone = new Browser(s.url);
		await bobPhone.call("POST", "/api/auth/signin", { name: "bob", password: "bob password" });

		const laptop = await Client.connect(wsUrl(s), { headers: bob.wsHeaders() });
		await laptop.expect("welcome");
		expect((await bobPhone.call("POST", "/api/auth/sessions/end-all", { others: true })).body.ended).toBe(1);
		expect(await laptop.closed).toMatchObject({ code: CLOSE.sessionEnded });

		await bob.call("POST", "/api/auth/signin", { name: "bob", password: "bob password" });
		const again = await Client.connect(wsUrl(s), { headers: bob.wsHeaders() });
		await again.expect("welcome");
		expect(
			(
				await bobPhone.call("POST", "/api/auth/password", {
					current: "bob password",
					password: "new bob password",
				})
			).status,
		).toBe(200);
		expect(await again.closed).toMatchObject({ code: CLOSE.sessionEnded });

		const phoneSocket = await Client.connect(wsUrl(s), { headers: bobPhone.wsHeaders() });
		await phoneSocket.expect("welcome");
		const off = await admin.call("POST", "/api/admin/accounts/bob", { active: false });
		expect(off.body.account).toMatchObject({ name: "bob", active: false });
		expect(await phoneSocket.closed).toMatchObject({ code: CLOSE.sessionEnded });
		expect(
			(await bobPhone.call("POST", "/api/auth/signin", { name: "bob", password: "new bob password" })).status,
		).toBe(401);
		await admin.call("POST", "/api/admin/accounts/bob", { active: true });
		expect(
			(await bobPhone.call("POST", "/api/auth/signin", { name: "bob", password: "new bob password" })).status,
		).toBe(200);
		await expectNoSecrets(s, [bob.token as string, bobPhone.token as string, "new bob password"]);
	});
});

describe("admin routes", () => {
	test("members cannot use them; admins list, promote, reset passwords and revoke invites", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		const bob = await invite(s, admin, "bob", "bob password");
		expect((await bob.call("GET", "/api/admin/accounts")).status).toBe(403);
		const list = (await admin.call("GET", "/api/admin/accounts")).body.accounts as {
			name: string;
			role: string;
		}[];
		expect(list.map((a) => [a.name, a.role])).toEqual([
			["alice", "admin"],
			["bob", "member"],
		]);
		expect(JSON.stringify(list)).not.toMatch(/argon|password/i);
		expect(
			(await admin.call("POST", "/api/admin/accounts/bob", { role: "admin" })).body.account,
		).toMatchObject({
			role: "admin",
		});
		expect((await bob.call("GET", "/api/admin/accounts")).status).toBe(200);
		const reset = await admin.call("POST", "/api/admin/accounts/bob/reset", {});
		const code = String(reset.body.link).split("#reset=")[1] as string;
		const anon = new Browser(s.url);
		expect((await anon.call("GET", `/api/auth/reset?code=${code}`)).body.name).toBe("bob");
		expect((await anon.call("POST", "/api/auth/reset", { code, password: "reset password" })).status).toBe(
			200,
		);
		expect((await bob.call("GET", "/api/auth/sessions")).status).toBe(401);
		expect((await anon.call("POST", "/api/auth/reset", { code, password: "again password" })).status).toBe(
			403,
		);

		const inv = await admin.call("POST", "/api/admin/invites", { uses: 3, hours: 2 });
		expect((await admin.call("DELETE", `/api/admin/invites/${inv.body.id}`)).status).toBe(200);
		const invCode = String(inv.body.link).split("#invite=")[1];
		expect((await anon.call("GET", `/api/auth/invite?code=${invCode}`)).body.usable).toBe(false);
		await expectNoSecrets(s, [code, String(invCode), "reset password"]);
	});
});

describe("bot API", () => {
	test("a bot posts with its token; Idempotency-Key stores one message; a revoked token is refused", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		const made = await admin.call("POST", "/api/admin/bots", { name: "deploy-bot" });
		expect(made.status).toBe(201);
		const token = String(made.body.token);
		const watcher = await Client.connect(wsUrl(s), { headers: admin.wsHeaders() });
		await watcher.expect("welcome");
		watcher.send({ type: "create", room: "deploys", kind: "open" });
		await watcher.expect("room");
		await watcher.join("deploys");
		const post = (key: string, text: string, auth = `Bearer ${token}`) =>
			fetch(`${s.url}/api/rooms/deploys/messages`, {
				method: "POST",
				headers: { authorization: auth, "content-type": "application/json", "idempotency-key": key },
				body: JSON.stringify({ text }),
			});
		const first = await post("build-41", "build 41 deployed");
		expect(first.status).toBe(201);
		expect(await watcher.expect("message")).toMatchObject({
			from: "deploy-bot",
			text: "build 41 deployed",
			id: "build-41",
		});
		const repeat = await post("build-41", "build 41 deployed");
		expect(repeat.status).toBe(200);
		expect(((await repeat.json()) as { message: { seq: number } }).message.seq).toBe(1);
		expect((await post("x", "forged", "Bearer hbt_forged")).status).toBe(401);
		expect((await post("y", "")).status).toBe(400);
		const tokens = (await admin.call("GET", "/api/admin/bots/deploy-bot/tokens")).body.tokens as {
			id: string;
		}[];
		await admin.call("DELETE", `/api/admin/bots/deploy-bot/tokens/${tokens[0]?.id}`);
		expect((await post("build-42", "build 42 deployed")).status).toBe(401);
		const history = await watcher.join("deploys");
		expect(history.messages.map((m) => m.text)).toEqual(["build 41 deployed"]);
		await expectNoSecrets(s, [token]);
	});
});

test("the README's bot curl example, as printed, posts to #deploys once however often the job retries", async () => {
	const readme = readFileSync(join(ROOT, "README.md"), "utf8");
	const example = /<!-- bot-example -->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
	expect(example).toContain("curl");
	await using s = await startAccountsServer();
	const admin = await setupAdmin(s);
	const made = await admin.call("POST", "/api/admin/bots", { name: "deploy-bot" });
	const watcher = await Client.connect(s.ws, { headers: admin.wsHeaders() });
	await watcher.expect("welcome");
	// Under accounts a room is made with `create` (a join makes none); the bot becomes a member by posting.
	watcher.send({ type: "create", room: "deploys", kind: "open" });
	await watcher.expect("room");
	await watcher.join("deploys");
	// Asynchronously: the server answering curl runs in this process.
	const run = async () => {
		const proc = Bun.spawn(["bash", "-euc", example as string], {
			env: {
				...process.env,
				HUBBUB_URL: s.url,
				HUBBUB_TOKEN: String(made.body.token),
				CI_PIPELINE_ID: "4242",
			},
			stdout: "pipe",
			stderr: "pipe",
		});
		const [stdout, stderr, exitCode] = await Promise.all([
			new Response(proc.stdout).text(),
			new Response(proc.stderr).text(),
			proc.exited,
		]);
		return { stdout, stderr, exitCode };
	};
	const first = await run();
	expect(first.stderr).toBe("");
	expect(first.exitCode).toBe(0);
	expect(JSON.parse(first.stdout)).toMatchObject({ ok: true, message: { from: "deploy-bot", seq: 1 } });
	expect(await watcher.expect("message")).toMatchObject({
		room: "deploys",
		from: "deploy-bot",
		text: "Build deployed to production",
		id: "deploy-4242",
	});
	expect((await run()).exitCode).toBe(0);
	expect((await watcher.join("deploys")).messages).toHaveLength(1);
}, 30_000);

test("signed out, / leads to the account screens at /account; signed in, it is the chat page", async () => {
	await using s = await startAccountsServer();
	const root = await fetch(`${s.url}/`, { redirect: "manual" });
	expect(root.status).toBe(303);
	expect(root.headers.get("location")).toBe("/account");
	const account = await fetch(`${s.url}/account`);
	expect(account.status).toBe(200);
	expect(account.headers.get("content-security-policy")).toContain("script-src 'self'");
	const html = await account.text();
	const script = /src="(\/[^"]+\.js)"/.exec(html)?.[1] as string;
	expect((await fetch(`${s.url}${script}`)).status).toBe(200);
	const admin = await setupAdmin(s);
	const signedIn = await fetch(`${s.url}/`, {
		headers: { cookie: admin.cookie as string },
		redirect: "manual",
	});
	expect(signedIn.status).toBe(200);
	// Loading the chat renews the cookie's 30 days, as the server renews the session's.
	expect(signedIn.headers.get("set-cookie")).toBe(
		`${admin.cookie}; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000`,
	);
	expect(await signedIn.text()).toContain("<title>hubbub</title>");
});
