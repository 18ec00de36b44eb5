// The fan-out scenario in guest mode and in accounts mode, side by side: do accounts cost anything
// per delivery? Accounts are checked at the upgrade only, so they should not. Every bench
// connection has its own account and session, written into the database before the server starts
// (the sign-in itself is measured by bench/signin.ts, outside this timed part).
// Run: bun bench/accounts.ts [--runs=N] [clients] [rates…]   (default 1 run, 500 clients, rates 200 800;
// under a minute a run). With several runs the modes alternate (none, accounts, none, …), so a shared
// machine's changing load falls on both alike; it prints every run, then each figure's median and range.
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountStore } from "../lib/account-store.ts";
import { hashToken } from "../lib/accounts.ts";
import { nameKey } from "../lib/names.ts";
import { RoomStore } from "../lib/room-store.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import type { Job, StepResult } from "./generator.ts";
import { freePort, ONE_ADDRESS_MANY_PEOPLE, waitForPort } from "./net.ts";

const ROOT = join(import.meta.dir, "..");
const runsFlag = process.argv.find((a) => a.startsWith("--runs="));
const runs = runsFlag ? Number(runsFlag.slice(7)) : 1;
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const clients = Number(args[0] ?? 500);
const rates = args.slice(1).map(Number);
if (rates.length === 0) rates.push(200, 800);

/** N accounts b0…bN-1, each with the session whose cookie is `bench-<i>`, in one transaction; and the open room #fanout. */
async function seed(db: string, n: number): Promise<void> {
	// In the server's order: messages, accounts, then rooms (a join makes no room under accounts).
	await new SqliteStore(db).close();
	await (await AccountStore.open(db)).close();
	const rooms = await RoomStore.open(db);
	await rooms.insertRoom(
		{
			room: "fanout",
			kind: "open",
			title: null,
			topic: "",
			creator: null,
			created: Date.now(),
			archived: null,
		},
		[],
	);
	await rooms.close();
	const sqlite = new Database(db);
	const now = Date.now();
	const account = sqlite.query(
		"INSERT INTO hubbub_accounts (id, name, name_key, password_hash, role, bot, active, created) VALUES (?, ?, ?, NULL, 'member', 0, 1, ?)",
	);
	const session = sqlite.query(
		"INSERT INTO hubbub_sessions (id, token_hash, account_id, created, last_used, user_agent, address) VALUES (?, ?, ?, ?, ?, 'bench', '127.0.0.1')",
	);
	sqlite.transaction(() => {
		for (let i = 0; i < n; i++) {
			account.run(`a${i}`, `b${i}`, nameKey(`b${i}`), now);
			session.run(`s${i}`, hashToken(`bench-${i}`), `a${i}`, now, now);
		}
	})();
	sqlite.close();
}

async function run(mode: "none" | "accounts"): Promise<StepResult[]> {
	const dir = mkdtempSync(join(tmpdir(), `hubbub-bench-${mode}-`));
	const db = join(dir, "h.db");
	if (mode === "accounts") await seed(db, clients);
	const port = await freePort();
	const server = Bun.spawn(
		[
			process.execPath,
			join(ROOT, "server.ts"),
			...["--port", String(port), "--host", "127.0.0.1", "--db", db, "--auth", mode],
			...ONE_ADDRESS_MANY_PEOPLE,
			...["--log-level", "warn"],
		],
		{ stdout: "ignore", stderr: "inherit" },
	);
	try {
		await waitForPort(port, () => server.exitCode !== null);
		const job: Job = {
			kind: "hubbub",
			port,
			serverPid: server.pid,
			scenario: "fanout",
			clients,
			rates,
			stepSeconds: 2,
			repeats: 1,
			sessions: mode === "accounts",
		};
		const gen = Bun.spawn([process.execPath, join(ROOT, "bench", "generator.ts"), JSON.stringify(job)], {
			stdout: "pipe",
			stderr: "inherit",
		});
		const out = await new Response(gen.stdout).text();
		if ((await gen.exited) !== 0) throw new Error(`generator failed in ${mode} mode`);
		return (JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as { steps: StepResult[] }).steps;
	} finally {
		server.kill("SIGKILL");
		await server.exited;
		rmSync(dir, { recursive: true, force: true });
	}
}

const row = (mode: string, s: StepResult) =>
	`${mode.padEnd(9)} ${String(s.offered).padStart(9)} ${String(Math.round(s.deliveredPerSec)).padStart(12)} ${s.p50.toFixed(1).padStart(7)} ${s.p99.toFixed(1).padStart(7)} ${`${Math.round(s.serverCpu * 100)}%`.padStart(11)} ${String(s.errors).padStart(7)}`;

console.log(
	`fan-out, ${clients} clients in one room, from source (bun server.ts), ${runs} run(s), modes alternating`,
);
console.log("mode      offered/s  delivered/s  p50 ms  p99 ms  server CPU  errors  run");
const all: { mode: string; step: StepResult }[] = [];
for (let r = 1; r <= runs; r++) {
	for (const mode of ["none", "accounts"] as const) {
		for (const step of await run(mode)) {
			all.push({ mode, step });
			console.log(`${row(mode, step)}  ${String(r).padStart(3)}`);
		}
	}
}
if (runs > 1) {
	const median = (xs: number[]) => {
		const sorted = [...xs].sort((a, b) => a - b);
		const mid = sorted.length >> 1;
		return sorted.length % 2
			? (sorted[mid] as number)
			: ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
	};
	const figure = (xs: number[], digits: number) =>
		`${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
	console.log(`\nmedian (min–max) of ${runs} runs`);
	console.log("mode      offered/s  delivered/s               p50 ms                p99 ms");
	for (const mode of ["none", "accounts"])
		for (const rate of rates) {
			const steps = all.filter((x) => x.mode === mode && x.step.offered === rate).map((x) => x.step);
			console.log(
				`${mode.padEnd(9)} ${String(rate).padStart(9)}  ${figure(
					steps.map((s) => s.deliveredPerSec),
					0,
				).padEnd(24)} ${figure(
					steps.map((s) => s.p50),
					1,
				).padEnd(21)} ${figure(
					steps.map((s) => s.p99),
					1,
				)}`,
			);
		}
}
