// Attacks on the account routes found against the built binary: bodies streamed
// without a length, and sign-in lockouts dodged by spelling the name differently.
import { describe, expect, test } from "bun:test";
import { Browser, invite, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";

describe("JSON bodies without Content-Length", () => {
	test("a chunked sign-in, sign-up or invite body far over 64 KiB is refused with 413 while little of it is read", async () => {
		await using s = await startAccountsServer();
		const admin = await setupAdmin(s);
		const MiB = 1024 ** 2;
		const chunk = new TextEncoder().encode("y".repeat(MiB));
		/** Posts a 100 MiB JSON body in 1 MiB chunks (fetch sends it chunked); tells how many MiB the server took. */
		const post = async (path: string, cookie?: string) => {
			let sent = 0;
			const body = new ReadableStream<Uint8Array>({
				pull(c) {
					if (sent === 0) c.enqueue(new TextEncoder().encode('{"name":"a","password":"xxxxxxxx","pad":"'));
					if (sent >= 100) return c.close();
					sent++;
					c.enqueue(chunk);
				},
			});
			const r = await fetch(`${s.url}${path}`, {
				method: "POST",
				headers: { origin: s.url, "content-type": "application/json", ...(cookie ? { cookie } : {}) },
				body,
			}).catch(() => undefined);
			// Either the 413 arrives, or the server closed the connection while the client was still sending.
			if (r) expect(r.status).toBe(413);
			return sent;
		};
		Bun.gc(true);
		const before = process.memoryUsage().rss;
		const sent = await Promise.all([
			post("/api/auth/signin"),
			post("/api/auth/signup"),
			post("/api/auth/signin"),
			post("/api/admin/invites", admin.cookie),
		]);
		const grown = process.memoryUsage().rss - before;
		// Cut off near the cap, not at the end of the body nor at Bun's own 128 MiB bound.
		for (const n of sent) expect(n).toBeLessThan(16);
		expect(grown).toBeLessThan(64 * MiB);
		// The server still answers.
		expect((await new Browser(s.url).call("GET", "/api/auth/state")).status).toBe(200);
	}, 60_000);
});

describe("the per-account sign-in lockout", () => {
	test("once a name is locked, the same name with extra spaces or another case is locked too, even with the right password", async () => {
		await using s = await startAccountsServer({ config: { trustProxy: ["127.0.0.1"] } });
		const admin = await setupAdmin(s);
		await invite(s, admin, "member2", "member2 password");
		const b = new Browser(s.url);
		// Each attempt from its own address, so only the per-account limit can lock.
		const signin = (name: string, password: string, i: number) =>
			b.call("POST", "/api/auth/signin", { name, password }, { "x-forwarded-for": `198.51.${i}.1` });
		for (let i = 0; i < 10; i++) expect((await signin("member2", `wrong ${i} pass`, i)).status).toBe(401);
		expect((await signin("member2", "member2 password", 20)).status).toBe(429);
		for (const [i, spelled] of [" member2 ", "member2  ", "\tMEMBER2", "Member2\u00a0"].entries())
			expect((await signin(spelled, "member2 password", 30 + i)).status).toBe(429);
		// The lockout counts the spellings as one: spaced wrong attempts lock the plain name as well.
		const other = await invite(s, admin, "member3", "member3 password");
		expect(other.cookie).toBeDefined();
		for (let i = 0; i < 10; i++)
			expect((await signin(i % 2 ? ` member3 ` : "Member3  ", `wrong ${i} pass`, 50 + i)).status).toBe(401);
		expect((await signin("member3", "member3 password", 70)).status).toBe(429);
	}, 60_000);
});
