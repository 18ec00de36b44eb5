// Who is who under `--auth accounts`: accounts and their roles, passwords, sessions, invites,
// reset links and bot tokens, with the rules that keep them safe. Rows live in lib/account-store.ts.
import { DEACTIVATED_REASON } from "../protocol.ts";
import { type AccountRow, AccountStore, type InviteRow, type Role } from "./account-store.ts";
import { checkName, nameKey } from "./names.ts";

export const PASSWORD_MIN_CHARS = 8;
export const PASSWORD_MAX_CHARS = 256;
/** A session unused this long is over. */
export const SESSION_IDLE_MS = 30 * 24 * 3600 * 1000;
/** A session's last use is written at most this often (each upgrade and request would otherwise write). */
const TOUCH_EVERY_MS = 60_000;
export const RESET_TTL_MS = 24 * 3600 * 1000;
/** How often each process looks for sessions ended on another process (see watchRevocations). */
export const REVOCATION_POLL_MS = 500;

/**
 * argon2id at OWASP's minimum (19 MiB, 2 passes): about 30–60 ms of one core
 * on a thread of Bun's pool, never on the event loop. At most HASH_SLOTS run
 * at once so a burst of sign-ins cannot take gigabytes of memory.
 */
const ARGON = { algorithm: "argon2id", memoryCost: 19_456, timeCost: 2 } as const;
const HASH_SLOTS = 4;
/** Sign-ins waiting for a hashing slot; beyond this they are told the server is busy. */
const HASH_QUEUE_MAX = 256;

export type AccountError =
	| "invalid_name"
	| "invalid_password"
	| "name_taken"
	| "wrong_credentials"
	| "setup_done"
	| "signup_closed"
	| "invalid_invite"
	| "invalid_reset"
	| "not_found"
	| "last_admin"
	| "busy";

export class AccountFailure extends Error {
	override name = "AccountFailure";
	constructor(
		readonly code: AccountError,
		message: string,
	) {
		super(message);
	}
}

const fail = (code: AccountError, message: string): never => {
	throw new AccountFailure(code, message);
};

export interface Account {
	id: string;
	name: string;
	role: Role;
	bot: boolean;
	active: boolean;
	created: number;
}

/** Where a request came from, kept with its session. */
export interface ClientInfo {
	address: string;
	userAgent: string;
}

export interface Signed {
	account: Account;
	/** The cookie's value: shown to the browser once, stored only as its hash. */
	token: string;
	tokenHash: string;
}

export interface Authenticated {
	account: Account;
	tokenHash: string;
	sessionId: string;
}

export type SignupMode = "open" | "invite" | "closed";

function publicAccount(a: AccountRow): Account {
	return { id: a.id, name: a.name, role: a.role, bot: a.bot, active: a.active, created: a.created };
}

/** 256 random bits, URL-safe. */
export function randomToken(prefix = ""): string {
	return prefix + Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

/** Tokens carry 256 random bits, so a fast hash is enough: nobody can search that space. */
export function hashToken(token: string): string {
	return new Bun.CryptoHasher("sha256").update(token).digest("hex");
}

const shortId = () => Buffer.from(crypto.getRandomValues(new Uint8Array(9))).toString("base64url");

export function checkPassword(password: unknown): string {
	if (typeof password !== "string") return fail("invalid_password", "password is missing");
	const chars = [...password].length;
	if (chars < PASSWORD_MIN_CHARS)
		fail("invalid_password", `password must be at least ${PASSWORD_MIN_CHARS} characters`);
	if (chars > PASSWORD_MAX_CHARS)
		fail("invalid_password", `password must be at most ${PASSWORD_MAX_CHARS} characters`);
	return password;
}

function checkAccountName(raw: unknown): string {
	if (typeof raw !== "string") return fail("invalid_name", "name is missing");
	const checked = checkName(raw);
	if (!checked.ok) return fail("invalid_name", checked.message);
	return checked.name;
}

/**
 * The identity a typed name signs in as: the name parsed as at sign-up (NFKC,
 * edge spaces trimmed, inner runs of spaces made one), then its nameKey.
 * Undefined for what can be no account's name. Sign-in lookups and the per-account
 * sign-in throttle both use it, so " bob " cannot dodge a lockout on "bob".
 */
export function accountKey(raw: unknown): string | undefined {
	if (typeof raw !== "string") return undefined;
	const checked = checkName(raw);
	return checked.ok ? nameKey(checked.name) : undefined;
}

/** A counting semaphore: hashing waits for a slot; a queue too long is refused rather than grown. */
class Slots {
	private free: number;
	private readonly waiting: (() => void)[] = [];
	constructor(size: number) {
		this.free = size;
	}
	async run<T>(work: () => Promise<T>): Promise<T> {
		if (this.free === 0) {
			if (this.waiting.length >= HASH_QUEUE_MAX)
				fail("busy", "the server is busy signing people in; try again");
			await new Promise<void>((resolve) => this.waiting.push(resolve));
		} else {
			this.free--;
		}
		try {
			return await work();
		} finally {
			const next = this.waiting.shift();
			if (next) next();
			else this.free++;
		}
	}
}

export class Accounts {
	private readonly slots = new Slots(HASH_SLOTS);
	/** Verified against for unknown names, so they take as long as a wrong password. */
	private readonly dummy: Promise<string>;
	/** Once an account exists, first-run setup is over for good (no need to ask the database again). */
	private setupDone = false;
	private readonly ended = new Set<(tokenHash: string, why?: string) => void>();
	private poller?: ReturnType<typeof setInterval>;
	private purger?: ReturnType<typeof setInterval>;

	constructor(
		readonly store: AccountStore,
		private readonly now: () => number = Date.now,
	) {
		this.dummy = Bun.password.hash(randomToken(), ARGON);
		this.dummy.catch(() => {});
	}

	/** Opens the account tables; keys stored by an older identity rule are brought up to date first. */
	static async open(db: string): Promise<Accounts> {
		const store = await AccountStore.open(db);
		await store.rekey(nameKey);
		return new Accounts(store);
	}

	private hash(password: string): Promise<string> {
		return this.slots.run(() => Bun.password.hash(password, ARGON));
	}

	private verify(password: string, hash: string): Promise<boolean> {
		return this.slots.run(() => Bun.password.verify(password, hash));
	}

	async needsSetup(): Promise<boolean> {
		if (this.setupDone) return false;
		this.setupDone = (await this.store.countAccounts()) > 0;
		return !this.setupDone;
	}

	private async newAccount(
		name: string,
		password: string | null,
		role: Role,
		bot = false,
	): Promise<AccountRow> {
		return {
			id: crypto.randomUUID(),
			name,
			nameKey: nameKey(name),
			passwordHash: password === null ? null : await this.hash(password),
			role,
			bot,
			active: true,
			created: this.now(),
		};
	}

	private async startSession(account: AccountRow, client: ClientInfo): Promise<Signed> {
		const token = randomToken();
		const tokenHash = hashToken(token);
		const now = this.now();
		await this.store.insertSession({
			id: shortId(),
			tokenHash,
			accountId: account.id,
			created: now,
			lastUsed: now,
			userAgent: client.userAgent.slice(0, 300),
			address: client.address,
		});
		return { account: publicAccount(account), token, tokenHash };
	}

	/** First run: the first account, an admin, only while no account exists. */
	async setup(rawName: unknown, rawPassword: unknown, client: ClientInfo): Promise<Signed> {
		const name = checkAccountName(rawName);
		const password = checkPassword(rawPassword);
		if (!(await this.needsSetup())) fail("setup_done", "this server is already set up; sign in instead");
		const account = await this.newAccount(name, password, "admin");
		const result = await this.store.insertAccount(account, true);
		if (result !== "ok") fail("setup_done", "this server is already set up; sign in instead");
		this.setupDone = true;
		return this.startSession(account, client);
	}

	/** Sign-up: through a live invite, or without one when sign-up is open. */
	async signup(
		rawName: unknown,
		rawPassword: unknown,
		invite: unknown,
		mode: SignupMode,
		client: ClientInfo,
	): Promise<Signed> {
		const name = checkAccountName(rawName);
		const password = checkPassword(rawPassword);
		const now = this.now();
		if (await this.needsSetup()) fail("signup_closed", "this server is not set up yet");
		let result: "ok" | "taken" | "invalid" | "exists";
		let account: AccountRow;
		if (typeof invite === "string" && invite !== "") {
			// Cheap check first, so a dead link does not cost a hash.
			if (!(await this.store.inviteUsable(hashToken(invite), now)))
				fail("invalid_invite", "this invite link is not valid any more (used up, expired or revoked)");
			account = await this.newAccount(name, password, "member");
			result = await this.store.insertAccountWithInvite(account, hashToken(invite), now);
		} else {
			if (mode !== "open") fail("signup_closed", "sign-up needs an invite link from an admin of this server");
			account = await this.newAccount(name, password, "member");
			result = await this.store.insertAccount(account);
		}
		if (result === "taken") fail("name_taken", `the name ${name} is taken; pick another`);
		if (result === "invalid")
			fail("invalid_invite", "this invite link is not valid any more (used up, expired or revoked)");
		return this.startSession(account, client);
	}

	/** Whether an invite link can still be used (for the sign-up form). */
	async inviteUsable(code: string): Promise<boolean> {
		return this.store.inviteUsable(hashToken(code), this.now());
	}

	/**
	 * Sign-in. An unknown name, a bot and a deactivated account are verified
	 * against a hash all the same, so the answer takes as long as for a wrong password.
	 */
	async signin(rawName: unknown, rawPassword: unknown, client: ClientInfo): Promise<Signed> {
		const password = typeof rawPassword === "string" ? rawPassword.slice(0, PASSWORD_MAX_CHARS * 4) : "";
		const key = accountKey(rawName);
		const account = key === undefined ? undefined : await this.store.accountByKey(key);
		const hash = account?.passwordHash ?? (await this.dummy);
		const ok = await this.verify(password, hash);
		if (!ok || !account?.passwordHash || account.bot) fail("wrong_credentials", "wrong name or password");
		const found = account as AccountRow;
		if (!found.active) fail("wrong_credentials", "this account is deactivated; ask an admin of this server");
		return this.startSession(found, client);
	}

	/** The session a cookie's token names, if it is live and its account active; refreshes its last use. */
	async authenticate(token: string | undefined, client?: ClientInfo): Promise<Authenticated | undefined> {
		if (!token || token.length > 100) return undefined;
		const tokenHash = hashToken(token);
		const session = await this.store.sessionByHash(tokenHash);
		const now = this.now();
		if (!session || now - session.lastUsed > SESSION_IDLE_MS) return undefined;
		const account = await this.store.accountById(session.accountId);
		if (!account?.active) return undefined;
		if (client && now - session.lastUsed > TOUCH_EVERY_MS) {
			await this.store.touchSession(tokenHash, now, client.address, client.userAgent.slice(0, 300));
		}
		return { account: publicAccount(account), tokenHash, sessionId: session.id };
	}

	async signout(tokenHash: string): Promise<void> {
		const session = await this.store.sessionByHash(tokenHash);
		if (session) await this.endSession(session.accountId, session.id);
	}

	async sessions(accountId: string) {
		const now = this.now();
		return (await this.store.listSessions(accountId))
			.filter((s) => now - s.lastUsed <= SESSION_IDLE_MS)
			.map((s) => ({
				id: s.id,
				created: s.created,
				lastUsed: s.lastUsed,
				userAgent: s.userAgent,
				address: s.address,
				tokenHash: s.tokenHash,
			}));
	}

	async endSession(accountId: string, id: string): Promise<boolean> {
		const hash = await this.store.endSession(accountId, id, this.now());
		if (hash) this.announce([hash]);
		return hash !== undefined;
	}

	/** "Sign out everywhere": every session of the account but `keep` (a token hash) ends. */
	async endSessions(accountId: string, keep?: string): Promise<number> {
		const hashes = await this.store.endSessions(accountId, keep, this.now());
		this.announce(hashes);
		return hashes.length;
	}

	/** Changes a password after checking the current one; every other session ends. */
	async changePassword(auth: Authenticated, current: unknown, next: unknown): Promise<void> {
		const password = checkPassword(next);
		const account = await this.store.accountById(auth.account.id);
		const ok =
			account?.passwordHash && typeof current === "string"
				? await this.verify(current.slice(0, PASSWORD_MAX_CHARS * 4), account.passwordHash)
				: false;
		if (!ok) fail("wrong_credentials", "the current password is wrong");
		const hash = await this.hash(password);
		this.announce(await this.store.setPassword(auth.account.id, hash, auth.tokenHash, this.now()));
	}

	// ---- admin

	async list(): Promise<Account[]> {
		return (await this.store.listAccounts()).map(publicAccount);
	}

	async byName(name: string): Promise<Account | undefined> {
		const key = accountKey(name);
		const a = key === undefined ? undefined : await this.store.accountByKey(key);
		return a ? publicAccount(a) : undefined;
	}

	private async mustFind(name: unknown): Promise<AccountRow> {
		const key = accountKey(name);
		const a = key === undefined ? undefined : await this.store.accountByKey(key);
		return a ?? fail("not_found", `no account is named ${JSON.stringify(name)}`);
	}

	/** Deactivating ends every session at once (on every process) and refuses sign-in; the last admin cannot be. */
	async setActive(name: unknown, active: boolean): Promise<Account> {
		const a = await this.mustFind(name);
		if (!active && a.role === "admin" && a.active && (await this.store.activeAdmins()) <= 1)
			fail("last_admin", "the last active admin cannot be deactivated; make another admin first");
		this.announce(
			await this.store.setActive(a.id, active, this.now()),
			active ? undefined : DEACTIVATED_REASON,
		);
		return { ...publicAccount(a), active };
	}

	async setRole(name: unknown, role: Role): Promise<Account> {
		const a = await this.mustFind(name);
		if (a.bot && role === "admin") fail("not_found", "a bot cannot be an admin");
		if (role === "member" && a.role === "admin" && a.active && (await this.store.activeAdmins()) <= 1)
			fail("last_admin", "the last active admin cannot stop being one; make another admin first");
		await this.store.setRole(a.id, role);
		return { ...publicAccount(a), role };
	}

	/** Makes an account from the command line (no invite needed). */
	async createUser(rawName: unknown, rawPassword: unknown, role: Role): Promise<Account> {
		const name = checkAccountName(rawName);
		const password = checkPassword(rawPassword);
		const account = await this.newAccount(name, password, role);
		if ((await this.store.insertAccount(account)) !== "ok") fail("name_taken", `the name ${name} is taken`);
		this.setupDone = true;
		return publicAccount(account);
	}

	/** A one-time link that sets a new password (24 hours); the code is returned once and stored hashed. */
	async resetLink(name: unknown): Promise<{ account: Account; code: string; expires: number }> {
		const a = await this.mustFind(name);
		if (a.bot) fail("not_found", "a bot has no password; make it a new token instead");
		const code = randomToken();
		const expires = this.now() + RESET_TTL_MS;
		await this.store.insertReset(hashToken(code), a.id, expires);
		return { account: publicAccount(a), code, expires };
	}

	async resetName(code: string): Promise<string | undefined> {
		const id = await this.store.resetAccount(hashToken(code), this.now());
		return id ? (await this.store.accountById(id))?.name : undefined;
	}

	/** Spends a reset link: new password, every session ended, and a new session here. */
	async useReset(code: unknown, rawPassword: unknown, client: ClientInfo): Promise<Signed> {
		const password = checkPassword(rawPassword);
		const id = typeof code === "string" ? await this.store.takeReset(hashToken(code), this.now()) : undefined;
		const account = id ? await this.store.accountById(id) : undefined;
		if (!account) return fail("invalid_reset", "this password reset link is not valid any more");
		const hash = await this.hash(password);
		this.announce(await this.store.setPassword(account.id, hash, undefined, this.now()));
		if (!account.active)
			fail("wrong_credentials", "this account is deactivated; ask an admin of this server");
		return this.startSession(account, client);
	}

	async createInvite(
		by: Account,
		uses: unknown,
		hours: unknown,
	): Promise<{ id: string; code: string; expires: number; maxUses: number }> {
		const maxUses =
			typeof uses === "number" && Number.isInteger(uses) && uses >= 1 && uses <= 1000 ? uses : 1;
		const ttl = typeof hours === "number" && hours > 0 && hours <= 24 * 90 ? hours : 24 * 7;
		const code = randomToken();
		const id = shortId();
		const expires = this.now() + ttl * 3600 * 1000;
		await this.store.insertInvite({
			id,
			codeHash: hashToken(code),
			createdBy: by.name,
			created: this.now(),
			expires,
			maxUses,
		});
		return { id, code, expires, maxUses };
	}

	async invites(): Promise<Omit<InviteRow, "codeHash">[]> {
		return (await this.store.listInvites()).map(({ codeHash: _, ...rest }) => rest);
	}

	async revokeInvite(id: unknown): Promise<void> {
		if (typeof id !== "string" || !(await this.store.revokeInvite(id))) fail("not_found", "no such invite");
	}

	// ---- bots

	/** A bot account (no password, member) and its first API token, returned once. */
	async createBot(rawName: unknown): Promise<{ account: Account; token: string; tokenId: string }> {
		const name = checkAccountName(rawName);
		const account = await this.newAccount(name, null, "member", true);
		if ((await this.store.insertAccount(account)) !== "ok") fail("name_taken", `the name ${name} is taken`);
		return { account: publicAccount(account), ...(await this.issueToken(account.id)) };
	}

	async newToken(name: unknown): Promise<{ token: string; tokenId: string }> {
		const a = await this.mustFind(name);
		if (!a.bot) fail("not_found", `${a.name} is not a bot`);
		return this.issueToken(a.id);
	}

	private async issueToken(accountId: string): Promise<{ token: string; tokenId: string }> {
		const token = randomToken("hbt_");
		const tokenId = shortId();
		await this.store.insertToken({
			id: tokenId,
			tokenHash: hashToken(token),
			accountId,
			created: this.now(),
			lastUsed: null,
		});
		return { token, tokenId };
	}

	async tokens(name: unknown) {
		const a = await this.mustFind(name);
		return (await this.store.listTokens(a.id)).map(({ tokenHash: _, ...rest }) => rest);
	}

	async revokeToken(name: unknown, id: unknown): Promise<void> {
		const a = await this.mustFind(name);
		if (typeof id !== "string" || !(await this.store.deleteToken(a.id, id)))
			fail("not_found", "no such token");
	}

	/** The active bot an API token belongs to. */
	async bot(token: string | undefined): Promise<Account | undefined> {
		if (!token || token.length > 100) return undefined;
		const row = await this.store.tokenByHash(hashToken(token));
		if (!row) return undefined;
		const account = await this.store.accountById(row.accountId);
		if (!account?.active || !account.bot) return undefined;
		const now = this.now();
		if (row.lastUsed === null || now - row.lastUsed > TOUCH_EVERY_MS)
			await this.store.touchToken(row.id, now);
		return publicAccount(account);
	}

	// ---- ended sessions reach every process

	/** `listener` hears the token hash of every session that ends, here or (within a second) on another process. */
	onSessionEnded(listener: (tokenHash: string, why?: string) => void): void {
		this.ended.add(listener);
	}

	/** `why`, known only on the process where it happened, becomes the sockets' close reason there. */
	private announce(hashes: string[], why?: string): void {
		for (const h of hashes) for (const l of this.ended) l(h, why);
	}

	/**
	 * Polls the store's revocation log. The store, not the bus, carries it: a
	 * Redis outage cannot lose one, and two processes on one SQLite file
	 * without Redis agree too. PostgreSQL sequence values can commit out of
	 * order, so each poll looks back a little and skips what it already applied.
	 */
	async watchRevocations(onError: (e: Error) => void): Promise<void> {
		let floor = await this.store.lastRevocation();
		const seen = new Set<number>();
		let busy = false;
		this.poller = setInterval(() => {
			if (busy) return;
			busy = true;
			this.store
				.revocationsAfter(Math.max(0, floor - 100))
				.then((rows) => {
					for (const r of rows) {
						if (seen.has(r.seq) || r.seq <= floor - 100) continue;
						seen.add(r.seq);
						this.announce([r.tokenHash]);
					}
					const top = rows.at(-1)?.seq;
					if (top !== undefined && top > floor) floor = top;
					for (const s of seen) if (s <= floor - 100) seen.delete(s);
				})
				.catch(onError)
				.finally(() => {
					busy = false;
				});
		}, REVOCATION_POLL_MS);
		this.purger = setInterval(() => {
			this.store.purgeSessions(this.now() - SESSION_IDLE_MS).catch(onError);
			this.store.pruneRevocations(this.now() - 3600_000).catch(onError);
			// Every throttle window (lib/auth-http.ts) is an hour or less.
			this.store.pruneAttempts(this.now() - 3600_000).catch(onError);
		}, 3600_000);
	}

	async close(): Promise<void> {
		clearInterval(this.poller);
		clearInterval(this.purger);
		await this.store.close();
	}
}
