// The compiled executable, copied alone into an empty folder: it serves the page and its assets, chats, and shuts down cleanly.
import { Database } from "bun:sqlite";
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { chatter, ROOT, spawnServer, tempDir } from "./helpers.ts";

const BINARY = join(ROOT, "dist", "hubbub");

beforeAll(async () => {
	// The same command users run, so the test covers what they get.
	const build = Bun.spawn(["npm", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
	if ((await build.exited) !== 0)
		throw new Error(`npm run build failed: ${await new Response(build.stderr).text()}`);
}, 120_000);

function assetsOf(html: string): string[] {
	return [...html.matchAll(/(?:src|href)="([^"]+)"/g)]
		.map((m) => m[1] as string)
		.filter((u) => !/^(https?|data):/.test(u));
}

describe("the compiled binary", () => {
	test("alone in an empty folder, it serves / and every asset the page references", async () => {
		using dir = tempDir("hubbub-bin-");
		const bin = join(dir.path, "hubbub");
		copyFileSync(BINARY, bin);
		const s = await spawnServer([bin, "--port", "0", "--host", "127.0.0.1"], { cwd: dir.path });
		try {
			const page = await fetch(`${s.url}/`);
			expect(page.status).toBe(200);
			expect(page.headers.get("content-type")).toContain("text/html");
			const html = await page.text();
			const assets = assetsOf(html);
			expect(assets.some((a) => a.endsWith(".js"))).toBe(true);
			expect(assets.some((a) => a.endsWith(".css"))).toBe(true);
			// The scripts name further chunks (the account screens, loaded with import()): those are served too.
			const chunks = new Set<string>();
			for (const asset of assets) {
				const res = await fetch(new URL(asset, `${s.url}/`));
				expect(res.status, asset).toBe(200);
				const text = await res.text();
				expect(text.length, asset).toBeGreaterThan(100);
				for (const m of text.matchAll(/"(\/chunk-[a-z0-9]+\.js)"/g)) chunks.add(m[1] as string);
			}
			expect(chunks.size).toBeGreaterThan(0);
			let accountScreens = false;
			for (const chunk of chunks) {
				const res = await fetch(new URL(chunk, `${s.url}/`));
				expect(res.status, chunk).toBe(200);
				if ((await res.text()).includes("Make an invite link")) accountScreens = true;
			}
			expect(accountScreens).toBe(true);
			// The account screens are the same page.
			expect(await (await fetch(`${s.url}/account`)).text()).toBe(html);
			// The default database is made in the working directory.
			expect(existsSync(join(dir.path, "hubbub.db"))).toBe(true);
			const a = await chatter(`ws://127.0.0.1:${s.port}/ws`, "alice", "general");
			a.send({ type: "send", room: "general", text: "from the binary" });
			expect(await a.expect("message")).toMatchObject({ seq: 1, text: "from the binary" });
			// Indexed by the search thread, a second entry point of the executable: found at once.
			a.send({ type: "search", ref: "q", query: "binary" });
			expect(await a.expect("search")).toMatchObject({ ref: "q", hits: [{ room: "general", seq: 1 }] });
		} finally {
			s.proc.kill("SIGKILL");
		}
	});

	test("SIGTERM closes clients with 1001, exits 0, and keeps every acknowledged message", async () => {
		using dir = tempDir("hubbub-bin-");
		const db = join(dir.path, "chat.db");
		const s = await spawnServer([BINARY, "--port", "0", "--host", "127.0.0.1", "--db", db], {
			cwd: dir.path,
		});
		const a = await chatter(`ws://127.0.0.1:${s.port}/ws`, "alice", "general");
		for (let i = 1; i <= 10; i++) a.send({ type: "send", room: "general", id: `m${i}`, text: `m${i}` });
		await a.expect("message", (m) => m.seq === 10);
		s.proc.kill("SIGTERM");
		expect((await a.closed).code).toBe(1001);
		expect(await s.proc.exited).toBe(0);
		const check = new Database(db, { readonly: true });
		expect(check.query("SELECT count(*) AS n FROM messages").get()).toEqual({ n: 10 });
		check.close();
	});

	test("it ignores a bunfig.toml and .env in its working directory", async () => {
		using dir = tempDir("hubbub-bin-");
		// Either file, if read, would stop it from starting: HOST cannot be bound, the preload does not exist.
		await Bun.write(join(dir.path, ".env"), "HOST=host.invalid\n");
		await Bun.write(join(dir.path, "bunfig.toml"), 'preload = ["./missing.ts"]\n');
		expect(process.env.HOST).toBeUndefined();
		const s = await spawnServer([BINARY, "--port", "0", "--db", ":memory:"], { cwd: dir.path });
		try {
			expect(s.logs.find((l) => l.event === "listening")?.url).toBe(`http://0.0.0.0:${s.port}`);
			expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
		} finally {
			s.proc.kill("SIGKILL");
		}
	});
});
