// The randomized fault soak (`npm run soak -- --seed 7 --minutes 10`): three hubbub processes with Redis and
// PostgreSQL (or one shared SQLite file), clients on every process chatting the way the page does, and faults
// at random times. Then soak/check.ts judges every client's log against the store. Exit 1 on any violation.
// It runs under --auth accounts (each client an account with its session cookie), so clients also edit,
// delete and react to their messages, and the checker proves nobody ends showing an old or deleted text.
import { Database } from "bun:sqlite";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SQL } from "bun";
import { freePort, waitForPort } from "../bench/net.ts";
import { Accounts } from "../lib/accounts.ts";
import { type Postgres, type Redis, startPostgres, startRedis } from "../tests/engines.ts";
import { type ClientLog, type Crash, check, describe, type StoredRow, type Verdict } from "./check.ts";
import { SoakClient } from "./client.ts";
import { type Rng, rng } from "./rng.ts";

const ROOT = join(import.meta.dir, "..");
const ROOMS = ["general", "dev", "random", "ops", "music"];
const PROCESSES = 3;
/** How a process is started: from source, or `--binary` for the built executable (`npm run build` first). */
let program = [process.execPath, join(ROOT, "server.ts")];

type StoreKind = "postgres" | "sqlite";
type Fault = "kill" | "stop" | "redis" | "postgres" | "drop" | "burst";

interface Options {
	seed: number;
	seconds: number;
	stores: StoreKind[];
	clientsPerProcess: number;
	out: string;
}

function options(): Options {
	const { values } = parseArgs({
		options: {
			seed: { type: "string" },
			minutes: { type: "string" },
			seconds: { type: "string" },
			store: { type: "string", default: "both" },
			clients: { type: "string", default: "4" },
			binary: { type: "boolean", default: false },
			out: { type: "string" },
		},
	});
	if (values.binary) {
		program = [join(ROOT, "dist", "hubbub")];
		if (!existsSync(program[0] as string)) {
			console.error("--binary runs dist/hubbub: build it first with `npm run build`");
			process.exit(2);
		}
	}
	const seed = values.seed === undefined ? Math.floor(Math.random() * 1e6) : Number(values.seed);
	const seconds = values.seconds !== undefined ? Number(values.seconds) : Number(values.minutes ?? "1") * 60;
	const stores: StoreKind[] = values.store === "both" ? ["postgres", "sqlite"] : [values.store as StoreKind];
	if (!Number.isInteger(seed) || !(seconds > 0) || stores.some((s) => s !== "postgres" && s !== "sqlite")) {
		console.error(
			"usage: npm run soak -- [--seed N] [--minutes M | --seconds S] [--store postgres|sqlite|both] [--clients N] [--binary]",
		);
		process.exit(2);
	}
	return {
		seed,
		seconds,
		stores,
		clientsPerProcess: Number(values.clients),
		out: values.out ?? join(ROOT, "artifacts", "soak", `seed-${seed}`),
	};
}

/** One hubbub process, restarted on the same port after a kill. */
class Proc {
	proc?: ReturnType<typeof Bun.spawn>;
	/** "down" after a kill -9 until restarted; "stopped" while SIGSTOPped. */
	state: "up" | "down" | "stopped" = "down";
	private expectExit = false;
	private incarnation = 0;

	constructor(
		readonly index: number,
		readonly port: number,
		private readonly args: string[],
		private readonly logDir: string,
		private readonly crashes: Crash[],
	) {}

	/**
	 * Starts it and waits until it listens. One that exits while starting (the port still held after a
	 * kill, PostgreSQL away: "cannot open database", status 2) is started again, as systemd's
	 * Restart=on-failure would; that is not a crash.
	 */
	async start(): Promise<void> {
		const giveUp = Date.now() + 90_000;
		for (;;) {
			const log = join(this.logDir, `process-${this.index}.${++this.incarnation}.log`);
			const out = openSync(log, "a");
			let proc: ReturnType<typeof Bun.spawn>;
			try {
				proc = Bun.spawn([...program, "--port", String(this.port), ...this.args], {
					cwd: ROOT,
					stdout: out,
					stderr: out,
					stdin: "ignore",
				});
			} catch (e) {
				// The program itself is missing for a moment (node_modules being reinstalled): try again.
				if (Date.now() > giveUp) throw e;
				await Bun.sleep(1000);
				continue;
			} finally {
				closeSync(out);
			}
			this.proc = proc;
			this.expectExit = false;
			try {
				await waitForPort(this.port, () => proc.exitCode !== null, 20_000);
			} catch (e) {
				this.proc = undefined;
				if (proc.exitCode !== null && Date.now() < giveUp) {
					await Bun.sleep(1000);
					continue;
				}
				proc.kill("SIGKILL");
				throw new Error(
					`process ${this.index} did not start: ${String(e)}\n${readFileSync(log, "utf8").slice(-2000)}`,
				);
			}
			this.state = "up";
			void proc.exited.then(
				(code) => {
					if (this.proc !== proc || this.expectExit) return;
					this.crashes.push({
						process: this.index,
						detail: `status ${code} (${proc.signalCode ?? "no signal"}); see ${log}: ${tail(log)}`,
					});
					this.state = "down";
					this.proc = undefined;
					this.start().catch((err) => console.error(String(err)));
				},
				() => {},
			);
			return;
		}
	}

	async kill(): Promise<void> {
		const p = this.proc;
		if (!p) return;
		this.expectExit = true;
		p.kill("SIGKILL");
		await p.exited;
		this.proc = undefined;
		this.state = "down";
	}

	pause(): void {
		this.proc?.kill("SIGSTOP");
		this.state = "stopped";
	}

	resume(): void {
		this.proc?.kill("SIGCONT");
		if (this.proc) this.state = "up";
	}

	/** SIGTERM, as systemd stops it: it must exit 0. */
	async stop(): Promise<void> {
		const p = this.proc;
		if (!p) return;
		this.expectExit = true;
		p.kill("SIGCONT");
		p.kill("SIGTERM");
		const code = await Promise.race([p.exited, Bun.sleep(10_000).then(() => "timeout" as const)]);
		if (code !== 0) {
			this.crashes.push({ process: this.index, detail: `SIGTERM ended it with ${code}` });
			p.kill("SIGKILL");
		}
		this.proc = undefined;
		this.state = "down";
	}
}

function tail(path: string): string {
	try {
		return readFileSync(path, "utf8").trim().split("\n").slice(-5).join(" | ").slice(-1500);
	} catch {
		return "";
	}
}

interface Result {
	store: StoreKind;
	seconds: number;
	faults: Record<Fault, number>;
	problems: string[];
	verdict: Verdict;
	serverErrors: Record<string, number>;
	out: string;
}

/** One soak against one store kind. */
async function soak(
	store: StoreKind,
	seed: number,
	seconds: number,
	perProcess: number,
	outRoot: string,
): Promise<Result> {
	const out = join(outRoot, store);
	// A repeated seed starts from nothing: no old database, no old logs mixed in.
	rmSync(out, { recursive: true, force: true });
	mkdirSync(out, { recursive: true });
	const plan = rng(seed);
	const crashes: Crash[] = [];
	const faults: Record<Fault, number> = { kill: 0, stop: 0, redis: 0, postgres: 0, drop: 0, burst: 0 };
	/** Faults the soak could not carry out or undo: the run tested less than it says. */
	const problems: string[] = [];
	const redis: Redis = await startRedis();
	let pg: Postgres | undefined;
	let db: string;
	if (store === "postgres") {
		pg = await startPostgres();
		db = await pg.database();
	} else {
		db = join(out, "hubbub.db");
	}
	const settings: Record<string, string> = {
		host: "127.0.0.1",
		db,
		redis: redis.url,
		// Accounts: every client signs in (its cookie names it), and protocol 1.2's edits and deletions are on.
		auth: "accounts",
		// All the soak's clients come from 127.0.0.1 and burst on purpose; every other limit stays as shipped,
		// so a page-like client that runs into one is a finding.
		"send-rate": "2000",
		"send-burst": "4000",
		"max-conns-per-ip": "1000",
		"flood-close": "100000",
		"idle-timeout": "20",
		// Retention well inside a long run, so resumes from below the pruned floor happen too.
		"keep-messages": "3000",
	};
	const flags = Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v]);
	// The accounts, made directly in the database before any process starts (sign-ups are limited per address).
	const cookies = await makeAccounts(db, PROCESSES * perProcess);
	const procs: Proc[] = [];
	for (let i = 0; i < PROCESSES; i++) procs.push(new Proc(i, await freePort(), flags, out, crashes));
	await Promise.all(procs.map((p) => p.start()));
	// Rooms are things in the store under accounts: the first client (the admin) creates them.
	await createRooms(procs[0] as Proc, cookies[0] as string, ROOMS);

	const clients: SoakClient[] = [];
	for (let i = 0; i < PROCESSES * perProcess; i++) {
		const r = plan.fork();
		const rooms = ROOMS.filter(() => r.chance(0.5));
		clients.push(
			new SoakClient(
				`c${i}`,
				procs.map((p) => ({ port: () => p.port })),
				r,
				rooms.length > 0 ? rooms : ["general"],
				cookies[i],
			),
		);
	}
	for (const c of clients) c.start();

	const started = Date.now();
	let ending = false;
	let wake: () => void = () => {};
	const ended = new Promise<void>((resolve) => {
		wake = resolve;
	});
	/** Sleeps, but no longer than the fault phase. */
	const nap = (ms: number) => Promise.race([Bun.sleep(ms), ended]);
	const note = (line: string) =>
		console.log(`  ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${line}`);

	// What clients do all along: mostly talk, sometimes join, leave or vanish.
	const acting = clients.map(async (c, i) => {
		const r = plan.fork();
		await Bun.sleep(r.int(0, 500));
		while (!ending) {
			await nap(r.int(150, 1200));
			if (ending) break;
			const roll = r.next();
			if (roll < 0.7) c.say();
			else if (roll < 0.86) c.change() || c.say();
			else if (roll < 0.92) c.join(r.pick(ROOMS));
			else if (roll < 0.97) {
				if (c.rooms.size > 1) c.leave(r.pick([...c.rooms.keys()]));
			} else if (i % 2 === 0) c.drop();
		}
	});

	const impaired = () => procs.filter((p) => p.state !== "up").length;
	let redisUp = true;
	let pgUp = true;
	const running: Promise<void>[] = [];
	const fault = async (kind: Fault, r: Rng): Promise<void> => {
		switch (kind) {
			case "kill": {
				const p = r.pick(procs.filter((x) => x.state === "up"));
				faults.kill++;
				note(`kill -9 process ${p.index}`);
				await p.kill();
				await nap(r.int(500, 5000));
				await p.start();
				note(`process ${p.index} restarted`);
				return;
			}
			case "stop": {
				const p = r.pick(procs.filter((x) => x.state === "up"));
				const ms = r.int(2000, 20_000);
				faults.stop++;
				note(`SIGSTOP process ${p.index} for ${(ms / 1000).toFixed(1)} s`);
				p.pause();
				await nap(ms);
				p.resume();
				note(`SIGCONT process ${p.index}`);
				return;
			}
			case "redis": {
				redisUp = false;
				faults.redis++;
				note("Redis killed");
				await redis.stop();
				// While Redis is away one process commits more than one resume holds: the issue's own case.
				if (r.chance(0.5)) burst(r, r.int(1000, 1500));
				await nap(r.int(1000, 8000));
				await redis.start();
				redisUp = true;
				note("Redis restarted");
				return;
			}
			case "postgres": {
				if (!pg) return;
				pgUp = false;
				faults.postgres++;
				note("PostgreSQL stopped");
				await pg.stopAsync();
				await nap(r.int(1000, 8000));
				await pg.startAsync();
				pgUp = true;
				note("PostgreSQL started");
				return;
			}
			case "drop": {
				const c = r.pick(clients.filter((x) => x.connected));
				faults.drop++;
				if (c.dropMidFrame()) note(`client ${c.name} dropped mid-frame`);
				return;
			}
			case "burst":
				burst(r, r.int(200, 1200));
				return;
		}
	};
	const burst = (r: Rng, n: number) => {
		const c = r.pick(clients);
		const room = c.rooms.size > 0 ? r.pick([...c.rooms.keys()]) : undefined;
		if (!room) return;
		faults.burst++;
		note(`client ${c.name} sends ${n} messages to #${room} at once`);
		for (let i = 0; i < n; i++) c.say(room);
	};

	// The faults: one every 1–6 s, never more than two processes impaired at once.
	const faulting = (async () => {
		const r = plan.fork();
		await nap(2000);
		while (!ending) {
			const choices: Fault[] = ["drop", "drop", "burst"];
			if (impaired() < PROCESSES - 1) choices.push("kill", "kill", "stop", "stop");
			if (redisUp) choices.push("redis", "redis");
			if (pg && pgUp) choices.push("postgres", "postgres");
			const kind = r.pick(choices);
			if (kind === "drop" && !clients.some((c) => c.connected)) continue;
			running.push(
				fault(kind, r.fork()).catch((e) => {
					problems.push(`${kind}: ${String(e).slice(0, 300)}`);
					note(`fault ${kind} failed: ${String(e).slice(0, 300)}`);
				}),
			);
			await nap(r.int(1000, 6000));
		}
	})();

	await nap(seconds * 1000);
	ending = true;
	wake();
	await faulting;
	await Promise.all(running);
	await Promise.all(acting);
	for (const p of procs) if (p.state === "stopped") p.resume();
	note("faults over; waiting for every client to settle");

	// Calm: everyone reconnects, resumes, gets its sends acknowledged and hears the end of every room, as the
	// store has it. A process may take a while (Redis reconnect backoff); a minute is plenty.
	const settleBy = Date.now() + 60_000;
	for (;;) {
		const heads = await storeHeads(store, db).catch(() => undefined);
		const behind = heads
			? clients.filter((c) => !c.settled || !c.reached(heads.seqs, heads.changes))
			: clients;
		if (behind.length === 0) break;
		if (Date.now() > settleBy) {
			note("not settled after 60 s:");
			for (const c of behind) note(`  ${c.describe()}`);
			break;
		}
		await Bun.sleep(500);
	}
	note("settled");

	const logs: ClientLog[] = clients.map((c) => ({
		client: c.name,
		entries: c.entries,
		finalRooms: c.settled ? [...c.rooms.keys()] : [...c.rooms].filter(([, s]) => s.joined).map(([r]) => r),
		pending: c.pendingSends(),
		oddities: c.oddities,
	}));
	for (const c of clients) c.stop();
	await Promise.all(procs.map((p) => p.stop()));

	const rows = await readStore(store, db);
	await redis[Symbol.asyncDispose]();
	pg?.[Symbol.dispose]();

	const verdict = check(logs, rows, crashes);
	for (const log of logs) {
		writeFileSync(
			join(out, `client-${log.client}.jsonl`),
			`${log.entries.map((e) => JSON.stringify(e)).join("\n")}\n`,
		);
	}
	writeFileSync(join(out, "violations.txt"), verdict.violations.map(describe).join("\n"));
	return { store, seconds, faults, problems, verdict, serverErrors: serverErrors(out), out };
}

/** The last seq and the change counter of every room, as the store has them now. */
async function storeHeads(
	store: StoreKind,
	db: string,
): Promise<{ seqs: Map<string, number>; changes: Map<string, number> }> {
	type Row = { room: string; last: number | string };
	let rows: Row[];
	let counters: Row[];
	if (store === "postgres") {
		const sql = new SQL(db);
		try {
			rows = await sql<Row[]>`SELECT room, max(seq) AS last FROM hubbub_messages GROUP BY room`;
			counters = await sql<Row[]>`SELECT room, changes AS last FROM hubbub_rooms`;
		} finally {
			await sql.close();
		}
	} else {
		const sqlite = new Database(db, { readonly: true });
		try {
			rows = sqlite.query<Row, []>("SELECT room, max(seq) AS last FROM messages GROUP BY room").all();
			counters = sqlite.query<Row, []>("SELECT room, changes AS last FROM room_floors").all();
		} finally {
			sqlite.close();
		}
	}
	return {
		seqs: new Map(rows.map((r) => [r.room, Number(r.last)])),
		changes: new Map(counters.map((r) => [r.room, Number(r.last)])),
	};
}

/** Accounts c0 (an admin) … c{n-1}, each signed in once: their session cookies, in order. */
async function makeAccounts(db: string, n: number): Promise<string[]> {
	const accounts = await Accounts.open(db);
	const client = { address: "127.0.0.1", userAgent: "soak" };
	const cookies: string[] = [];
	try {
		for (let i = 0; i < n; i++) {
			const name = `c${i}`;
			const password = `soak password ${i}`;
			if (i === 0) cookies.push(`hubbub_session=${(await accounts.setup(name, password, client)).token}`);
			else {
				await accounts.createUser(name, password, "member");
				cookies.push(`hubbub_session=${(await accounts.signin(name, password, client)).token}`);
			}
		}
	} finally {
		await accounts.close();
	}
	return cookies;
}

/** Creates the soak's open rooms through one process, as a person would with `create`. */
async function createRooms(proc: Proc, cookie: string, rooms: string[]): Promise<void> {
	const origin = `http://127.0.0.1:${proc.port}`;
	const ws = new WebSocket(`ws://127.0.0.1:${proc.port}/ws`, {
		headers: { origin, cookie },
	} as unknown as string[]);
	const answers = new Map<string, string>();
	let wake = () => {};
	ws.addEventListener("message", (e) => {
		const f = JSON.parse(String(e.data)) as { type: string; ref?: string; code?: string };
		if (f.ref !== undefined) answers.set(f.ref, f.type === "error" ? (f.code ?? "error") : "ok");
		wake();
	});
	await new Promise<void>((resolve, reject) => {
		ws.addEventListener("open", () => resolve(), { once: true });
		ws.addEventListener("error", () => reject(new Error("cannot connect to create the rooms")), {
			once: true,
		});
	});
	for (const room of rooms) ws.send(JSON.stringify({ type: "create", ref: room, room, kind: "open" }));
	const deadline = Date.now() + 20_000;
	// `general` exists already (room_taken is fine for it).
	while (rooms.some((r) => !answers.has(r)) && Date.now() < deadline)
		await new Promise<void>((resolve) => {
			wake = resolve;
			setTimeout(resolve, 200);
		});
	ws.close();
	const failed = rooms.filter(
		(r) => answers.get(r) !== "ok" && !(r === "general" && answers.get(r) === "room_taken"),
	);
	if (failed.length > 0)
		throw new Error(`could not create rooms ${failed.join(", ")}: ${JSON.stringify([...answers])}`);
}

async function readStore(store: StoreKind, db: string): Promise<StoredRow[]> {
	type Row = {
		room: string;
		seq: number | string;
		sender: string;
		client_id: string | null;
		text: string;
		change_seq: number | string | null;
		deleted: number | boolean;
	};
	let raw: Row[];
	if (store === "postgres") {
		const sql = new SQL(db);
		raw = await sql<
			Row[]
		>`SELECT room, seq, sender, client_id, text, change_seq, deleted FROM hubbub_messages`;
		await sql.close();
	} else {
		const sqlite = new Database(db, { readonly: true });
		raw = sqlite
			.query<Row, []>("SELECT room, seq, sender, client_id, text, change_seq, deleted FROM messages")
			.all();
		sqlite.close();
	}
	return raw.map((r) => {
		const row: StoredRow = { room: r.room, seq: Number(r.seq), from: r.sender, text: r.text };
		if (r.client_id !== null) row.id = r.client_id;
		if (r.change_seq !== null) row.change = Number(r.change_seq);
		if (r.deleted) row.deleted = true;
		return row;
	});
}

/** Error lines the processes logged, by event: not violations by themselves, but worth a look. */
function serverErrors(dir: string): Record<string, number> {
	const counts: Record<string, number> = {};
	for (const file of new Bun.Glob("process-*.log").scanSync(dir)) {
		for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
			if (!line.includes('"level":"error"')) continue;
			try {
				const e = JSON.parse(line) as { event?: string };
				counts[e.event ?? "?"] = (counts[e.event ?? "?"] ?? 0) + 1;
			} catch {
				counts["(not JSON)"] = (counts["(not JSON)"] ?? 0) + 1;
			}
		}
	}
	return counts;
}

async function main(): Promise<void> {
	const o = options();
	const share = o.seconds / o.stores.length;
	console.log(
		`soak: seed ${o.seed}, ${o.seconds} s of faults (${o.stores.join(" then ")}), ${o.clientsPerProcess} clients per process; logs in ${o.out}`,
	);
	const results: Result[] = [];
	for (const store of o.stores) {
		console.log(
			`== ${store}: three processes, Redis, ${store === "postgres" ? "PostgreSQL" : "one SQLite file"}`,
		);
		results.push(await soak(store, o.seed, share, o.clientsPerProcess, o.out));
	}
	let bad = 0;
	console.log("\n== soak summary");
	for (const r of results) {
		const s = r.verdict.stats;
		const f = Object.entries(r.faults)
			.map(([k, n]) => `${k} ${n}`)
			.join(", ");
		console.log(`${r.store}: ${r.seconds.toFixed(0)} s; faults: ${f}`);
		console.log(
			`  ${s.stored} messages stored in ${s.rooms} rooms; ${s.clients} clients received ${s.received} copies, ` +
				`${s.acknowledged} sends acknowledged, ${s.resumes} resumes, ${s.echoes} repeated-send echoes, ` +
				`${s.toldGaps} told gaps (${s.toldGapsFilled} filled from history), ${s.pruned} copies of pruned messages, ` +
				`${s.updates} updates (edits, deletions, reactions), ${s.finalChecked} held messages checked against the store at the end`,
		);
		const errors = Object.entries(r.serverErrors);
		if (errors.length > 0)
			console.log(`  error lines in process logs: ${errors.map(([k, n]) => `${k} ${n}`).join(", ")}`);
		for (const p of r.problems) console.log(`  SOAK PROBLEM (this run tested less than it says): ${p}`);
		console.log(`  violations: ${r.verdict.violations.length}`);
		for (const x of r.verdict.violations.slice(0, 30)) console.log(`    ${describe(x)}`);
		if (r.verdict.violations.length > 30) console.log(`    … all in ${join(r.out, "violations.txt")}`);
		bad += r.verdict.violations.length;
	}
	if (bad > 0) {
		console.log("\nFAILED. Reproduce with:");
		for (const r of results) {
			if (r.verdict.violations.length > 0)
				console.log(`  npm run soak -- --seed ${o.seed} --seconds ${r.seconds} --store ${r.store}`);
		}
		process.exit(1);
	}
	console.log("\nno violations");
	process.exit(0);
}

await main();
