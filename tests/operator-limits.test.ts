// At the open-file limit: a global connection cap below it refuses upgrades with 503 while /healthz and /metrics answer.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connectionCap, reserveFor } from "../lib/capacity.ts";
import { Client, fromSource, spawnServer, tempDir } from "./helpers.ts";

function cpuSeconds(pid: number): number {
	const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
	// utime and stime, in clock ticks (100 a second on Linux).
	return (Number(fields[11]) + Number(fields[12])) / 100;
}

const UPGRADE = {
	upgrade: "websocket",
	connection: "Upgrade",
	"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
	"sec-websocket-version": "13",
};

test("the cap follows the open-file limit, less a reserve; --max-conns may only lower it", () => {
	expect(connectionCap(undefined, 256)).toEqual({ ok: true, cap: 256 - 64, limit: 256 });
	expect(connectionCap(100, 256)).toEqual({ ok: true, cap: 100, limit: 256 });
	expect(connectionCap(undefined, 65536)).toEqual({ ok: true, cap: 65536 - reserveFor(65536), limit: 65536 });
	const over = connectionCap(500, 256);
	expect(over.ok).toBe(false);
	expect(!over.ok && over.message).toContain("--max-conns 500 is more than the open-file limit (256) allows");
	expect(connectionCap(undefined, 50).ok).toBe(false);
});

test("under ulimit -n 256: upgrades past the cap get 503 with Retry-After, /healthz and /metrics answer, the CPU idles after", async () => {
	using dir = tempDir();
	const command = fromSource(
		"--db",
		join(dir.path, "cap.db"),
		"--max-conns-per-ip",
		"100000",
		"--upgrade-burst",
		"100000",
	)
		.map((a) => `'${a}'`)
		.join(" ");
	const s = await spawnServer(["bash", "-c", `ulimit -n 256; exec ${command}`]);
	const clients: Client[] = [];
	try {
		const listening = s.logs.find((l) => l.event === "listening");
		expect(listening).toMatchObject({ openFileLimit: 256, maxConnections: 192 });
		const ws = `ws://127.0.0.1:${s.port}/ws`;
		for (let i = 0; i < 192; i += 32) {
			clients.push(...(await Promise.all(Array.from({ length: 32 }, () => Client.connect(ws)))));
		}
		// The flood: far more upgrades than the cap, all at once.
		const refused = await Promise.all(
			Array.from({ length: 300 }, () => fetch(`${s.url}/ws`, { headers: UPGRADE }).catch(() => undefined)),
		);
		const statuses = refused.map((r) => r?.status);
		expect(statuses.filter((x) => x === 503).length).toBeGreaterThan(250);
		expect(statuses.every((x) => x === 503 || x === undefined)).toBe(true);
		expect(refused.find((r) => r?.status === 503)?.headers.get("retry-after")).toBe("30");
		const health = await fetch(`${s.url}/healthz`);
		expect(health.status).toBe(200);
		expect(await health.json()).toMatchObject({ connections: 192 });
		const metrics = await (await fetch(`${s.url}/metrics`)).text();
		expect(metrics).toMatch(/^hubbub_connections_max 192$/m);
		expect(metrics).toMatch(/^hubbub_connections_refused_total\{reason="server_full"\} \d+$/m);
		const check = (await (await fetch(`${s.url}/api/upgrade-check`)).json()) as { code: string };
		expect(check.code).toBe("server_full");
		// Every client still works.
		const last = clients.at(-1) as Client;
		last.send({ type: "hello", name: "last" });
		await last.expect("welcome");
		// Once the flood has stopped the process idles: under 0.3 s of CPU in 2 s.
		const before = cpuSeconds(s.proc.pid);
		await Bun.sleep(2000);
		expect(cpuSeconds(s.proc.pid) - before).toBeLessThan(0.3);
		// A place freed is a place taken.
		clients.pop()?.close();
		for (;;) {
			const again = await Client.connect(ws).catch(() => undefined);
			if (again) break;
			await Bun.sleep(20);
		}
	} finally {
		for (const c of clients) c.close();
		s.proc.kill();
	}
}, 60_000);
