// `hubbub admin …` as a person with shell access runs it, against a SQLite file and a PostgreSQL URL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Accounts } from "../lib/accounts.ts";
import { Browser, startAccountsServer } from "./accounts-helpers.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { ROOT, tempDir } from "./helpers.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

async function admin(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
	const proc = Bun.spawn([process.execPath, join(ROOT, "server.ts"), "admin", ...args], {
		stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
		stdout: "pipe",
		stderr: "pipe",
		env: { ...process.env, DATABASE_URL: "" },
	});
	const [out, err, code] = await Promise.all([
		new Response(proc.stdout).text(),
		new Response(proc.stderr).text(),
		proc.exited,
	]);
	return { code, out, err };
}

const engines: [string, () => Promise<{ db: string; [Symbol.dispose](): void }>][] = [
	[
		"sqlite",
		async () => {
			const dir = tempDir("hubbub-cli-");
			return { db: join(dir.path, "chat.db"), [Symbol.dispose]: () => dir[Symbol.dispose]() };
		},
	],
	["postgres", async () => ({ db: await pg.database(), [Symbol.dispose]: () => {} })],
];

describe.each(engines)("hubbub admin against %s", (_, fresh) => {
	test("create-user, list-users, and a lost admin password recovered with reset-password", async () => {
		using h = await fresh();
		const made = await admin(
			["create-user", "root", "--admin", "--password-stdin", "--db", h.db],
			"first password\n",
		);
		expect(made).toMatchObject({ code: 0, out: "made admin root\n" });
		const linked = await admin(["create-user", "bob", "--db", h.db, "--url", "https://chat.example.com"]);
		expect(linked.code).toBe(0);
		expect(linked.out).toMatch(
			/^made member bob; .*\nhttps:\/\/chat\.example\.com\/account#reset=[\w-]{43}\n$/,
		);
		expect(
			(await admin(["create-user", "ROOT", "--password-stdin", "--db", h.db], "another one\n")).code,
		).toBe(1);

		const list = await admin(["list-users", "--db", h.db]);
		expect(list.code).toBe(0);
		expect(list.out.split("\n").map((l) => l.split("\t").slice(0, 3))).toEqual([
			["root", "admin", "active"],
			["bob", "member", "active"],
			[""],
		]);

		// The admin forgot the password: a link from the shell sets a new one.
		const reset = await admin(["reset-password", "root", "--db", h.db]);
		expect(reset.code).toBe(0);
		const code = /#reset=([\w-]{43})/.exec(reset.out)?.[1] as string;
		if (h.db.startsWith("postgres")) {
			// The server side of the link, on the same database.
			const accounts = await Accounts.open(h.db);
			const signed = await accounts.useReset(code, "second password", { address: "cli", userAgent: "test" });
			expect(signed.account).toMatchObject({ name: "root", role: "admin" });
			await accounts.close();
		} else {
			await using s = await startAccountsServer({ dbPath: h.db });
			const b = new Browser(s.url);
			expect(
				(await b.call("POST", "/api/auth/signin", { name: "root", password: "first password" })).status,
			).toBe(200);
			expect((await b.call("POST", "/api/auth/reset", { code, password: "second password" })).status).toBe(
				200,
			);
			expect((await b.call("GET", "/api/admin/accounts")).status).toBe(200);
			const old = new Browser(s.url);
			expect(
				(await old.call("POST", "/api/auth/signin", { name: "root", password: "first password" })).status,
			).toBe(401);
		}
		expect((await admin(["reset-password", "nobody", "--db", h.db])).code).toBe(1);
	}, 90_000);
});

test("usage errors exit 2 with the usage", async () => {
	const r = await admin(["frobnicate"]);
	expect(r.code).toBe(2);
	expect(r.err).toContain("Usage: hubbub admin create-user NAME");
	expect((await admin(["--help"])).code).toBe(0);
}, 30_000);
