// Where accounts, sessions, invites, reset links, bot tokens and session revocations are kept:
// the same database as the messages (SQLite file or PostgreSQL), through Bun.SQL, one code path for both.
import type { SQL } from "bun";
import { type Engine, isUniqueViolation, openTables } from "./sql-tables.ts";

/**
 * The account tables carry their own schema version (key 'schema' in
 * hubbub_account_meta) so they migrate independently of the message tables;
 * a database made before accounts existed simply gains them at first open.
 */
const SCHEMA_VERSION = 2;
/** pg_advisory_xact_lock key: one migration at a time when several processes start together. */
const MIGRATION_LOCK = 4_817_231;
/** First half of the pg_advisory_xact_lock(int, int) key that serializes attempts under one throttle key. */
const ATTEMPT_LOCK = 4_817_232;

export type Role = "admin" | "member";

export interface AccountRow {
	id: string;
	name: string;
	nameKey: string;
	passwordHash: string | null;
	role: Role;
	bot: boolean;
	active: boolean;
	created: number;
}

export interface SessionRow {
	id: string;
	tokenHash: string;
	accountId: string;
	created: number;
	lastUsed: number;
	userAgent: string;
	address: string;
}

export interface InviteRow {
	id: string;
	codeHash: string;
	createdBy: string;
	created: number;
	expires: number;
	maxUses: number;
	uses: number;
	revoked: boolean;
	/** Names of the accounts made with it, oldest first. */
	usedBy: string[];
}

export interface TokenRow {
	id: string;
	tokenHash: string;
	accountId: string;
	created: number;
	lastUsed: number | null;
}

type Row = Record<string, unknown>;
const num = (v: unknown) => Number(v);

function accountOf(r: Row): AccountRow {
	return {
		id: String(r.id),
		name: String(r.name),
		nameKey: String(r.name_key),
		passwordHash: (r.password_hash as string | null) ?? null,
		role: r.role === "admin" ? "admin" : "member",
		bot: num(r.bot) === 1,
		active: num(r.active) === 1,
		created: num(r.created),
	};
}

function sessionOf(r: Row): SessionRow {
	return {
		id: String(r.id),
		tokenHash: String(r.token_hash),
		accountId: String(r.account_id),
		created: num(r.created),
		lastUsed: num(r.last_used),
		userAgent: String(r.user_agent),
		address: String(r.address),
	};
}

/**
 * Rows only: no hashing, no rules (lib/accounts.ts has those). Every method
 * that must be atomic across processes is one statement or one transaction
 * that starts with a write, so SQLite takes its write lock up front.
 */
export class AccountStore {
	private constructor(
		private readonly sql: SQL,
		readonly engine: Engine,
	) {}

	/** Opens `db` (a postgres:// URL or a SQLite path) and creates or migrates the account tables. */
	static async open(db: string): Promise<AccountStore> {
		return openTables(db, "the account tables", async (sql, engine) => {
			const store = new AccountStore(sql, engine);
			await store.migrate();
			return store;
		});
	}

	private async migrate(): Promise<void> {
		const pg = this.engine === "postgres";
		const serial = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT";
		await this.sql.begin(async (tx) => {
			if (pg) await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
			await tx`CREATE TABLE IF NOT EXISTS hubbub_account_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`;
			const [row] = await tx`SELECT value FROM hubbub_account_meta WHERE key = 'schema'`;
			const version = row ? Number(row.value) : 0;
			if (version > SCHEMA_VERSION)
				throw new Error(`account schema version ${version} is newer than this hubbub understands`);
			if (version < 1) {
				await tx.unsafe(`CREATE TABLE hubbub_accounts (
					id TEXT PRIMARY KEY,
					name TEXT NOT NULL,
					name_key TEXT NOT NULL UNIQUE,
					password_hash TEXT,
					role TEXT NOT NULL,
					bot INTEGER NOT NULL,
					active INTEGER NOT NULL,
					created BIGINT NOT NULL
				)`);
				await tx.unsafe(`CREATE TABLE hubbub_sessions (
					id TEXT PRIMARY KEY,
					token_hash TEXT NOT NULL UNIQUE,
					account_id TEXT NOT NULL,
					created BIGINT NOT NULL,
					last_used BIGINT NOT NULL,
					user_agent TEXT NOT NULL,
					address TEXT NOT NULL
				)`);
				await tx.unsafe("CREATE INDEX hubbub_sessions_account ON hubbub_sessions (account_id)");
				await tx.unsafe(`CREATE TABLE hubbub_invites (
					id TEXT PRIMARY KEY,
					code_hash TEXT NOT NULL UNIQUE,
					created_by TEXT NOT NULL,
					created BIGINT NOT NULL,
					expires BIGINT NOT NULL,
					max_uses INTEGER NOT NULL,
					uses INTEGER NOT NULL,
					revoked INTEGER NOT NULL
				)`);
				await tx.unsafe(`CREATE TABLE hubbub_invite_uses (
					invite_id TEXT NOT NULL,
					account_id TEXT NOT NULL,
					at BIGINT NOT NULL
				)`);
				await tx.unsafe(`CREATE TABLE hubbub_resets (
					token_hash TEXT PRIMARY KEY,
					account_id TEXT NOT NULL,
					expires BIGINT NOT NULL
				)`);
				await tx.unsafe(`CREATE TABLE hubbub_tokens (
					id TEXT PRIMARY KEY,
					token_hash TEXT NOT NULL UNIQUE,
					account_id TEXT NOT NULL,
					created BIGINT NOT NULL,
					last_used BIGINT
				)`);
				// Every ended session, so each process closes its sockets (polled; see lib/accounts.ts).
				await tx.unsafe(`CREATE TABLE hubbub_revocations (
					seq ${serial},
					token_hash TEXT NOT NULL,
					at BIGINT NOT NULL
				)`);
			}
			if (version < 2) {
				// Sign-in, sign-up and reset attempts, counted here so every process of a cluster shares one limit.
				await tx.unsafe(`CREATE TABLE hubbub_attempts (
					seq ${serial},
					key TEXT NOT NULL,
					at BIGINT NOT NULL
				)`);
				await tx.unsafe("CREATE INDEX hubbub_attempts_key ON hubbub_attempts (key, at)");
			}
			if (version < SCHEMA_VERSION)
				await tx`INSERT INTO hubbub_account_meta (key, value) VALUES ('schema', ${String(SCHEMA_VERSION)})
					ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
		});
	}

	/**
	 * Recomputes every account's name_key with `keyOf`: the identity rule (lib/names.ts nameKey) may
	 * change between versions, and an account stored under an older key could no longer be found.
	 * Returns the names whose new key another account already holds; they keep their old key.
	 */
	async rekey(keyOf: (name: string) => string): Promise<string[]> {
		const conflicts: string[] = [];
		const rows = await this.sql`SELECT id, name, name_key FROM hubbub_accounts`;
		for (const r of rows) {
			const key = keyOf(String(r.name));
			if (key === String(r.name_key)) continue;
			try {
				await this.sql`UPDATE hubbub_accounts SET name_key = ${key} WHERE id = ${r.id}`;
			} catch {
				conflicts.push(String(r.name));
			}
		}
		return conflicts;
	}

	// ---- accounts

	async countAccounts(): Promise<number> {
		const [r] = await this.sql`SELECT COUNT(*) AS n FROM hubbub_accounts`;
		return num(r?.n ?? 0);
	}

	/**
	 * Inserts an account; "taken" when its name key is in use. With `onlyFirst`
	 * it is inserted only while no account exists ("exists" otherwise): the
	 * 'setup' row is taken in the same transaction, so two first-run forms
	 * sent at once (to two processes) make one admin.
	 */
	async insertAccount(a: AccountRow, onlyFirst = false): Promise<"ok" | "taken" | "exists"> {
		try {
			return await this.sql.begin(async (tx) => {
				if (onlyFirst) {
					const claimed =
						await tx`INSERT INTO hubbub_account_meta (key, value) VALUES ('setup', ${String(a.created)})
						ON CONFLICT (key) DO NOTHING RETURNING key`;
					const [r] = await tx`SELECT COUNT(*) AS n FROM hubbub_accounts`;
					if (claimed.length === 0 || num(r?.n) > 0) return "exists" as const;
				}
				await tx`INSERT INTO hubbub_accounts (id, name, name_key, password_hash, role, bot, active, created)
					VALUES (${a.id}, ${a.name}, ${a.nameKey}, ${a.passwordHash}, ${a.role}, ${a.bot ? 1 : 0}, ${a.active ? 1 : 0}, ${a.created})`;
				return "ok" as const;
			});
		} catch (e) {
			if (isUniqueViolation(e)) return "taken";
			throw e;
		}
	}

	/**
	 * Takes one use of a live invite and inserts the account in one
	 * transaction: "invalid" when the invite is unknown, revoked, expired or
	 * used up; "taken" when the name is (the use is then not spent).
	 */
	async insertAccountWithInvite(
		a: AccountRow,
		codeHash: string,
		now: number,
	): Promise<"ok" | "taken" | "invalid"> {
		try {
			return await this.sql.begin(async (tx) => {
				const [invite] = await tx`UPDATE hubbub_invites SET uses = uses + 1
					WHERE code_hash = ${codeHash} AND revoked = 0 AND expires > ${now} AND uses < max_uses
					RETURNING id`;
				if (!invite) return "invalid" as const;
				await tx`INSERT INTO hubbub_accounts (id, name, name_key, password_hash, role, bot, active, created)
					VALUES (${a.id}, ${a.name}, ${a.nameKey}, ${a.passwordHash}, ${a.role}, 0, 1, ${a.created})`;
				await tx`INSERT INTO hubbub_invite_uses (invite_id, account_id, at) VALUES (${invite.id}, ${a.id}, ${now})`;
				return "ok" as const;
			});
		} catch (e) {
			if (isUniqueViolation(e)) return "taken";
			throw e;
		}
	}

	async accountByKey(nameKey: string): Promise<AccountRow | undefined> {
		const [r] = await this.sql`SELECT * FROM hubbub_accounts WHERE name_key = ${nameKey}`;
		return r ? accountOf(r) : undefined;
	}

	async accountById(id: string): Promise<AccountRow | undefined> {
		const [r] = await this.sql`SELECT * FROM hubbub_accounts WHERE id = ${id}`;
		return r ? accountOf(r) : undefined;
	}

	async listAccounts(): Promise<AccountRow[]> {
		const rows = await this.sql`SELECT * FROM hubbub_accounts ORDER BY created, name_key`;
		return (rows as Row[]).map(accountOf);
	}

	async setRole(id: string, role: Role): Promise<void> {
		await this.sql`UPDATE hubbub_accounts SET role = ${role} WHERE id = ${id}`;
	}

	/** Admins that are active, for the "never remove the last admin" rule. */
	async activeAdmins(): Promise<number> {
		const [r] = await this
			.sql`SELECT COUNT(*) AS n FROM hubbub_accounts WHERE role = 'admin' AND active = 1 AND bot = 0`;
		return num(r?.n ?? 0);
	}

	/** Deactivating ends every session of the account and records them as revoked (a bot's tokens stop working while it is inactive). */
	async setActive(id: string, active: boolean, now: number): Promise<string[]> {
		return this.sql.begin(async (tx) => {
			await tx`UPDATE hubbub_accounts SET active = ${active ? 1 : 0} WHERE id = ${id}`;
			if (active) return [];
			return this.endSessionsIn(tx, id, undefined, now);
		});
	}

	/** Sets the password hash and ends every session except `keep`; returns the ended token hashes. */
	async setPassword(id: string, hash: string, keep: string | undefined, now: number): Promise<string[]> {
		return this.sql.begin(async (tx) => {
			await tx`UPDATE hubbub_accounts SET password_hash = ${hash} WHERE id = ${id}`;
			return this.endSessionsIn(tx, id, keep, now);
		});
	}

	// ---- sessions

	async insertSession(s: SessionRow): Promise<void> {
		await this
			.sql`INSERT INTO hubbub_sessions (id, token_hash, account_id, created, last_used, user_agent, address)
			VALUES (${s.id}, ${s.tokenHash}, ${s.accountId}, ${s.created}, ${s.lastUsed}, ${s.userAgent}, ${s.address})`;
	}

	async sessionByHash(tokenHash: string): Promise<SessionRow | undefined> {
		const [r] = await this.sql`SELECT * FROM hubbub_sessions WHERE token_hash = ${tokenHash}`;
		return r ? sessionOf(r) : undefined;
	}

	async touchSession(tokenHash: string, now: number, address: string, userAgent: string): Promise<void> {
		await this
			.sql`UPDATE hubbub_sessions SET last_used = ${now}, address = ${address}, user_agent = ${userAgent}
			WHERE token_hash = ${tokenHash}`;
	}

	async listSessions(accountId: string): Promise<SessionRow[]> {
		const rows = await this
			.sql`SELECT * FROM hubbub_sessions WHERE account_id = ${accountId} ORDER BY last_used DESC`;
		return (rows as Row[]).map(sessionOf);
	}

	/** Ends one session of the account by its listed id; returns its token hash, or undefined if none matched. */
	async endSession(accountId: string, id: string, now: number): Promise<string | undefined> {
		return this.sql.begin(async (tx) => {
			const [r] =
				await tx`DELETE FROM hubbub_sessions WHERE account_id = ${accountId} AND id = ${id} RETURNING token_hash`;
			if (!r) return undefined;
			await tx`INSERT INTO hubbub_revocations (token_hash, at) VALUES (${r.token_hash}, ${now})`;
			return String(r.token_hash);
		});
	}

	/** Ends every session of the account except `keep` (a token hash); returns the ended token hashes. */
	async endSessions(accountId: string, keep: string | undefined, now: number): Promise<string[]> {
		return this.sql.begin((tx) => this.endSessionsIn(tx, accountId, keep, now));
	}

	private async endSessionsIn(
		tx: SQL,
		accountId: string,
		keep: string | undefined,
		now: number,
	): Promise<string[]> {
		const rows = (await tx`DELETE FROM hubbub_sessions WHERE account_id = ${accountId}
			AND token_hash <> ${keep ?? ""} RETURNING token_hash`) as Row[];
		const hashes = rows.map((r) => String(r.token_hash));
		for (const h of hashes) await tx`INSERT INTO hubbub_revocations (token_hash, at) VALUES (${h}, ${now})`;
		return hashes;
	}

	/** Removes sessions unused since `before` (no revocation: their sockets may stay until they close). */
	async purgeSessions(before: number): Promise<number> {
		const r = await this.sql`DELETE FROM hubbub_sessions WHERE last_used < ${before}`;
		return r.count;
	}

	/** Revocations after `seq` (and a few before it, see the poller), oldest first. */
	async revocationsAfter(seq: number): Promise<{ seq: number; tokenHash: string }[]> {
		const rows = (await this
			.sql`SELECT seq, token_hash FROM hubbub_revocations WHERE seq > ${seq} ORDER BY seq LIMIT 10000`) as Row[];
		return rows.map((r) => ({ seq: num(r.seq), tokenHash: String(r.token_hash) }));
	}

	async lastRevocation(): Promise<number> {
		const [r] = await this.sql`SELECT MAX(seq) AS seq FROM hubbub_revocations`;
		return num(r?.seq ?? 0);
	}

	/** Drops revocations older than `before`: every process has long applied them. */
	async pruneRevocations(before: number): Promise<void> {
		await this.sql`DELETE FROM hubbub_revocations WHERE at < ${before}`;
	}

	// ---- attempts (lib/throttle.ts)

	/**
	 * Counts one attempt at `now` under every key unless one of them already has
	 * `limit` attempts after `since`: then nothing is counted and the answer is
	 * the time at which the blocking key's `limit`-th newest attempt was made
	 * (it may try again once that one leaves the window). Otherwise the new
	 * rows' seqs, to forget them by. Serialized per key across processes: a
	 * SQLite transaction that starts with a write holds the file's write lock;
	 * PostgreSQL takes an advisory lock per key, in a fixed order.
	 */
	async takeAttempt(
		keys: string[],
		limit: number,
		since: number,
		now: number,
	): Promise<{ ok: true; seqs: number[] } | { ok: false; blockedSince: number }> {
		const sorted = [...new Set(keys)].sort();
		return this.sql.begin(async (tx) => {
			for (const key of sorted) {
				if (this.engine === "postgres")
					await tx`SELECT pg_advisory_xact_lock(${ATTEMPT_LOCK}, hashtext(${key}))`;
				await tx`DELETE FROM hubbub_attempts WHERE key = ${key} AND at <= ${since}`;
			}
			let blockedSince: number | undefined;
			for (const key of sorted) {
				const [r] = await tx`SELECT at FROM hubbub_attempts WHERE key = ${key} AND at > ${since}
					ORDER BY at DESC LIMIT 1 OFFSET ${limit - 1}`;
				if (r) blockedSince = Math.max(blockedSince ?? 0, num(r.at));
			}
			if (blockedSince !== undefined) return { ok: false as const, blockedSince };
			const seqs: number[] = [];
			for (const key of sorted) {
				const [r] = await tx`INSERT INTO hubbub_attempts (key, at) VALUES (${key}, ${now}) RETURNING seq`;
				seqs.push(num(r?.seq));
			}
			return { ok: true as const, seqs };
		});
	}

	/** Uncounts attempts (a sign-in that succeeded was no failure). */
	async forgetAttempts(seqs: number[]): Promise<void> {
		for (const seq of seqs) await this.sql`DELETE FROM hubbub_attempts WHERE seq = ${seq}`;
	}

	/** Drops attempts made before `before`, outside every window (keys never tried again keep none). */
	async pruneAttempts(before: number): Promise<void> {
		await this.sql`DELETE FROM hubbub_attempts WHERE at < ${before}`;
	}

	// ---- invites

	async insertInvite(i: Omit<InviteRow, "usedBy" | "uses" | "revoked">): Promise<void> {
		await this
			.sql`INSERT INTO hubbub_invites (id, code_hash, created_by, created, expires, max_uses, uses, revoked)
			VALUES (${i.id}, ${i.codeHash}, ${i.createdBy}, ${i.created}, ${i.expires}, ${i.maxUses}, 0, 0)`;
	}

	/** True when the invite is live: known, not revoked, not expired, not used up. */
	async inviteUsable(codeHash: string, now: number): Promise<boolean> {
		const [r] = await this.sql`SELECT id FROM hubbub_invites
			WHERE code_hash = ${codeHash} AND revoked = 0 AND expires > ${now} AND uses < max_uses`;
		return r !== undefined;
	}

	async listInvites(): Promise<InviteRow[]> {
		const invites = (await this.sql`SELECT * FROM hubbub_invites ORDER BY created DESC LIMIT 1000`) as Row[];
		const uses = (await this.sql`SELECT u.invite_id, a.name FROM hubbub_invite_uses u
			JOIN hubbub_accounts a ON a.id = u.account_id ORDER BY u.at`) as Row[];
		const byInvite = new Map<string, string[]>();
		for (const u of uses) {
			const list = byInvite.get(String(u.invite_id)) ?? [];
			list.push(String(u.name));
			byInvite.set(String(u.invite_id), list);
		}
		return invites.map((r) => ({
			id: String(r.id),
			codeHash: String(r.code_hash),
			createdBy: String(r.created_by),
			created: num(r.created),
			expires: num(r.expires),
			maxUses: num(r.max_uses),
			uses: num(r.uses),
			revoked: num(r.revoked) === 1,
			usedBy: byInvite.get(String(r.id)) ?? [],
		}));
	}

	async revokeInvite(id: string): Promise<boolean> {
		const r = await this.sql`UPDATE hubbub_invites SET revoked = 1 WHERE id = ${id}`;
		return r.count > 0;
	}

	// ---- password reset links

	async insertReset(tokenHash: string, accountId: string, expires: number): Promise<void> {
		await this
			.sql`INSERT INTO hubbub_resets (token_hash, account_id, expires) VALUES (${tokenHash}, ${accountId}, ${expires})`;
	}

	/** The account a live reset link is for, without spending it. */
	async resetAccount(tokenHash: string, now: number): Promise<string | undefined> {
		const [r] = await this
			.sql`SELECT account_id FROM hubbub_resets WHERE token_hash = ${tokenHash} AND expires > ${now}`;
		return r ? String(r.account_id) : undefined;
	}

	/** Spends a reset link (once): the account it was for, or undefined. */
	async takeReset(tokenHash: string, now: number): Promise<string | undefined> {
		const [r] = await this
			.sql`DELETE FROM hubbub_resets WHERE token_hash = ${tokenHash} AND expires > ${now} RETURNING account_id`;
		return r ? String(r.account_id) : undefined;
	}

	// ---- bot API tokens

	async insertToken(t: TokenRow): Promise<void> {
		await this.sql`INSERT INTO hubbub_tokens (id, token_hash, account_id, created, last_used)
			VALUES (${t.id}, ${t.tokenHash}, ${t.accountId}, ${t.created}, NULL)`;
	}

	async tokenByHash(tokenHash: string): Promise<TokenRow | undefined> {
		const [r] = await this.sql`SELECT * FROM hubbub_tokens WHERE token_hash = ${tokenHash}`;
		return r
			? {
					id: String(r.id),
					tokenHash: String(r.token_hash),
					accountId: String(r.account_id),
					created: num(r.created),
					lastUsed: r.last_used === null ? null : num(r.last_used),
				}
			: undefined;
	}

	async touchToken(id: string, now: number): Promise<void> {
		await this.sql`UPDATE hubbub_tokens SET last_used = ${now} WHERE id = ${id}`;
	}

	async listTokens(accountId: string): Promise<TokenRow[]> {
		const rows = (await this
			.sql`SELECT * FROM hubbub_tokens WHERE account_id = ${accountId} ORDER BY created`) as Row[];
		return rows.map((r) => ({
			id: String(r.id),
			tokenHash: String(r.token_hash),
			accountId: String(r.account_id),
			created: num(r.created),
			lastUsed: r.last_used === null ? null : num(r.last_used),
		}));
	}

	async deleteToken(accountId: string, id: string): Promise<boolean> {
		const r = await this.sql`DELETE FROM hubbub_tokens WHERE account_id = ${accountId} AND id = ${id}`;
		return r.count > 0;
	}

	async close(): Promise<void> {
		await this.sql.close({ timeout: 1 });
	}
}
