// Where hubbub's time goes: `bun bench/profile.ts fanout 1200` (or `rooms 4`) runs the server from source under Bun's
// CPU profiler (pinned to core 0), drives one 10 s step of that scenario at that rate, and prints the profile's top.
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, ONE_ADDRESS_MANY_PEOPLE, waitForPort } from "./net.ts";

const ROOT = join(import.meta.dir, "..");
const scenario = process.argv[2] === "rooms" ? "rooms" : "fanout";
const rate = Number(process.argv[3] ?? (scenario === "rooms" ? 4 : 1200));
const clients = scenario === "rooms" ? 5000 : 1000;
const dir = mkdtempSync(join(tmpdir(), "hubbub-profile-"));
const port = await freePort();

const server = Bun.spawn(
	[
		"taskset",
		"-c",
		"0",
		process.execPath,
		"--cpu-prof-md",
		"--cpu-prof-dir",
		dir,
		join(ROOT, "server.ts"),
		...[
			"--port",
			String(port),
			"--host",
			"127.0.0.1",
			"--db",
			join(dir, "p.db"),
			...ONE_ADDRESS_MANY_PEOPLE,
			"--log-level",
			"warn",
			"--auth",
			"none",
		],
	],
	{ stdout: "ignore", stderr: "inherit" },
);
await waitForPort(port);
const job = {
	kind: "hubbub",
	port,
	serverPid: server.pid,
	scenario,
	clients,
	roomSize: 10,
	rates: [rate],
	stepSeconds: 10,
	repeats: 1,
};
const gen = Bun.spawn(
	["taskset", "-c", "1", process.execPath, join(ROOT, "bench", "generator.ts"), JSON.stringify(job)],
	{
		stdout: "pipe",
		stderr: "inherit",
	},
);
const result = JSON.parse((await new Response(gen.stdout).text()).trim()) as { steps: unknown[] };
console.log(JSON.stringify(result.steps[0]));
server.kill("SIGTERM");
await server.exited;
const md = readdirSync(dir).find((f) => f.endsWith(".md"));
if (!md) throw new Error("no profile written");
const text = readFileSync(join(dir, md), "utf8");
console.log(text.slice(0, 6000));
console.log(`\nfull profile: ${join(dir, md)}`);
