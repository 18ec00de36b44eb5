// `npm start` runs hubbub as the executable does: the server is npm's direct child (exec), a SIGTERM to npm shuts it
// down cleanly, and no .env is read from the project folder.
import { expect, test } from "bun:test";
import { readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client, ROOT, spawnServer, tempDir } from "./helpers.ts";

function alive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
}

test("SIGTERM to `npm start` closes clients with 1001 and ends the server; a .env in the project is not read", async () => {
	// The project as a user has it, plus a .env that would require a token for /metrics if it were read.
	using project = tempDir();
	for (const entry of readdirSync(ROOT)) {
		if (entry !== ".env" && entry !== ".git") symlinkSync(join(ROOT, entry), join(project.path, entry));
	}
	writeFileSync(join(project.path, ".env"), "METRICS_TOKEN=from-dotenv\nLOG_LEVEL=error\n");
	const db = join(project.path, "npm.db");
	const s = await spawnServer(["npm", "start", "--", "--port", "0", "--host", "127.0.0.1", "--db", db], {
		cwd: project.path,
	});
	const pid = s.logs.find((l) => l.event === "listening")?.pid as number;
	expect(pid).toBeGreaterThan(0);
	try {
		expect((await fetch(`${s.url}/metrics`)).status).toBe(200);
		const c = await Client.connect(`ws://127.0.0.1:${s.port}/ws`);
		s.proc.kill("SIGTERM");
		expect((await c.closed).code).toBe(1001);
		for (let i = 0; i < 100 && alive(pid); i++) await Bun.sleep(50);
		expect(alive(pid)).toBe(false);
		await s.proc.exited;
		expect(s.logs.map((l) => l.event)).toContain("stopped");
	} finally {
		if (alive(pid)) process.kill(pid, "SIGKILL");
	}
}, 30_000);
