// The SQLite store alone, without sockets: `bun bench/store.ts [msg/s] [seconds] [--quota]` appends at a
// steady rate over 500 rooms and 5,000 names (the many-rooms scenario's shape) and prints the event loop's
// CPU a message, the commits' durations and the appends' acknowledgement times. Pin it to one core
// (`taskset -c 0`) to compare builds: it sees in 10 s what the rooms bench needs many noisy runs for.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../lib/store-sqlite.ts";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const rate = Number(args[0] ?? 10_000);
const seconds = Number(args[1] ?? 10);
const total = rate * seconds;
const dir = mkdtempSync(join(tmpdir(), "hubbub-store-bench-"));
const commits: number[] = [];
const store = new SqliteStore(join(dir, "bench.db"), {
	onCommit: (s) => commits.push(s * 1000),
	// The server's default (--quota-per-day 16MiB): each send is charged to its name inside its commit.
	dailyQuota: process.argv.includes("--quota") ? 16 * 1024 ** 2 : 0,
});

const acks: number[] = [];
let sent = 0;
const t0 = performance.now();
const cpu0 = process.threadCpuUsage();
await new Promise<void>((done) => {
	// Every millisecond, the sends due by now: the offered rate, whatever the commits take.
	const tick = () => {
		const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
		while (sent < due) {
			const i = sent++;
			const at = performance.now();
			store
				.append({
					room: `room-${i % 500}`,
					from: `user${i % 5000}`,
					text: `message ${i} ~t:${Date.now()}~`,
					ts: Date.now(),
				})
				.then(() => acks.push(performance.now() - at))
				.catch((e: unknown) => console.error((e as Error).message));
		}
		if (sent < total) setTimeout(tick, 1);
		else setTimeout(done, 200);
	};
	tick();
});
const cpu = process.threadCpuUsage(cpu0);
const walMb = statSync(join(dir, "bench.db-wal"), { throwIfNoEntry: false })?.size ?? 0;
await store.close();
rmSync(dir, { recursive: true, force: true });

const at = (xs: number[], q: number) => {
	const s = [...xs].sort((a, b) => a - b);
	return (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0).toFixed(1);
};
console.log(
	[
		`${rate} msg/s for ${seconds} s: event loop CPU ${((cpu.user + cpu.system) / sent).toFixed(1)} µs a message`,
		`${commits.length} commits (${(sent / commits.length).toFixed(1)} messages each): ms p50 ${at(commits, 0.5)}, p99 ${at(commits, 0.99)}, max ${at(commits, 1)}, over 10 ms ${commits.filter((c) => c > 10).length}`,
		`acknowledged: ms p50 ${at(acks, 0.5)}, p99 ${at(acks, 0.99)}, max ${at(acks, 1)}; WAL at the end ${(walMb / 1e6).toFixed(1)} MB`,
	].join("\n"),
);
