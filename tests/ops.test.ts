// Running on a public server: per-address and per-connection limits, floods, slow readers, dead peers, health, metrics, logs, TLS.
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
	Client,
	chatter,
	fromSource,
	RawSocket,
	ROOT,
	spawnServer,
	startServer,
	tempDir,
} from "./helpers.ts";

const BUN = process.execPath;
const SERVER = join(ROOT, "server.ts");

function rssOf(pid: number): number {
	const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
	return Number(line?.[1]) * 1024;
}

function metric(text: string, name: string): number {
	const line = text.split("\n").find((l) => l.startsWith(`${name} `));
	return line ? Number(line.slice(name.length + 1)) : 0;
}

describe("limits", () => {
	test("connections past --max-conns-per-ip get HTTP 429; closing one frees a place", async () => {
		await using s = startServer({ config: { maxConnsPerIp: 3 } });
		const open = await Promise.all([1, 2, 3].map(() => Client.connect(s.ws)));
		const refused = await fetch(`${s.url}/ws`, {
			headers: {
				upgrade: "websocket",
				connection: "Upgrade",
				"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
				"sec-websocket-version": "13",
			},
		});
		expect(refused.status).toBe(429);
		await expect(Client.connect(s.ws)).rejects.toThrow();
		open[0]?.close();
		await open[0]?.closed;
		for (;;) {
			// The server counts the close when it sees it.
			const again = await Client.connect(s.ws).catch(() => undefined);
			if (again) break;
			await Bun.sleep(10);
		}
	});

	test("--trust-proxy: X-Forwarded-For from that proxy counts per client; from anyone else it is ignored", async () => {
		await using trusted = startServer({ config: { maxConnsPerIp: 2, trustProxy: ["127.0.0.1"] } });
		const clients = await Promise.all(
			["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"].map((ip) =>
				Client.connect(trusted.ws, { headers: { "x-forwarded-for": `203.0.113.9, ${ip}` } }),
			),
		);
		expect(clients).toHaveLength(4);
		await expect(
			Client.connect(trusted.ws, { headers: { "x-forwarded-for": "10.0.0.1" } }),
		).rejects.toThrow();
		await using untrusted = startServer({ config: { maxConnsPerIp: 2 } });
		await Client.connect(untrusted.ws, { headers: { "x-forwarded-for": "10.0.0.1" } });
		await Client.connect(untrusted.ws, { headers: { "x-forwarded-for": "10.0.0.2" } });
		await expect(
			Client.connect(untrusted.ws, { headers: { "x-forwarded-for": "10.0.0.3" } }),
		).rejects.toThrow();
	});

	test("joining more than --max-rooms rooms gets too_many_rooms; leaving one makes room", async () => {
		await using s = startServer({ config: { maxRooms: 2 } });
		const c = await chatter(s.ws, "alice", "one");
		await c.join("two");
		c.send({ type: "join", room: "three" });
		expect(await c.next()).toMatchObject({ type: "error", code: "too_many_rooms" });
		expect((await c.join("two", 0)).type).toBe("joined");
		c.send({ type: "leave", room: "one" });
		await c.expect("left");
		expect((await c.join("three")).type).toBe("joined");
	});

	test("--max-payload sets the frame limit: past it the connection is closed with 1009", async () => {
		await using s = startServer({ config: { maxPayload: 2048 } });
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "send", room: "general", text: "x".repeat(1900) });
		expect(await c.expect("message")).toMatchObject({ seq: 1 });
		c.send({ type: "send", room: "general", text: "x".repeat(2100) });
		expect((await c.closed).code).toBe(1009);
	});

	test("a flood gets rate_limited, then 1008, while another client in the room chats as usual", async () => {
		await using s = startServer({ config: { floodClose: 100 } });
		const calm = await chatter(s.ws, "calm", "general");
		const flooder = await chatter(s.ws, "flooder", "general");
		await calm.expect("presence");
		const latencies: number[] = [];
		const calmChat = (async () => {
			for (let i = 0; i < 10; i++) {
				const t0 = performance.now();
				calm.send({ type: "send", room: "general", id: `calm${i}`, text: `calm ${i}` });
				await calm.expect("message", (m) => m.id === `calm${i}`);
				latencies.push(performance.now() - t0);
				await Bun.sleep(30);
			}
		})();
		for (let i = 0; i < 200; i++) flooder.send({ type: "send", room: "general", text: `flood ${i}` });
		expect(await flooder.expect("error")).toMatchObject({ code: "rate_limited" });
		expect((await flooder.closed).code).toBe(1008);
		await calmChat;
		expect(latencies).toHaveLength(10);
		console.log(`calm client's round trips during the flood: max ${Math.max(...latencies).toFixed(1)} ms`);
		// The flooder got its burst of 20 stored, and nothing more.
		calm.send({ type: "history", room: "general", limit: 200 });
		const stored = (await calm.expect("history")).messages.filter((m) => m.from === "flooder");
		expect(stored).toHaveLength(20);
	});

	test("typing past its rate is dropped with rate_limited", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		a.send({ type: "typing", room: "general" });
		a.send({ type: "typing", room: "general" });
		expect(await a.next()).toMatchObject({ type: "error", code: "rate_limited" });
		expect(await b.next()).toMatchObject({ type: "typing", name: "alice" });
		a.send({ type: "ping" });
		await a.expect("pong");
		b.send({ type: "ping" });
		expect(await b.next()).toEqual({ type: "pong" });
	});
});

describe("slow and dead peers", () => {
	test("a peer that vanishes without closing leaves a busy room within the idle timeout", async () => {
		await using s = startServer({ config: { idleTimeout: 2, sendRate: 1000, sendBurst: 1000 } });
		const talker = await chatter(s.ws, "talker", "general");
		const idle = await chatter(s.ws, "idle", "general");
		const ghost = await RawSocket.connect(s.server.port as number);
		ghost.sendText(JSON.stringify({ type: "hello", name: "ghost" }));
		ghost.sendText(JSON.stringify({ type: "join", room: "general" }));
		await talker.expect("presence", (p) => p.name === "ghost" && p.online);
		ghost.stopReading();
		const vanishedAt = performance.now();
		// Keep the room busy, so the server is always sending to the ghost.
		let busy = true;
		const chatter_ = (async () => {
			for (let i = 0; busy; i++) {
				talker.send({ type: "send", room: "general", text: `busy ${i}` });
				await Bun.sleep(50);
			}
		})();
		await talker.expect("presence", (p) => p.name === "ghost" && !p.online, 10_000);
		const gone = (performance.now() - vanishedAt) / 1000;
		busy = false;
		await chatter_;
		expect(gone).toBeLessThan(2 * 2);
		// A client that reads (and so answers pings) but sends nothing is not dropped.
		expect(idle.isOpen).toBe(true);
		const fresh = await chatter(s.ws, "fresh");
		expect((await fresh.join("general")).members.sort()).toEqual(["fresh", "idle", "talker"]);
		ghost.destroy();
	});

	test("a reader that stops reading while 10 MB go to its room: bounded memory, others get all, it resumes with since", async () => {
		using dir = tempDir();
		const s = await spawnServer(
			fromSource(
				"--db",
				join(dir.path, "h.db"),
				...["--send-rate", "100000", "--send-burst", "100000", "--max-buffer", "1MiB"],
			),
		);
		try {
			const ws = `ws://127.0.0.1:${s.port}/ws`;
			const sender = await chatter(ws, "sender", "general");
			const reader = await chatter(ws, "reader", "general");
			const slow = await RawSocket.connect(s.port);
			slow.sendText(JSON.stringify({ type: "hello", name: "slow" }));
			slow.sendText(JSON.stringify({ type: "join", room: "general" }));
			await sender.expect("presence", (p) => p.name === "slow");
			slow.stopReading();
			// Warm up, then take the baseline.
			sender.send({ type: "send", room: "general", text: "warm up" });
			await reader.expect("message");
			const rssBefore = rssOf(s.proc.pid);
			const text = "y".repeat(4000);
			const count = 2600; // ~10 MB of frames
			let peak = rssBefore;
			for (let i = 0; i < count; i += 100) {
				for (let j = i; j < i + 100; j++) sender.send({ type: "send", room: "general", id: `b${j}`, text });
				await reader.expect("message", (m) => m.id === `b${i + 99}`, 20_000);
				peak = Math.max(peak, rssOf(s.proc.pid));
			}
			const growth = (peak - rssBefore) / 1024 / 1024;
			console.log(
				`server RSS grew by ${growth.toFixed(1)} MiB while 10 MB went to a room with a stalled reader`,
			);
			expect(growth).toBeLessThan(48);
			const seen = reader.frames.filter((f) => f.type === "message").length;
			expect(seen).toBe(count + 1);
			await sender.expect("presence", (p) => p.name === "slow" && !p.online, 20_000);
			slow.destroy();
			const back = await chatter(ws, "slow");
			const resumed = await back.join("general", 0);
			// The newest that fit half of --max-buffer; the rest is fetched with history.
			expect(Buffer.byteLength(JSON.stringify(resumed))).toBeLessThanOrEqual(512 * 1024);
			expect(resumed.messages.length).toBeGreaterThan(50);
			expect(resumed.more).toBe(true);
			expect(resumed.messages.at(-1)?.id).toBe(`b${count - 1}`);
			// Bun closes such a socket itself (seen here as an abnormal close, 1006).
			const metrics = await (await fetch(`${s.url}/metrics`)).text();
			expect(metric(metrics, 'hubbub_connections_closed_total{code="1006"}')).toBeGreaterThanOrEqual(1);
		} finally {
			s.proc.kill("SIGKILL");
		}
	}, 60_000);
});

describe("bad input", () => {
	function randomFrame(i: number): string | Uint8Array<ArrayBuffer> {
		const r = () => Math.floor(Math.random() * 1e9);
		const bytes = () => crypto.getRandomValues(new Uint8Array(1 + (r() % 200)));
		const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
		const cases: (() => string | Uint8Array<ArrayBuffer>)[] = [
			() => bytes(),
			() => new TextDecoder().decode(bytes()),
			() => JSON.stringify({ type: "send", room: "general", text: `t${r()}` }).slice(0, 1 + (r() % 40)),
			() => deep(1 + (r() % 20000)),
			() => `{"type":"send","room":"general","text":${deep(5000)}}`,
			() => `{"type":"join","room":"general","since":1e400}`,
			() => `{"type":"history","room":"general","before":-1e308,"limit":9007199254740993}`,
			() => `{"type":"history","room":"general","limit":${r()}.5}`,
			() => `{"__proto__":{"type":"ping"},"x":1}`,
			() =>
				`{"type":"send","room":"general","text":"","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`,
			() => JSON.stringify({ type: ["send"], room: "general" }),
			() => JSON.stringify({ type: `t${r()}` }),
			() => JSON.stringify({ type: "send", room: { $gt: "" }, text: "x" }),
			() => JSON.stringify({ type: "send", room: "general", text: "x", id: r() }),
			() => JSON.stringify({ type: "join", room: "general", since: "0" }),
			() => JSON.stringify({ type: "typing", room: null }),
			() => "\u0000\u0001\u0002",
			() => "",
		];
		return (cases[i % cases.length] as () => string | Uint8Array<ArrayBuffer>)();
	}

	test("10,000 fuzzed frames each get an error, nothing crashes, and a chat beside them goes on", async () => {
		// Invalid frames have a budget like any other (tests/abuse-limits.test.ts); here each one is to be answered.
		await using s = startServer({
			config: { sendRate: 1000, sendBurst: 1000, frameRates: [{ type: "invalid", rate: 1e6, burst: 1e6 }] },
		});
		const fuzzer = await chatter(s.ws, "fuzzer", "general");
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		let sent = 0;
		let chatted = 0;
		for (let round = 0; round < 20; round++) {
			for (let i = 0; i < 500; i++) fuzzer.sendRaw(randomFrame(sent++));
			a.send({ type: "send", room: "general", id: `a${round}`, text: `still talking ${round}` });
			await b.expect("message", (m) => m.id === `a${round}`);
			chatted++;
			await fuzzer.next((f) => f.type === "error", 10_000, true).catch(() => undefined);
			while (fuzzer.frames.filter((f) => f.type === "error").length < sent) {
				await fuzzer.expect("error", () => true, 10_000);
			}
		}
		const errors = fuzzer.frames.filter((f) => f.type === "error");
		expect(sent).toBe(10_000);
		expect(errors).toHaveLength(10_000);
		expect(new Set(errors.map((e) => (e as { code: string }).code))).toEqual(new Set(["bad_frame"]));
		expect(fuzzer.isOpen).toBe(true);
		expect(chatted).toBe(20);
		expect(({} as Record<string, unknown>).polluted).toBeUndefined();
		b.send({ type: "history", room: "general", limit: 200 });
		expect((await b.expect("history")).messages.map((m) => m.from)).toEqual(Array(20).fill("alice"));
		expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
	}, 60_000);
});

describe("health and metrics", () => {
	test("/healthz and /metrics follow a scripted session", async () => {
		await using s = startServer();
		const scrape = async () => (await fetch(`${s.url}/metrics`)).text();
		const before = await scrape();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		for (let i = 0; i < 3; i++) a.send({ type: "send", room: "general", text: `m${i}` });
		a.send("not json");
		await a.expect("error");
		await b.expect("message", (m) => m.seq === 3);
		const health = await (await fetch(`${s.url}/healthz`)).json();
		expect(health).toMatchObject({ status: "ok", connections: 2, rooms: 1, database: true });
		expect(health.uptime).toBeGreaterThanOrEqual(0);
		const after = await scrape();
		const delta = (name: string) => metric(after, name) - metric(before, name);
		expect(metric(after, "hubbub_connections")).toBe(2);
		expect(metric(after, "hubbub_rooms")).toBe(1);
		expect(delta('hubbub_frames_in_total{type="send"}')).toBe(3);
		expect(delta('hubbub_frames_in_total{type="hello"}')).toBe(2);
		expect(delta('hubbub_frames_in_total{type="invalid"}')).toBe(1);
		expect(delta('hubbub_errors_total{code="bad_frame"}')).toBe(1);
		expect(delta("hubbub_messages_stored_total")).toBe(3);
		expect(delta('hubbub_frames_out_total{type="message"}')).toBe(6);
		expect(delta('hubbub_frames_out_total{type="presence"}')).toBe(1);
		expect(delta("hubbub_bytes_in_total")).toBeGreaterThan(0);
		expect(delta("hubbub_store_commit_seconds_count")).toBeGreaterThanOrEqual(1);
		expect(delta("hubbub_publish_seconds_count")).toBe(3);
		expect(after).toContain("# TYPE hubbub_publish_seconds histogram");
		b.close();
		await a.expect("presence", (p) => !p.online);
		expect(metric(await scrape(), 'hubbub_connections_closed_total{code="1000"}')).toBe(1);
	});

	test("/healthz answers 503 while the database cannot take writes", async () => {
		await using s = startServer();
		const locker = new Database(s.dbPath);
		locker.run("BEGIN EXCLUSIVE");
		const failing = await fetch(`${s.url}/healthz`);
		expect(failing.status).toBe(503);
		expect(await failing.json()).toMatchObject({ status: "failing", database: false });
		locker.run("COMMIT");
		locker.close();
		expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
	});

	test("--metrics-token guards /metrics", async () => {
		await using s = startServer({ config: { metricsToken: "s3cret" } });
		expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
		expect((await fetch(`${s.url}/metrics`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
		const ok = await fetch(`${s.url}/metrics`, { headers: { authorization: "Bearer s3cret" } });
		expect(ok.status).toBe(200);
		expect(await ok.text()).toContain("hubbub_connections");
	});
});

describe("logs", () => {
	test("one JSON object per line; connections logged with address and close code; message text never at info", async () => {
		using dir = tempDir();
		const s = await spawnServer(fromSource("--db", join(dir.path, "h.db")));
		try {
			const a = await chatter(`ws://127.0.0.1:${s.port}/ws`, "alice", "general");
			a.send({ type: "send", room: "general", text: "my secret plans" });
			await a.expect("message");
			a.close(1000);
			const deadline = Date.now() + 5000;
			while (!s.logs.some((l) => l.event === "connection_close") && Date.now() < deadline)
				await Bun.sleep(10);
		} finally {
			s.proc.kill("SIGTERM");
			await s.proc.exited;
		}
		for (const line of s.logs) {
			expect(typeof line.time).toBe("string");
			expect(["debug", "info", "warn", "error"]).toContain(line.level as string);
			expect(typeof line.event).toBe("string");
		}
		expect(s.logs.find((l) => l.event === "connection_open")).toMatchObject({ address: "127.0.0.1" });
		expect(s.logs.find((l) => l.event === "connection_close")).toMatchObject({
			address: "127.0.0.1",
			code: 1000,
		});
		expect(JSON.stringify(s.logs)).not.toContain("my secret plans");
	});
});

describe("TLS", () => {
	test("--tls-cert and --tls-key serve https and wss", async () => {
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
		await using s = startServer({ config: { tlsCert: cert, tlsKey: key } });
		expect(s.url.startsWith("https://")).toBe(true);
		const ca = readFileSync(cert, "utf8");
		const health = await fetch(`${s.url}/healthz`, { tls: { ca } });
		expect(health.status).toBe(200);
		await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
		const c = await Client.connect(`${s.url.replace("https", "wss")}/ws`, { ca });
		expect((await c.hello("alice")).type).toBe("welcome");
		await c.join("general");
		c.send({ type: "send", room: "general", text: "encrypted" });
		expect(await c.expect("message")).toMatchObject({ text: "encrypted" });
	});

	test("an unreadable certificate: a clear message, exit status 2, and no database file written", async () => {
		using dir = tempDir();
		const proc = Bun.spawn(
			[
				BUN,
				SERVER,
				"--port",
				"0",
				"--tls-cert",
				join(dir.path, "none.pem"),
				"--tls-key",
				join(dir.path, "none.key"),
			],
			// In a directory of its own: the default --db is hubbub.db in the working directory.
			{ stdout: "pipe", stderr: "pipe", cwd: dir.path },
		);
		expect(await proc.exited).toBe(2);
		expect(await new Response(proc.stderr).text()).toContain("cannot read the TLS certificate");
		expect(readdirSync(dir.path).filter((f) => f.startsWith("hubbub.db"))).toEqual([]);
	});
});
