// Accounts, sessions, invites, reset links and bot tokens, against SQLite and PostgreSQL alike.

import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { AccountStore } from "../lib/account-store.ts";
import { AccountFailure, Accounts, hashToken, SESSION_IDLE_MS } from "../lib/accounts.ts";
import { nameKey } from "../lib/names.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { tempDir } from "./helpers.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

interface Backend {
	/** A fresh database, and a way to open another handle on it (as another process would). */
	fresh(): Promise<{ db: string; [Symbol.dispose](): void }>;
}

const backends: [string, Backend][] = [
	[
		"sqlite",
		{
			async fresh() {
				const dir = tempDir("hubbub-accounts-");
				return { db: join(dir.path, "hubbub.db"), [Symbol.dispose]: () => dir[Symbol.dispose]() };
			},
		},
	],
	["postgres", { fresh: async () => ({ db: await pg.database(), [Symbol.dispose]: () => {} }) }],
];

const client = { address: "192.0.2.7", userAgent: "test agent" };
const code = async (p: Promise<unknown>) => {
	try {
		await p;
		return "ok";
	} catch (e) {
		if (e instanceof AccountFailure) return e.code;
		throw e;
	}
};

describe.each(backends)("%s accounts", (_, backend) => {
	test("first-run setup makes one admin, only while no account exists, even when two are sent at once", async () => {
		using h = await backend.fresh();
		const a = await Accounts.open(h.db);
		const b = await Accounts.open(h.db); // another process on the same database
		try {
			expect(await a.needsSetup()).toBe(true);
			const results = await Promise.all([
				code(a.setup("alice", "correct horse", client)),
				code(b.setup("bob", "battery staple", client)),
			]);
			expect(results.sort()).toEqual(["ok", "setup_done"]);
			const list = await a.list();
			expect(list).toHaveLength(1);
			expect(list[0]?.role).toBe("admin");
			expect(await a.needsSetup()).toBe(false);
			expect(await b.needsSetup()).toBe(false);
		} finally {
			await a.close();
			await b.close();
		}
	});

	test("passwords: 8 to 256 characters, stored only as an argon2id hash", async () => {
		using h = await backend.fresh();
		const a = await Accounts.open(h.db);
		try {
			expect(await code(a.setup("alice", "short", client))).toBe("invalid_password");
			expect(await code(a.setup("alice", "x".repeat(257), client))).toBe("invalid_password");
			expect(await code(a.setup("a\u200Blice", "long enough", client))).toBe("invalid_name");
			await a.setup("alice", "p".repeat(256), client);
			const row = await a.store.accountByKey(nameKey("alice"));
			expect(row?.passwordHash).toStartWith("$argon2id$");
			expect(row?.passwordHash).not.toContain("pppppppp");
		} finally {
			await a.close();
		}
	});

	test("an account stored under an older identity rule is found again after an upgrade", async () => {
		using h = await backend.fresh();
		const first = await Accounts.open(h.db);
		try {
			await first.setup("alice", "correct horse", client);
			// As an older hubbub kept it: the name lower-cased, not today's nameKey (which folds i and l).
			const row = await first.store.accountByKey(nameKey("alice"));
			expect(row).toBeDefined();
			await first.store.rekey((name) => name.toLowerCase());
			expect(await first.store.accountByKey(nameKey("alice"))).toBeUndefined();
		} finally {
			await first.close();
		}
		const upgraded = await Accounts.open(h.db);
		try {
			const signed = await upgraded.signin("alice", "correct horse", client);
			expect(signed.account.name).toBe("alice");
		} finally {
			await upgraded.close();
		}
	});

	test("sign-in: right password gives a session; wrong password, unknown name and look-alike get one answer", async () => {
		using h = await backend.fresh();
		const a = await Accounts.open(h.db);
		try {
			await a.setup("alice", "correct horse", client);
			const signed = await a.signin("ALICE", "correct horse", client);
			expect(signed.account.name).toBe("alice");
			expect(signed.token).toHaveLength(43);
			expect(await code(a.signin("alice", "wrong horse!", client))).toBe("wrong_credentials");
			expect(await code(a.signin("nobody", "correct horse", client))).toBe("wrong_credentials");
			// The store keeps the token's hash, never the token.
			const sessions = await a.sessions(signed.account.id);
			expect(sessions.map((s) => s.tokenHash)).toContain(hashToken(signed.token));
			expect(JSON.stringify(sessions)).not.toContain(signed.token);
			const auth = await a.authenticate(signed.token, client);
			expect(auth?.account.name).toBe("alice");
			expect(await a.authenticate(`${signed.token}x`)).toBeUndefined();
		} finally {
			await a.close();
		}
	});

	test("sessions: list, end one, end all others; password change ends the others; 30 days idle ends one", async () => {
		using h = await backend.fresh();
		let now = Date.now();
		const a = new Accounts(await AccountStore.open(h.db), () => now);
		try {
			const first = await a.setup("alice", "correct horse", client);
			const second = await a.signin("alice", "correct horse", {
				address: "198.51.100.1",
				userAgent: "phone",
			});
			const third = await a.signin("alice", "correct horse", client);
			const ended: string[] = [];
			a.onSessionEnded((hash) => ended.push(hash));
			expect(await a.sessions(first.account.id)).toHaveLength(3);
			const phone = (await a.sessions(first.account.id)).find((s) => s.userAgent === "phone");
			expect(phone?.address).toBe("198.51.100.1");
			expect(await a.endSession(first.account.id, phone?.id as string)).toBe(true);
			expect(ended).toEqual([second.tokenHash]);
			expect(await a.authenticate(second.token)).toBeUndefined();

			const auth = (await a.authenticate(first.token)) as NonNullable<
				Awaited<ReturnType<typeof a.authenticate>>
			>;
			expect(await code(a.changePassword(auth, "wrong", "new password"))).toBe("wrong_credentials");
			await a.changePassword(auth, "correct horse", "new password");
			expect(ended).toContain(third.tokenHash);
			expect(await a.authenticate(third.token)).toBeUndefined();
			expect(await a.authenticate(first.token)).toBeDefined();
			expect(await code(a.signin("alice", "correct horse", client))).toBe("wrong_credentials");
			const fourth = await a.signin("alice", "new password", client);
			expect(await a.endSessions(first.account.id, fourth.tokenHash)).toBe(1);
			expect(await a.authenticate(first.token)).toBeUndefined();

			now += SESSION_IDLE_MS + 1000;
			expect(await a.authenticate(fourth.token)).toBeUndefined();
		} finally {
			await a.close();
		}
	});

	test("invites: N uses, expiry, revocation, listed with who used them; sign-up modes", async () => {
		using h = await backend.fresh();
		let now = Date.now();
		const a = new Accounts(await AccountStore.open(h.db), () => now);
		try {
			const admin = await a.setup("alice", "correct horse", client);
			expect(await code(a.signup("bob", "bob password", undefined, "invite", client))).toBe("signup_closed");
			expect(await code(a.signup("bob", "bob password", "made-up", "invite", client))).toBe("invalid_invite");
			const two = await a.createInvite(admin.account, 2, 1);
			expect(await a.inviteUsable(two.code)).toBe(true);
			await a.signup("bob", "bob password", two.code, "invite", client);
			expect(await code(a.signup("BOB", "bob password", two.code, "invite", client))).toBe("name_taken");
			await a.signup("carol", "carol password", two.code, "closed", client);
			expect(await code(a.signup("dave", "dave password", two.code, "invite", client))).toBe(
				"invalid_invite",
			);
			const listed = (await a.invites()).find((i) => i.id === two.id);
			expect(listed?.uses).toBe(2);
			expect(listed?.usedBy).toEqual(["bob", "carol"]);
			expect(JSON.stringify(await a.invites())).not.toContain(two.code);

			const revoked = await a.createInvite(admin.account, 5, 1);
			await a.revokeInvite(revoked.id);
			expect(await code(a.signup("dave", "dave password", revoked.code, "invite", client))).toBe(
				"invalid_invite",
			);
			const expiring = await a.createInvite(admin.account, 5, 1);
			now += 3600_000 + 1;
			expect(await code(a.signup("dave", "dave password", expiring.code, "invite", client))).toBe(
				"invalid_invite",
			);
			await a.signup("erin", "erin password", undefined, "open", client);
			expect((await a.list()).map((x) => x.name)).toEqual(["alice", "bob", "carol", "erin"]);
		} finally {
			await a.close();
		}
	});

	test("roles, deactivation (ends sessions, refuses sign-in), the last admin is kept, reset links are one-time", async () => {
		using h = await backend.fresh();
		const a = await Accounts.open(h.db);
		try {
			const admin = await a.setup("alice", "correct horse", client);
			const invite = await a.createInvite(admin.account, 1, 1);
			const bob = await a.signup("bob", "bob password", invite.code, "invite", client);
			expect(await code(a.setActive("alice", false))).toBe("last_admin");
			expect(await code(a.setRole("alice", "member"))).toBe("last_admin");
			await a.setRole("bob", "admin");
			expect((await a.byName("bob"))?.role).toBe("admin");
			await a.setRole("bob", "member");
			const ended: string[] = [];
			a.onSessionEnded((hash) => ended.push(hash));
			await a.setActive("bob", false);
			expect(ended).toEqual([bob.tokenHash]);
			expect(await a.authenticate(bob.token)).toBeUndefined();
			expect(await code(a.signin("bob", "bob password", client))).toBe("wrong_credentials");
			await a.setActive("bob", true);
			await a.signin("bob", "bob password", client);

			const reset = await a.resetLink("bob");
			expect(await a.resetName(reset.code)).toBe("bob");
			const again = await a.useReset(reset.code, "fresh password", client);
			expect(again.account.name).toBe("bob");
			expect(await code(a.useReset(reset.code, "other password", client))).toBe("invalid_reset");
			await a.signin("bob", "fresh password", client);
			expect(await code(a.setActive("nobody", false))).toBe("not_found");
		} finally {
			await a.close();
		}
	});

	test("bots: a token shown once and stored hashed, refused once revoked or the bot deactivated; bots cannot sign in", async () => {
		using h = await backend.fresh();
		const a = await Accounts.open(h.db);
		try {
			await a.setup("alice", "correct horse", client);
			const made = await a.createBot("deploy-bot");
			expect(made.token).toStartWith("hbt_");
			expect((await a.bot(made.token))?.name).toBe("deploy-bot");
			expect(JSON.stringify(await a.tokens("deploy-bot"))).not.toContain(made.token);
			expect(await code(a.signin("deploy-bot", "", client))).toBe("wrong_credentials");
			const second = await a.newToken("deploy-bot");
			await a.revokeToken("deploy-bot", made.tokenId);
			expect(await a.bot(made.token)).toBeUndefined();
			expect((await a.bot(second.token))?.name).toBe("deploy-bot");
			await a.setActive("deploy-bot", false);
			expect(await a.bot(second.token)).toBeUndefined();
			expect(await a.bot("hbt_forged")).toBeUndefined();
		} finally {
			await a.close();
		}
	});

	test("a session ended through one handle is heard by another within a second (the revocation log)", async () => {
		using h = await backend.fresh();
		const a = await Accounts.open(h.db);
		const b = await Accounts.open(h.db);
		try {
			const signed = await a.setup("alice", "correct horse", client);
			const heard = new Promise<string>((resolve) => b.onSessionEnded(resolve));
			await b.watchRevocations((e) => {
				throw e;
			});
			await a.endSessions(signed.account.id);
			expect(await heard).toBe(signed.tokenHash);
		} finally {
			await a.close();
			await b.close();
		}
	});
});

test("a database made before accounts existed opens: its messages stay, the account tables are added", async () => {
	using dir = tempDir("hubbub-accounts-");
	const path = join(dir.path, "old.db");
	const old = new SqliteStore(path);
	await old.append({ room: "general", from: "alice", text: "from before", ts: 1 });
	await old.close();
	const a = await Accounts.open(path);
	await a.setup("alice", "correct horse", client);
	await a.close();
	const store = new SqliteStore(path);
	expect((await store.latest("general", 10)).messages.map((m) => [m.from, m.text])).toEqual([
		["alice", "from before"],
	]);
	await store.close();
	const db = new Database(path, { readonly: true });
	expect(db.query("SELECT COUNT(*) AS n FROM hubbub_accounts").get()).toEqual({ n: 1 });
	db.close();
});
