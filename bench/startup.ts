// Binary size and start-up time to the first accepted WebSocket connection: `bun bench/startup.ts` after `npm run build`.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const binary = join(import.meta.dir, "..", "dist", "hubbub");
const runs = Number(process.argv[2] ?? 10);

async function once(): Promise<number> {
	const dir = mkdtempSync(join(tmpdir(), "hubbub-startup-"));
	const t0 = performance.now();
	const proc = Bun.spawn([binary, "--port", "0", "--host", "127.0.0.1", "--db", join(dir, "h.db")], {
		stdout: "pipe",
		stderr: "ignore",
	});
	try {
		// The first log line says where it listens.
		const { value } = await proc.stdout.getReader().read();
		const port = JSON.parse(new TextDecoder().decode(value).split("\n")[0] ?? "{}").port as number;
		for (;;) {
			const ok = await new Promise<boolean>((resolve) => {
				const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
				ws.onopen = () => {
					ws.close();
					resolve(true);
				};
				ws.onerror = () => resolve(false);
			});
			if (ok) return performance.now() - t0;
			await Bun.sleep(1);
		}
	} finally {
		proc.kill("SIGKILL");
		await proc.exited;
		rmSync(dir, { recursive: true, force: true });
	}
}

const times: number[] = [];
for (let i = 0; i < runs; i++) times.push(await once());
times.sort((a, b) => a - b);
const mb = statSync(binary).size / 1024 / 1024;
console.log(`binary: ${mb.toFixed(1)} MiB`);
console.log(
	`start-up to first accepted connection over ${runs} runs: median ${times[Math.floor(runs / 2)]?.toFixed(1)} ms, min ${times[0]?.toFixed(1)} ms, max ${times.at(-1)?.toFixed(1)} ms`,
);
