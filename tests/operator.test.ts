// An operator's view: flags checked at start-up with clear messages, the origin check and its reason for the page,
// HTTP hygiene (methods, security headers), per-address limits by IPv6 /64, health that tells the truth, logs that never kill.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, defaultConfig, HELP, OPTIONS, parseConfig } from "../lib/config.ts";
import { addressGroup, checkOrigin, parseOrigin } from "../lib/origin.ts";
import { Client, chatter, fromSource, ROOT, spawnServer, startServer, tempDir } from "./helpers.ts";

const BUN = process.execPath;
const SERVER = join(ROOT, "server.ts");

async function run(args: string[], cwd = ROOT) {
	const proc = Bun.spawn([BUN, SERVER, ...args], { cwd, stdout: "pipe", stderr: "pipe" });
	const [stdout, stderr, status] = await Promise.all([
		new Response(proc.stdout).text(),
		new Response(proc.stderr).text(),
		proc.exited,
	]);
	return { stdout, stderr, status };
}

const UPGRADE = {
	upgrade: "websocket",
	connection: "Upgrade",
	"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
	"sec-websocket-version": "13",
};

/** Every numeric flag (every option with a range) with its largest value and the first value past it. */
const NUMERIC: [string, string, string][] = OPTIONS.filter((o) => o.range).map((o) => {
	const max = (o.range as [number, number])[1];
	const step = o.kind === "rate" ? 0.5 : o.kind === "size" ? 1024 : 1;
	return [`--${o.flag}`, String(max), String(max + step)];
});

test("the numeric flags include every one an operator tunes", () => {
	expect(NUMERIC.map(([f]) => f)).toEqual(
		expect.arrayContaining(["--port", "--idle-timeout", "--max-conns", "--min-free-disk", "--max-buffer"]),
	);
	expect(NUMERIC.length).toBeGreaterThanOrEqual(12);
});

describe("flags are checked before anything starts", () => {
	test.each(NUMERIC)("%s: its maximum %s is accepted, %s is refused with the range", (flag, max, past) => {
		const ok = parseConfig([flag, max], {});
		expect(ok.kind).toBe("run");
		let error: unknown;
		try {
			parseConfig([flag, past], {});
		} catch (e) {
			error = e;
		}
		expect(error).toBeInstanceOf(ConfigError);
		expect((error as Error).message).toContain(flag);
		expect((error as Error).message).toMatch(/from \S+ to \S+/);
	});

	test("--help shows each numeric flag's range", () => {
		for (const [flag] of NUMERIC) {
			const line = HELP.split("\n").find((l) => l.startsWith(`  ${flag} `));
			expect(line).toMatch(/\d\S* to \d/);
		}
	});

	test("every numeric flag at its maximum at once: the server starts and serves", async () => {
		using dir = tempDir();
		const flags = NUMERIC.filter(([f]) => f !== "--port" && f !== "--max-conns").flatMap(([f, max]) => [
			f,
			max,
		]);
		const s = await spawnServer(fromSource("--db", join(dir.path, "max.db"), ...flags));
		try {
			const c = await chatter(`ws://127.0.0.1:${s.port}/ws`, "alice", "general");
			c.send({ type: "ping" });
			await c.expect("pong");
		} finally {
			s.proc.kill();
		}
	});

	test("--idle-timeout 961 exits 2 saying the range, and never names port 0 when another port was asked", async () => {
		const r = await run(["--port", "8080", "--idle-timeout", "961"]);
		expect(r.status).toBe(2);
		expect(r.stderr).toContain("--idle-timeout must be a whole number of seconds from 1 to 960");
		expect(r.stderr).not.toContain(":0");
	});

	test("the README's example creates the database's folder: --db var/lib/hubbub/chat.db in an empty root", async () => {
		using dir = tempDir();
		const db = join(dir.path, "var/lib/hubbub/chat.db");
		const s = await spawnServer(fromSource("--db", db));
		try {
			expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
			expect(existsSync(db)).toBe(true);
		} finally {
			s.proc.kill();
		}
	});

	test("a database folder that cannot be made: exit 2 naming the folder", async () => {
		using dir = tempDir();
		writeFileSync(join(dir.path, "file"), "in the way");
		const r = await run(["--port", "0", "--db", join(dir.path, "file/sub/chat.db")]);
		expect(r.status).toBe(2);
		expect(r.stderr).toContain(`cannot create the folder "${join(dir.path, "file/sub")}" for the database`);
	});

	test("a malformed certificate or key: exit 2 naming the file and saying it is not PEM", async () => {
		using dir = tempDir();
		const cert = join(dir.path, "cert.pem");
		const key = join(dir.path, "key.pem");
		const openssl = Bun.spawnSync(
			[
				"openssl",
				...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
				...["-keyout", key, "-out", cert],
			],
			{ stderr: "pipe" },
		);
		expect(openssl.exitCode).toBe(0);
		const junk = join(dir.path, "junk.pem");
		writeFileSync(junk, "this is not a certificate\n");
		const badCert = await run(["--port", "0", "--db", ":memory:", "--tls-cert", junk, "--tls-key", key]);
		expect(badCert.status).toBe(2);
		expect(badCert.stderr).toContain(`the TLS certificate "${junk}" is not a PEM certificate`);
		const badKey = await run(["--port", "0", "--db", ":memory:", "--tls-cert", cert, "--tls-key", junk]);
		expect(badKey.status).toBe(2);
		expect(badKey.stderr).toContain(`the TLS key "${junk}" is not a PEM private key`);
		// Each the other's: both PEM, but the wrong kind.
		const swapped = await run(["--port", "0", "--db", ":memory:", "--tls-cert", key, "--tls-key", cert]);
		expect(swapped.status).toBe(2);
		expect(swapped.stderr).toContain(`"${key}" is not a PEM certificate`);
	});

	test.each([
		["https://chat.example.com:443", "browsers leave the default port out"],
		["http://chat.example.com:80", "browsers leave the default port out"],
		["https://*.example.com", "wildcards are not supported"],
		["https://chat.example.com/chat", "no path"],
		["chat.example.com", "http:// or https://"],
		["https://user@chat.example.com", "no user name"],
	])("--origin %s is refused at start-up (%s)", async (origin, why) => {
		expect(parseOrigin(origin)).toMatchObject({ ok: false });
		const r = await run(["--port", "0", "--db", ":memory:", "--origin", origin]);
		expect(r.status).toBe(2);
		expect(r.stderr).toContain(why);
	});

	test("--origin values are normalised to what browsers send", () => {
		const parsed = parseConfig(
			[
				"--origin",
				"HTTPS://Chat.Example.COM/",
				"--origin",
				"http://[::1]:8080",
				"--origin",
				"https://bücher.example",
			],
			{},
		);
		expect(parsed.kind === "run" && parsed.config.origins).toEqual([
			"https://chat.example.com",
			"http://[::1]:8080",
			"https://xn--bcher-kva.example",
		]);
	});
});

describe("the origin check", () => {
	test("DNS rebinding: without --origin a page whose Origin and Host are both a name is refused", async () => {
		await using s = startServer();
		const port = s.server.port;
		const rebinding = await fetch(`${s.url}/ws`, {
			headers: { ...UPGRADE, origin: `http://evil.example:${port}`, host: `evil.example:${port}` },
		});
		expect(rebinding.status).toBe(403);
		expect(await rebinding.text()).toContain("--origin");
		// The page opened at the server's own address still connects.
		const own = await Client.connect(s.ws, { headers: { origin: s.url } });
		expect((await own.hello("alice")).type).toBe("welcome");
		expect(checkOrigin("http://localhost:3000", "localhost:3000", [])).toEqual({ ok: true });
		expect(checkOrigin("http://evil.example", "evil.example", []).ok).toBe(false);
		expect(checkOrigin(null, "anything", []).ok).toBe(true);
	});

	test("GET /api/upgrade-check says why an upgrade would be refused, in a sentence the page can show", async () => {
		await using s = startServer({ config: { origins: ["https://chat.example.com"], maxConnsPerIp: 1 } });
		const check = (origin: string) =>
			fetch(`${s.url}/api/upgrade-check?origin=${encodeURIComponent(origin)}`);
		const allowed = await check("https://chat.example.com");
		expect(allowed.status).toBe(200);
		expect(await allowed.json()).toEqual({ ok: true });
		const refused = await check("http://203.0.113.7:3000");
		expect(refused.status).toBe(403);
		const body = (await refused.json()) as { ok: boolean; code: string; message: string };
		expect(body).toMatchObject({ ok: false, code: "origin_not_allowed" });
		expect(body.message).toContain("http://203.0.113.7:3000");
		expect(body.message).toContain("--origin");
		expect(body.message).toContain("https://chat.example.com");
		// The /ws refusal says the same.
		const ws = await fetch(`${s.url}/ws`, { headers: { ...UPGRADE, origin: "http://203.0.113.7:3000" } });
		expect(ws.status).toBe(403);
		expect(await ws.text()).toContain(body.message);

		await Client.connect(s.ws, { headers: { origin: "https://chat.example.com" } });
		const full = await check("https://chat.example.com");
		expect(full.status).toBe(429);
		expect(full.headers.get("retry-after")).toBe("10");
		expect(await full.json()).toMatchObject({ ok: false, code: "too_many_connections", retryAfter: 10 });
	});

	test("per-address limits count an IPv6 /64 as one address", async () => {
		expect(addressGroup("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
		expect(addressGroup("2001:db8:1:2::ffff:2")).toBe("2001:db8:1:2::/64");
		expect(addressGroup("2001:0db8:0001:0002:0:0:0:3")).toBe("2001:db8:1:2::/64");
		expect(addressGroup("::1")).toBe("0:0:0:0::/64");
		expect(addressGroup("203.0.113.9")).toBe("203.0.113.9");
		await using s = startServer({ config: { maxConnsPerIp: 2, trustProxy: ["127.0.0.1"] } });
		const from = (ip: string) => Client.connect(s.ws, { headers: { "x-forwarded-for": ip } });
		await from("2001:db8:1:2::1");
		await from("2001:db8:1:2:ffff:ffff:ffff:ffff");
		await expect(from("2001:db8:1:2:1234::5")).rejects.toThrow();
		// The next /64 over is someone else.
		await from("2001:db8:1:3::1");
	});
});

describe("HTTP hygiene", () => {
	test("pages and routes take only GET and HEAD (405 with Allow otherwise)", async () => {
		await using s = startServer();
		for (const path of ["/", "/healthz", "/metrics"]) {
			expect((await fetch(`${s.url}${path}`)).status).toBe(200);
			expect((await fetch(`${s.url}${path}`, { method: "HEAD" })).status).toBe(200);
			for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
				const r = await fetch(`${s.url}${path}`, { method, body: method === "DELETE" ? undefined : "x" });
				expect(r.status).toBe(405);
				expect(r.headers.get("allow")).toBe("GET, HEAD");
			}
		}
		const post = await fetch(`${s.url}/ws`, { method: "POST", body: "x" });
		expect(post.status).toBe(405);
		expect(post.headers.get("allow")).toBe("GET");
		expect((await fetch(`${s.url}/nothing-here`, { method: "POST", body: "x" })).status).toBe(404);
	});

	test("security headers on every response; the page has no inline script for the CSP to forbid", async () => {
		await using s = startServer({ config: { origins: ["https://chat.example.com"] } });
		const html = await (await fetch(`${s.url}/`)).text();
		const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
		expect(scripts.length).toBeGreaterThan(0);
		for (const [, attributes, body] of scripts) {
			expect(attributes).toContain("src=");
			expect(body?.trim()).toBe("");
		}
		expect(html).not.toMatch(/\son[a-z]+=/i);
		const assets = [...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1] as string);
		expect(assets.length).toBeGreaterThan(0);
		const responses = await Promise.all([
			fetch(`${s.url}/`),
			...assets.map((a) => fetch(`${s.url}${a}`)),
			fetch(`${s.url}/healthz`),
			fetch(`${s.url}/metrics`),
			fetch(`${s.url}/api/upgrade-check?origin=https://chat.example.com`),
			fetch(`${s.url}/nothing-here`),
			fetch(`${s.url}/`, { method: "POST", body: "x" }),
			fetch(`${s.url}/ws`, { headers: { ...UPGRADE, origin: "http://elsewhere.example" } }),
		]);
		for (const r of responses) {
			const csp = r.headers.get("content-security-policy") ?? "";
			expect(csp).toContain("frame-ancestors 'none'");
			expect(csp).toMatch(/script-src 'self'(;|$)/);
			expect(r.headers.get("x-content-type-options")).toBe("nosniff");
			expect(r.headers.get("referrer-policy")).toBe("no-referrer");
		}
		expect(responses.map((r) => r.status)).toEqual([
			200,
			...assets.map(() => 200),
			200,
			200,
			200,
			404,
			405,
			403,
		]);
	});
});

describe("health that tells the truth", () => {
	test("a deleted database file: /healthz 503 naming it, and sends are refused instead of acknowledged", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "send", room: "general", id: "a", text: "before" });
		await c.expect("message");
		expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
		rmSync(s.dbPath);
		c.send({ type: "send", room: "general", id: "b", text: "into the void" });
		expect(await c.expect("error", (e) => e.ref === "b")).toMatchObject({ code: "server_error" });
		await Bun.sleep(1100); // a good probe serves for a second
		const health = await fetch(`${s.url}/healthz`);
		expect(health.status).toBe(503);
		expect(await health.json()).toMatchObject({ status: "failing", database: false });
	});

	test("a replaced database file is reported too", async () => {
		await using s = startServer();
		rmSync(s.dbPath);
		writeFileSync(s.dbPath, "");
		const body = (await (await fetch(`${s.url}/healthz`)).json()) as { problem: string };
		expect(body.problem).toContain("was replaced");
	});

	test("a full disk: /healthz 503 saying so, sends get a clear error, both recover when space is freed", async () => {
		if (process.getuid?.() !== 0) {
			console.log("skipped: mounting a small tmpfs needs root");
			return;
		}
		using dir = tempDir();
		const mount = join(dir.path, "small");
		mkdirSync(mount);
		const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mount], {
			stderr: "pipe",
		});
		if (mounted.exitCode !== 0) {
			console.log(`skipped: cannot mount a tmpfs here (${mounted.stderr.toString().trim()})`);
			return;
		}
		try {
			await using s = startServer({ dbPath: join(mount, "chat.db"), config: { minFreeDisk: 2 * 1024 ** 2 } });
			const c = await chatter(s.ws, "alice", "general");
			c.send({ type: "send", room: "general", id: "a", text: "room to spare" });
			await c.expect("message");
			const filler = join(mount, "filler");
			Bun.spawnSync(["dd", "if=/dev/zero", `of=${filler}`, "bs=64k"], { stderr: "pipe" });
			let health = await fetch(`${s.url}/healthz`);
			for (let i = 0; i < 50 && health.status === 200; i++) {
				await Bun.sleep(100);
				health = await fetch(`${s.url}/healthz`);
			}
			expect(health.status).toBe(503);
			const body = (await health.json()) as { problem: string; disk: boolean };
			expect(body.disk).toBe(false);
			expect(body.problem).toContain("--min-free-disk");
			c.send({ type: "send", room: "general", id: "b", text: "no room" });
			const refused = await c.expect("error", (e) => e.ref === "b");
			expect(refused.message).toContain("disk");
			rmSync(filler);
			for (let i = 0; i < 50 && health.status !== 200; i++) {
				await Bun.sleep(100);
				health = await fetch(`${s.url}/healthz`);
			}
			expect(health.status).toBe(200);
			c.send({ type: "send", room: "general", id: "c", text: "room again" });
			expect(await c.expect("message", (m) => m.id === "c")).toMatchObject({ text: "room again" });
		} finally {
			Bun.spawnSync(["umount", "-l", mount]);
		}
	});
});

describe("logs never kill the server", () => {
	test("stdout piped to a reader that goes away: the server keeps serving and counts the lost lines", async () => {
		using dir = tempDir();
		const proc = Bun.spawn(fromSource("--db", join(dir.path, "epipe.db")), {
			stdout: "pipe",
			stderr: "pipe",
		});
		const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
		let head = "";
		while (!head.includes('"listening"')) head += (await reader.read()).value ?? "";
		const port = Number(head.match(/"port":(\d+)/)?.[1]);
		const s = { proc, port, url: `http://127.0.0.1:${port}` };
		try {
			// The reader goes away: the read end of the server's stdout pipe is closed.
			await reader.cancel();
			for (let i = 0; i < 20; i++) {
				const c = await chatter(`ws://127.0.0.1:${s.port}/ws`, `user${i}`, "general");
				c.close();
				await c.closed;
			}
			expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
			const metrics = await (await fetch(`${s.url}/metrics`)).text();
			expect(Number(metrics.match(/^hubbub_log_write_failures_total (\d+)/m)?.[1])).toBeGreaterThan(0);
			expect(s.proc.exitCode).toBeNull();
		} finally {
			s.proc.kill();
		}
	});
});

test("defaultConfig has every new setting", () => {
	const config = defaultConfig();
	expect(config.minFreeDisk).toBe(64 * 1024 ** 2);
	expect(config.maxConns).toBeUndefined();
});

describe("--log-level debug says what an operator debugging needs", () => {
	test("upgrades with origin and address, refusals, joins and rate-limit decisions; none of it at info", async () => {
		using dir = tempDir();
		const debug = await spawnServer(
			fromSource(
				"--db",
				join(dir.path, "debug.db"),
				"--log-level",
				"debug",
				"--send-burst",
				"1",
				"--send-rate",
				"0.01",
			),
		);
		const info = await spawnServer(
			fromSource("--db", join(dir.path, "info.db"), "--send-burst", "1", "--send-rate", "0.01"),
		);
		try {
			for (const s of [debug, info]) {
				const c = await Client.connect(`ws://127.0.0.1:${s.port}/ws`, { headers: { origin: s.url } });
				await c.hello("alice");
				await c.join("general");
				c.send({ type: "send", room: "general", text: "one" });
				c.send({ type: "send", room: "general", text: "two" });
				await c.expect("error", (e) => e.code === "rate_limited");
				await fetch(`${s.url}/api/upgrade-check?origin=http://elsewhere.example`);
				c.close();
				await c.closed;
			}
			const has = (s: typeof debug, event: string) =>
				s.logs.find((l) => l.event === event && l.level === "debug");
			for (let i = 0; i < 50 && !has(debug, "rate_limited"); i++) await Bun.sleep(20);
			expect(has(debug, "upgrade")).toMatchObject({ origin: debug.url, address: "127.0.0.1" });
			expect(has(debug, "join")).toMatchObject({ name: "alice", room: "general" });
			expect(has(debug, "rate_limited")).toMatchObject({ address: "127.0.0.1", frame: "send" });
			expect(has(debug, "upgrade_check")).toMatchObject({ refused: "origin_not_allowed" });
			expect(info.logs.filter((l) => l.level === "debug")).toEqual([]);
		} finally {
			debug.proc.kill();
			info.proc.kill();
		}
	});
});
