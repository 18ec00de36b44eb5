// The documentation tells the truth: the README's options table is the one --help prints, PROTOCOL.md's numbers
// are the code's, the README's systemd units pass `systemd-analyze verify`, and OPERATING.md names every metric.
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultConfig, HELP, optionsMarkdown } from "../lib/config.ts";
import { FRAME_RATES } from "../lib/rate-limit.ts";
import { LIMITS } from "../protocol.ts";
import { withOptionsTable } from "../scripts/readme-options.ts";
import { fromSource, ROOT, spawnServer, startServer, tempDir } from "./helpers.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8");
const PROTOCOL = readFileSync(join(ROOT, "docs/PROTOCOL.md"), "utf8");
const OPERATING = readFileSync(join(ROOT, "docs/OPERATING.md"), "utf8");

describe("README", () => {
	test("the options table is generated from the option definitions (npm run docs:options)", () => {
		expect(README).toContain(optionsMarkdown());
		expect(withOptionsTable(README)).toBe(README);
	});

	test("the table and --help (from the running program) list the same flags", async () => {
		const proc = Bun.spawn([...fromSource().slice(0, 2), "--help"], { stdout: "pipe" });
		const help = await new Response(proc.stdout).text();
		// The options part; the subcommands (hubbub backup…) follow it.
		expect(help.startsWith(HELP)).toBe(true);
		const helpFlags = [...HELP.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]);
		const table = optionsMarkdown();
		const tableFlags = [...table.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]);
		expect(new Set(tableFlags)).toEqual(new Set(helpFlags));
	});

	const units = [...README.matchAll(/```ini\n# \/etc\/systemd\/system\/(\S+?)(?::| |\n)[\s\S]*?```/g)].map(
		(m) => ({
			name: m[1] as string,
			text: (m[0] as string).replace(/^```ini\n/, "").replace(/```$/, ""),
		}),
	);

	test("the systemd units pass systemd-analyze verify", () => {
		expect(units.length).toBeGreaterThanOrEqual(3);
		if (!Bun.which("systemd-analyze")) {
			console.log("skipped: systemd-analyze is not installed (Debian: apt-get install systemd)");
			return;
		}
		using dir = tempDir();
		for (const [i, unit] of units.entries()) {
			const folder = join(dir.path, String(i));
			mkdirSync(folder);
			// verify wants ExecStart's program to exist: the units name where the README installs it.
			writeFileSync(join(folder, unit.name), unit.text.replaceAll("/usr/local/bin/hubbub", process.execPath));
			const target = unit.name.replace("@.service", "@1.service");
			if (target !== unit.name) symlinkSync(join(folder, unit.name), join(folder, target));
			const r = Bun.spawnSync(["systemd-analyze", "verify", join(folder, target)], {
				stdout: "pipe",
				stderr: "pipe",
			});
			const complaints = `${r.stdout}${r.stderr}`
				.split("\n")
				.filter((l) => l.includes(folder) || l.startsWith(target));
			expect({ unit: unit.name, status: r.exitCode, complaints }).toEqual({
				unit: unit.name,
				status: 0,
				complaints: [],
			});
		}
	});

	test("the units never loop on a configuration error, raise the open-file limit, and the TLS one reads its key as a credential", () => {
		const servers = units.filter((u) => u.name.endsWith(".service") && !u.text.includes("Type=oneshot"));
		expect(servers.length).toBeGreaterThanOrEqual(3);
		for (const unit of servers) {
			expect(unit.text).toContain("RestartPreventExitStatus=2");
			expect(unit.text).toContain("LimitNOFILE=");
		}
		const tls = units.find((u) => u.text.includes("--tls-key"));
		expect(tls?.text).toContain("LoadCredential=tls-key:");
		expect(tls?.text).toContain("--tls-key %d/tls-key");
		expect(README).toContain("sudo systemctl disable --now hubbub\n");
		expect(README).toContain("journalctl -u 'hubbub@*'");
		expect(README).toContain("EnvironmentFile=/etc/hubbub/env");
		expect(README).not.toMatch(/^hubbub .*postgres:\/\/[^ ]*:[^ ]*@/m);
	});
});

describe("docs/PROTOCOL.md", () => {
	const config = defaultConfig();
	const numbers: [RegExp, number][] = [
		[/may hold (\d+) connections at once by default/g, config.maxConnsPerIp],
		[/size limit \((\d+) KiB by default\)/g, config.maxPayload / 1024],
		[/The name is trimmed, then must be 1–(\d+) characters/g, LIMITS.nameChars],
		[/A room name is 1–(\d+) characters/g, LIMITS.roomChars],
		[/latest (\d+) messages/g, LIMITS.latest],
		[/up to (\d+); `more` is true when you missed more than (?:\d+)/g, LIMITS.resume],
		[/missed more than (\d+)/g, LIMITS.resume],
		[/only the newest (\d+) came/g, LIMITS.resume],
		[/`text`: 1–(\d+) characters/g, LIMITS.textChars],
		[/must be at most (\d+) characters/g, LIMITS.textChars],
		[/`id` \(optional, 1–(\d+) characters/g, LIMITS.idChars],
		[/`limit` \(1–(\d+), default (?:\d+)\)/g, LIMITS.historyMax],
		[/`limit` \(1–\d+, default (\d+)\)/g, LIMITS.historyDefault],
		[/at most (\d+) hits/g, LIMITS.searchMax],
		[/hits, (\d+) by default/g, LIMITS.searchDefault],
		[/a search of at most (\d+) characters/g, LIMITS.searchChars],
		[/stay silent for too long\s+\((\d+) s by default\)/g, config.idleTimeout],
		[/stop answering pings \((\d+) s\)/g, config.idleTimeout],
		[/`send` (\d+)\/\d+/g, config.sendRate],
		[/`send` \d+\/(\d+)/g, config.sendBurst],
		[/`typing` (\d+)\/\d+/g, config.typingRate],
		...Object.entries(FRAME_RATES).flatMap(([type, r]): [RegExp, number][] => [
			[new RegExp(`\`${type}\`\\s+(\\d+)/\\d+`, "g"), r.rate],
			[new RegExp(`\`${type}\`\\s+\\d+/(\\d+)`, "g"), r.burst],
		]),
		[/may be in \((\d+) by default\)/g, config.maxRooms],
		[/more than (\d+) MiB waiting for them/g, config.maxBuffer / 1024 ** 2],
		[/the (\d+)th unforgiven one/g, config.floodClose],
		[/\((\d+) strikes, forgiven/g, config.floodClose],
		[/forgiven at (\d+) a second/g, config.floodForgive],
		[/`hello` within (\d+) s of opening/g, config.helloTimeout],
		[/HTTP 429 for (\d+) s/g, config.floodBan],
		[/a byte budget of (\d+) MiB/g, config.replyBurst / 1024 ** 2],
		[/refills at (\d+) MiB a second/g, config.replyRate / 1024 ** 2],
	];

	test.each(numbers.map(([re, value]) => [re.source, re, value] as const))("%s", (_, re, value) => {
		const found = [...PROTOCOL.matchAll(re)].map((m) => Number(m[1]));
		expect(found.length).toBeGreaterThan(0);
		expect(found).toEqual(found.map(() => value));
	});
});

describe("docs/OPERATING.md", () => {
	test("names every metric /metrics has", async () => {
		await using s = startServer();
		const text = await (await fetch(`${s.url}/metrics`)).text();
		const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string);
		expect(names.length).toBeGreaterThan(10);
		for (const name of names)
			expect({ name, documented: OPERATING.includes(`\`${name}\``) }).toEqual({ name, documented: true });
	});

	test("covers what an operator asks", () => {
		for (const topic of [
			"-wal",
			"-shm",
			"hubbub backup",
			"new epoch",
			"schema version",
			"Security model",
			"0.0.0.0",
			"/metrics",
			"rediss://",
			"Reconnecting",
			"426",
			"429",
			"Exit status 2",
			"--host ::",
			"arm64",
		]) {
			expect({ topic, found: OPERATING.includes(topic) }).toEqual({ topic, found: true });
		}
	});

	test("--host :: serves IPv6 and IPv4 as the page says", async () => {
		using dir = tempDir();
		const s = await spawnServer([
			...fromSource("--db", join(dir.path, "v6.db")).filter(
				(a, i, all) => a !== "127.0.0.1" && all[i - 1] !== "--host" && a !== "--host",
			),
			"--host",
			"::",
		]);
		try {
			expect(s.logs.find((l) => l.event === "listening")?.url).toBe(`http://[::]:${s.port}`);
			expect((await fetch(`http://[::1]:${s.port}/healthz`)).status).toBe(200);
			expect((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status).toBe(200);
		} finally {
			s.proc.kill();
		}
	});
});
