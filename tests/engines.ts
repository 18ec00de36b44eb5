// Real engines for tests: a throwaway PostgreSQL cluster on a free port in a temp folder, removed afterwards.

import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import { freePort, waitForPort } from "../bench/net.ts";

/** The newest installed PostgreSQL's server binaries (Debian keeps them out of PATH). */
export function pgBin(): string {
	const root = "/usr/lib/postgresql";
	const version = existsSync(root)
		? readdirSync(root)
				.filter((v) => /^\d+$/.test(v))
				.sort((a, b) => Number(b) - Number(a))[0]
		: undefined;
	if (!version)
		throw new Error(
			"PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)",
		);
	return join(root, version, "bin");
}

/** PostgreSQL refuses to run as root: run its tools as the `postgres` user then. */
function asPostgres(cmd: string[]): string[] {
	return process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
}

function run(cmd: string[]): void {
	const r = Bun.spawnSync(asPostgres(cmd), { stdout: "pipe", stderr: "pipe" });
	if (r.exitCode !== 0) throw new Error(`${cmd[0]} failed: ${r.stderr.toString()}${r.stdout.toString()}`);
}

/** As `run`, without blocking the event loop: for callers that keep clients talking meanwhile. */
async function runAsync(cmd: string[]): Promise<void> {
	const p = Bun.spawn(asPostgres(cmd), { stdout: "pipe", stderr: "pipe" });
	const [code, out, err] = await Promise.all([
		p.exited,
		new Response(p.stdout).text(),
		new Response(p.stderr).text(),
	]);
	if (code !== 0) throw new Error(`${cmd[0]} failed: ${err}${out}`);
}

export interface Postgres {
	url: string;
	port: number;
	/** Makes an empty database of its own in this cluster and returns its URL. */
	database(): Promise<string>;
	stop(): void;
	start(): void;
	/** `stop` and `start` without blocking the event loop. */
	stopAsync(): Promise<void>;
	startAsync(): Promise<void>;
	[Symbol.dispose](): void;
}

/** Starts a fresh PostgreSQL cluster (trust auth, loopback only) and returns its URL. */
export async function startPostgres(): Promise<Postgres> {
	const bin = pgBin();
	const dir = mkdtempSync(join(tmpdir(), "hubbub-pg-"));
	chmodSync(dir, 0o777);
	const data = join(dir, "data");
	const port = await freePort();
	if (process.getuid?.() === 0) Bun.spawnSync(["chown", "postgres", dir]);
	run([join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
	const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
	const startCmd = [join(bin, "pg_ctl"), "-D", data, "-o", options, "-l", join(dir, "log"), "-w", "start"];
	const stopCmd = [join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"];
	const start = () => run(startCmd);
	const stop = () => run(stopCmd);
	start();
	let running = true;
	const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
	let made = 0;
	return {
		url,
		port,
		database: async () => {
			const name = `db${++made}`;
			const admin = new SQL(url);
			await admin.unsafe(`CREATE DATABASE ${name}`);
			await admin.close();
			return url.replace(/\/postgres$/, `/${name}`);
		},
		start: () => {
			start();
			running = true;
		},
		stop: () => {
			stop();
			running = false;
		},
		startAsync: async () => {
			await runAsync(startCmd);
			running = true;
		},
		stopAsync: async () => {
			await runAsync(stopCmd);
			running = false;
		},
		[Symbol.dispose]: () => {
			if (running) stop();
			rmSync(dir, { recursive: true, force: true });
		},
	};
}

export interface Redis {
	url: string;
	port: number;
	/** The server's process id while it runs. */
	pid(): number | undefined;
	stop(): Promise<void>;
	start(): Promise<void>;
	[Symbol.asyncDispose](): Promise<void>;
}

/** Starts a throwaway redis-server on a free loopback port, keeping nothing on disk. */
export async function startRedis(onPort?: number): Promise<Redis> {
	const dir = mkdtempSync(join(tmpdir(), "hubbub-redis-"));
	const port = onPort ?? (await freePort());
	let proc: ReturnType<typeof Bun.spawn> | undefined;
	const start = async () => {
		proc = Bun.spawn(
			[
				"redis-server",
				"--port",
				String(port),
				"--bind",
				"127.0.0.1",
				"--save",
				"",
				"--appendonly",
				"no",
				"--dir",
				dir,
			],
			{ stdout: "ignore", stderr: "inherit" },
		);
		const running = proc;
		await waitForPort(port, () => running.exitCode !== null);
	};
	const stop = async () => {
		proc?.kill("SIGKILL");
		await proc?.exited;
		proc = undefined;
	};
	await start();
	return {
		url: `redis://127.0.0.1:${port}`,
		port,
		pid: () => proc?.pid,
		start,
		stop,
		[Symbol.asyncDispose]: async () => {
			await stop();
			rmSync(dir, { recursive: true, force: true });
		},
	};
}
