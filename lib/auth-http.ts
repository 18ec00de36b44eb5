// The account routes under --auth accounts (JSON over HTTP): first-run setup, sign-up, sign-in and
// out, sessions, password change and reset, the admin's routes, and the bot API.
import type { Server } from "bun";
import { parseClientFrame } from "../protocol.ts";
import type { Role } from "./account-store.ts";
import {
	type Account,
	type AccountError,
	AccountFailure,
	type Accounts,
	type Authenticated,
	accountKey,
	type ClientInfo,
	SESSION_IDLE_MS,
	type Signed,
} from "./accounts.ts";
import type { Config } from "./config.ts";
import { secured } from "./http.ts";
import { BodyTooLarge, readCappedText } from "./json-body.ts";
import type { Logger } from "./log.ts";
import { addressGroup, checkOrigin, clientAddress } from "./origin.ts";
import { TokenBucket, UpgradeRate } from "./rate-limit.ts";
import type { Appended } from "./store.ts";
import { Throttle } from "./throttle.ts";

export const SESSION_COOKIE = "hubbub_session";
/** Failed sign-ins allowed per address and per account name in FAILURE_WINDOW_MS. */
export const FAILURE_LIMIT = 10;
export const FAILURE_WINDOW_MS = 15 * 60_000;
/** Sign-ups, invite and reset-link uses and first-run attempts allowed per address in an hour. */
export const SIGNUP_LIMIT = 10;
export const SIGNUP_WINDOW_MS = 3600_000;
/**
 * The GET routes anyone may call without a session (auth state, invite check,
 * reset-link check), and any request whose session cookie is not live, per address group: each reads the store, so a flood from
 * one address must not take the database's time from everyone else. A page
 * calls one or two of them per load, far below this.
 */
export const OPEN_GET_RATE = { rate: 5, burst: 60 };
/** Largest JSON body an account route reads. */
const BODY_MAX = 64 * 1024;

export type AuthConfig = Pick<
	Config,
	"auth" | "signup" | "origins" | "trustProxy" | "sendRate" | "sendBurst"
>;

export interface AuthDeps {
	/** Undefined under --auth none (only /api/auth/state answers then). */
	accounts: Accounts | undefined;
	config: AuthConfig;
	/** Served over TLS by hubbub itself. */
	tls: boolean;
	log: Logger;
	/** Stores and delivers a message as `from` (the bot API). */
	post(from: string, room: string, id: string | undefined, text: string): Promise<Appended>;
	/** A reason sends are refused now (e.g. disk floor), or undefined. */
	refuseSends?: () => string | undefined;
	/** --auth accounts: may the bot post to the room (lib/rooms.ts: private rooms only as a member)? */
	mayPost?: (bot: Account, room: string) => Promise<"ok" | "not_found" | "read_only">;
}

const STATUS: Record<AccountError, number> = {
	invalid_name: 400,
	invalid_password: 400,
	name_taken: 409,
	wrong_credentials: 401,
	setup_done: 409,
	signup_closed: 403,
	invalid_invite: 403,
	invalid_reset: 403,
	not_found: 404,
	last_admin: 409,
	busy: 503,
};

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
	return secured(Response.json(body, { status, headers: { "cache-control": "no-store", ...headers } }));
}

function refuse(
	status: number,
	code: string,
	message: string,
	headers: Record<string, string> = {},
): Response {
	return json({ ok: false, code, message }, status, headers);
}

/** The value of one cookie in a Cookie header. */
export function readCookie(header: string | null, name: string): string | undefined {
	if (!header) return undefined;
	for (const part of header.split(";")) {
		const eq = part.indexOf("=");
		if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
	}
	return undefined;
}

/** The GET routes reachable without a session (see OPEN_GET_RATE). */
const OPEN_GETS = new Set(["/api/auth/state", "/api/auth/invite", "/api/auth/reset"]);

class HttpError extends Error {
	constructor(readonly response: Response) {
		super("http error");
	}
}

export class AuthHttp {
	/** Failed sign-ins (and password changes), per address group and per account identity; in the store, shared by the cluster. */
	private readonly failures?: Throttle;
	/** Setup, sign-up, and reset-link uses per address group; in the store too. */
	private readonly signups?: Throttle;
	private readonly botBuckets = new Map<string, TokenBucket>();
	private readonly openGets = new UpgradeRate(OPEN_GET_RATE.rate, OPEN_GET_RATE.burst);

	constructor(private readonly deps: AuthDeps) {
		const store = deps.accounts?.store;
		if (store) {
			this.failures = new Throttle(store, FAILURE_LIMIT, FAILURE_WINDOW_MS);
			this.signups = new Throttle(store, SIGNUP_LIMIT, SIGNUP_WINDOW_MS);
		}
	}

	private get accounts(): Accounts {
		return this.deps.accounts as Accounts;
	}

	/** The answer for an /api/ path this module serves, or undefined for any other path. */
	async handle(req: Request, server: Server<unknown>): Promise<Response | undefined> {
		const url = new URL(req.url);
		const path = url.pathname;
		if (
			!path.startsWith("/api/auth/") &&
			!path.startsWith("/api/admin/") &&
			!/^\/api\/rooms\/[^/]+\/messages$/.test(path)
		)
			return undefined;
		const peer = server.requestIP(req)?.address;
		const client: ClientInfo = {
			address: clientAddress(peer, req.headers, this.deps.config.trustProxy),
			userAgent: req.headers.get("user-agent") ?? "",
		};
		if (req.method === "GET" && OPEN_GETS.has(path)) {
			const limited = this.openLimited(client);
			if (limited) return limited;
		}
		try {
			if (path === "/api/auth/state" && req.method === "GET") return await this.state(req);
			if (this.deps.config.auth !== "accounts" || !this.deps.accounts)
				return refuse(404, "not_found", "this server runs without accounts (--auth none)");
			const bot = /^\/api\/rooms\/([^/]+)\/messages$/.exec(path);
			if (bot) {
				if (req.method !== "POST") return this.notAllowed("POST");
				return await this.botPost(req, decodeURIComponent(bot[1] as string));
			}
			const changing = req.method !== "GET" && req.method !== "HEAD";
			if (changing) this.sameOrigin(req);
			const body = changing ? await this.body(req) : {};
			const https = this.deps.tls || this.forwardedHttps(req, peer);
			return await this.route(req.method, path, url, body, req, client, https);
		} catch (e) {
			if (e instanceof HttpError) return e.response;
			if (e instanceof AccountFailure) return refuse(STATUS[e.code], e.code, e.message);
			throw e;
		}
	}

	/** Takes one request from the address's OPEN_GET_RATE bucket: a 429 answer when it is empty. */
	private openLimited(client: ClientInfo): Response | undefined {
		const wait = this.openGets.take(addressGroup(client.address));
		if (wait === 0) return undefined;
		return refuse(429, "too_many_requests", `too many requests from your address; try again in ${wait} s`, {
			"retry-after": String(wait),
		});
	}

	private notAllowed(allow: string): Response {
		return secured(new Response("method not allowed\n", { status: 405, headers: { allow } }));
	}

	/** A trusted proxy says the browser spoke https to it. */
	private forwardedHttps(req: Request, peer: string | undefined): boolean {
		const direct = peer?.startsWith("::ffff:") ? peer.slice(7) : peer;
		return (
			direct !== undefined &&
			this.deps.config.trustProxy.includes(direct) &&
			req.headers.get("x-forwarded-proto")?.split(",").at(-1)?.trim().toLowerCase() === "https"
		);
	}

	/**
	 * CSRF: a state-changing request must come from this server's own page.
	 * Browsers send Sec-Fetch-Site and Origin on every such request; a request
	 * without either is not from a browser, so no cookie was sent for it by surprise.
	 */
	private sameOrigin(req: Request): void {
		const site = req.headers.get("sec-fetch-site");
		if (site !== null && site !== "same-origin" && site !== "none")
			throw new HttpError(refuse(403, "cross_origin", `requests from another site (${site}) are refused`));
		const verdict = checkOrigin(req.headers.get("origin"), req.headers.get("host"), this.deps.config.origins);
		if (!verdict.ok) throw new HttpError(refuse(403, "cross_origin", verdict.message));
	}

	/** Every JSON route reads its body here: streamed with a cap, refused with 413 past BODY_MAX. */
	private async body(req: Request): Promise<Record<string, unknown>> {
		if (req.method === "DELETE" && (!req.body || req.headers.get("content-length") === "0")) return {};
		// A form or a text/plain post from another site cannot set this header without a preflight.
		if (!/^application\/json\b/i.test(req.headers.get("content-type") ?? ""))
			throw new HttpError(
				refuse(415, "not_json", "send the request as JSON (Content-Type: application/json)"),
			);
		let text: string;
		try {
			text = await readCappedText(req, BODY_MAX);
		} catch (e) {
			if (e instanceof BodyTooLarge)
				throw new HttpError(refuse(413, "too_large", e.message, { connection: "close" }));
			throw e;
		}
		try {
			const parsed: unknown = JSON.parse(text || "{}");
			if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
				return parsed as Record<string, unknown>;
		} catch {}
		throw new HttpError(refuse(400, "bad_request", "the body must be a JSON object"));
	}

	private cookie(signed: Pick<Signed, "token">, https: boolean): Record<string, string> {
		const secure = https ? "; Secure" : "";
		return {
			"set-cookie": `${SESSION_COOKIE}=${signed.token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=${SESSION_IDLE_MS / 1000}${secure}`,
		};
	}

	/**
	 * The session cookie again with a fresh Max-Age, for a request that carried a
	 * live one (the page load): the browser keeps it 30 days from the last use,
	 * as the server does, not 30 days from the sign-in.
	 */
	refreshedCookie(req: Request, server: Server<unknown>): string | undefined {
		const token = readCookie(req.headers.get("cookie"), SESSION_COOKIE);
		if (!token) return undefined;
		const https = this.deps.tls || this.forwardedHttps(req, server.requestIP(req)?.address);
		return this.cookie({ token }, https)["set-cookie"];
	}

	private clearCookie(https: boolean): Record<string, string> {
		return {
			"set-cookie": `${SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0${https ? "; Secure" : ""}`,
		};
	}

	private async session(req: Request, client?: ClientInfo): Promise<Authenticated | undefined> {
		return this.accounts.authenticate(readCookie(req.headers.get("cookie"), SESSION_COOKIE), client);
	}

	private async state(req: Request): Promise<Response> {
		if (this.deps.config.auth !== "accounts") return json({ ok: true, auth: "none" });
		const me = await this.session(req);
		return json({
			ok: true,
			auth: "accounts",
			setup: await this.accounts.needsSetup(),
			signup: this.deps.config.signup,
			...(me ? { account: { name: me.account.name, role: me.account.role } } : {}),
		});
	}

	/** Counts a setup, sign-up or reset-link use against the address; 429 past the limit. */
	private async signupLimited(client: ClientInfo): Promise<void> {
		const taken = await (this.signups as Throttle).take([`signup:${addressGroup(client.address)}`]);
		if (!taken.ok)
			throw new HttpError(
				refuse(
					429,
					"too_many_attempts",
					`too many accounts made from your address; try again in ${Math.ceil(taken.retryAfter / 60)} min`,
					{ "retry-after": String(taken.retryAfter) },
				),
			);
	}

	private signedIn(signed: Signed, https: boolean, status = 200): Response {
		return json(
			{ ok: true, account: { name: signed.account.name, role: signed.account.role } },
			status,
			this.cookie(signed, https),
		);
	}

	private async route(
		method: string,
		path: string,
		url: URL,
		body: Record<string, unknown>,
		req: Request,
		client: ClientInfo,
		https: boolean,
	): Promise<Response> {
		const { accounts } = this;
		const { log } = this.deps;
		const at = `${method} ${path}`;
		// ---- open to anyone (limited per address)
		if (at === "POST /api/auth/setup") {
			await this.signupLimited(client);
			const signed = await accounts.setup(body.name, body.password, client);
			log.info("account_setup", { name: signed.account.name, address: client.address });
			return this.signedIn(signed, https, 201);
		}
		if (at === "POST /api/auth/signup") {
			await this.signupLimited(client);
			const signed = await accounts.signup(
				body.name,
				body.password,
				body.invite,
				this.deps.config.signup,
				client,
			);
			log.info("account_signup", {
				name: signed.account.name,
				address: client.address,
				invite: body.invite !== undefined,
			});
			return this.signedIn(signed, https, 201);
		}
		if (at === "GET /api/auth/invite") {
			const code = url.searchParams.get("code") ?? "";
			return json({ ok: true, usable: code !== "" && (await accounts.inviteUsable(code)) });
		}
		if (at === "POST /api/auth/signin") return this.signin(body, client, https);
		if (at === "GET /api/auth/reset") {
			const name = await accounts.resetName(url.searchParams.get("code") ?? "");
			return name
				? json({ ok: true, name })
				: refuse(403, "invalid_reset", "this password reset link is not valid any more");
		}
		if (at === "POST /api/auth/reset") {
			await this.signupLimited(client);
			const signed = await accounts.useReset(body.code, body.password, client);
			log.info("password_reset", { name: signed.account.name, address: client.address });
			return this.signedIn(signed, https);
		}

		// ---- signed in
		const me = await this.session(req, client);
		// Without a live session this was a store lookup anyone can ask for: counted like the open GETs.
		if (!me)
			return (
				this.openLimited(client) ?? refuse(401, "not_signed_in", "sign in first", this.clearCookie(https))
			);
		if (at === "POST /api/auth/signout") {
			await accounts.signout(me.tokenHash);
			log.info("signout", { name: me.account.name });
			return json({ ok: true }, 200, this.clearCookie(https));
		}
		if (at === "GET /api/auth/sessions") {
			const sessions = await accounts.sessions(me.account.id);
			return json({
				ok: true,
				sessions: sessions.map(({ tokenHash, ...s }) => ({ ...s, current: tokenHash === me.tokenHash })),
			});
		}
		const oneSession = /^DELETE \/api\/auth\/sessions\/([\w-]+)$/.exec(at);
		if (oneSession) {
			const ended = await accounts.endSession(me.account.id, oneSession[1] as string);
			return ended ? json({ ok: true }) : refuse(404, "not_found", "no such session");
		}
		if (at === "POST /api/auth/sessions/end-all") {
			// "Sign out everywhere": every session; with {"others": true}, every one but this.
			const others = body.others === true;
			const ended = await accounts.endSessions(me.account.id, others ? me.tokenHash : undefined);
			log.info("sessions_ended", { name: me.account.name, ended });
			return json({ ok: true, ended }, 200, others ? {} : this.clearCookie(https));
		}
		if (at === "POST /api/auth/password") {
			await this.passwordAttempt(client, me.account.name, () =>
				accounts.changePassword(me, body.current, body.password),
			);
			log.info("password_changed", { name: me.account.name });
			return json({ ok: true });
		}

		// ---- admins
		if (!path.startsWith("/api/admin/")) return refuse(404, "not_found", "no such route");
		if (me.account.role !== "admin")
			return refuse(403, "not_admin", "only an admin of this server can do that");
		return this.admin(at, body, me, req, log);
	}

	/**
	 * Counts a password attempt per address group and per account (`name` as
	 * typed, keyed as sign-in looks it up) before it is checked; 429 when either
	 * is at its limit. `attempt` runs only then; the count is taken back unless
	 * it failed with a wrong password, so only failures (and attempts still
	 * being checked) count.
	 */
	private async passwordAttempt<T>(client: ClientInfo, name: unknown, attempt: () => Promise<T>): Promise<T> {
		const key = accountKey(name);
		const failures = this.failures as Throttle;
		const taken = await failures.take([
			`signin-address:${addressGroup(client.address)}`,
			...(key === undefined ? [] : [`signin-account:${key}`]),
		]);
		if (!taken.ok)
			throw new HttpError(
				refuse(
					429,
					"too_many_attempts",
					`too many wrong passwords; try again in ${Math.ceil(taken.retryAfter / 60)} min`,
					{ "retry-after": String(taken.retryAfter) },
				),
			);
		let wrong = false;
		try {
			return await attempt();
		} catch (e) {
			wrong = e instanceof AccountFailure && e.code === "wrong_credentials";
			throw e;
		} finally {
			if (!wrong) await failures.forgive(taken.ticket);
		}
	}

	private async signin(body: Record<string, unknown>, client: ClientInfo, https: boolean): Promise<Response> {
		try {
			const signed = await this.passwordAttempt(client, body.name, () =>
				this.accounts.signin(body.name, body.password, client),
			);
			this.deps.log.info("signin", { name: signed.account.name, address: client.address });
			return this.signedIn(signed, https);
		} catch (e) {
			if (e instanceof AccountFailure && e.code === "wrong_credentials")
				this.deps.log.info("signin_failed", { address: client.address });
			throw e;
		}
	}

	private origin(req: Request): string {
		const url = new URL(req.url);
		return `${url.protocol}//${req.headers.get("host") ?? url.host}`;
	}

	private async admin(
		at: string,
		body: Record<string, unknown>,
		me: Authenticated,
		req: Request,
		log: Logger,
	): Promise<Response> {
		const { accounts } = this;
		if (at === "GET /api/admin/accounts") return json({ ok: true, accounts: await accounts.list() });
		let m = /^POST \/api\/admin\/accounts\/([^/]+)$/.exec(at);
		if (m) {
			const name = decodeURIComponent(m[1] as string);
			let account = await accounts.byName(name);
			if (!account) return refuse(404, "not_found", `no account is named ${JSON.stringify(name)}`);
			if (typeof body.active === "boolean") {
				account = await accounts.setActive(name, body.active);
				log.info(body.active ? "account_reactivated" : "account_deactivated", {
					name: account.name,
					by: me.account.name,
				});
			}
			if (body.role === "admin" || body.role === "member") {
				account = await accounts.setRole(name, body.role as Role);
				log.info("account_role", { name: account.name, role: body.role, by: me.account.name });
			}
			return json({ ok: true, account });
		}
		m = /^POST \/api\/admin\/accounts\/([^/]+)\/reset$/.exec(at);
		if (m) {
			const reset = await accounts.resetLink(decodeURIComponent(m[1] as string));
			log.info("reset_link", { name: reset.account.name, by: me.account.name });
			return json({
				ok: true,
				link: `${this.origin(req)}/account#reset=${reset.code}`,
				expires: reset.expires,
			});
		}
		if (at === "GET /api/admin/invites") return json({ ok: true, invites: await accounts.invites() });
		if (at === "POST /api/admin/invites") {
			const invite = await accounts.createInvite(me.account, body.uses, body.hours);
			log.info("invite_made", { id: invite.id, uses: invite.maxUses, by: me.account.name });
			return json(
				{
					ok: true,
					id: invite.id,
					link: `${this.origin(req)}/account#invite=${invite.code}`,
					expires: invite.expires,
					maxUses: invite.maxUses,
				},
				201,
			);
		}
		m = /^DELETE \/api\/admin\/invites\/([\w-]+)$/.exec(at);
		if (m) {
			await accounts.revokeInvite(m[1]);
			log.info("invite_revoked", { id: m[1], by: me.account.name });
			return json({ ok: true });
		}
		if (at === "POST /api/admin/bots") {
			const made = await accounts.createBot(body.name);
			log.info("bot_made", { name: made.account.name, by: me.account.name });
			return json({ ok: true, account: made.account, token: made.token, tokenId: made.tokenId }, 201);
		}
		m = /^(GET|POST) \/api\/admin\/bots\/([^/]+)\/tokens$/.exec(at);
		if (m) {
			const name = decodeURIComponent(m[2] as string);
			if (m[1] === "GET") return json({ ok: true, tokens: await accounts.tokens(name) });
			const made = await accounts.newToken(name);
			log.info("bot_token_made", { name, by: me.account.name });
			return json({ ok: true, token: made.token, tokenId: made.tokenId }, 201);
		}
		m = /^DELETE \/api\/admin\/bots\/([^/]+)\/tokens\/([\w-]+)$/.exec(at);
		if (m) {
			await accounts.revokeToken(decodeURIComponent(m[1] as string), m[2]);
			log.info("bot_token_revoked", { name: decodeURIComponent(m[1] as string), by: me.account.name });
			return json({ ok: true });
		}
		return refuse(404, "not_found", "no such route");
	}

	/**
	 * `POST /api/rooms/:room/messages` with `Authorization: Bearer TOKEN` and a
	 * JSON `{"text": …}`. An `Idempotency-Key` header is the message's id: the
	 * same key again stores nothing and answers with the stored message.
	 */
	private async botPost(req: Request, room: string): Promise<Response> {
		const auth = req.headers.get("authorization") ?? "";
		const bot = auth.startsWith("Bearer ") ? await this.accounts.bot(auth.slice(7).trim()) : undefined;
		if (!bot)
			return refuse(401, "unauthorized", "an API token is needed: Authorization: Bearer TOKEN", {
				"www-authenticate": "Bearer",
			});
		let bucket = this.botBuckets.get(bot.id);
		if (!bucket) {
			bucket = new TokenBucket(this.deps.config.sendRate, this.deps.config.sendBurst);
			this.botBuckets.set(bot.id, bucket);
		}
		if (!bucket.take())
			return refuse(429, "rate_limited", "too many messages; slow down", { "retry-after": "1" });
		const body = await this.body(req);
		const key = req.headers.get("idempotency-key") ?? undefined;
		const parsed = parseClientFrame(JSON.stringify({ type: "send", room, id: key, text: body.text }));
		if (!parsed.ok) return refuse(400, parsed.code, parsed.message.replace(/\bid\b/, "Idempotency-Key"));
		if (parsed.frame.type !== "send") return refuse(400, "bad_request", "not a message");
		const refusal = this.deps.refuseSends?.();
		if (refusal) return refuse(503, "server_error", refusal);
		// The same answer for a room that does not exist and one the bot may not see.
		const access = (await this.deps.mayPost?.(bot, parsed.frame.room)) ?? "ok";
		if (access === "not_found")
			return refuse(404, "not_found", `no room #${parsed.frame.room} that this bot can see`);
		if (access === "read_only")
			return refuse(409, "read_only", `#${parsed.frame.room} is archived: it can be read, not written`);
		const { message, created } = await this.deps.post(
			bot.name,
			parsed.frame.room,
			parsed.frame.id,
			parsed.frame.text,
		);
		return json({ ok: true, message }, created ? 201 : 200);
	}
}
