// Test helpers for --auth accounts: a server with its account tables, and a small JSON client that
// speaks to it as the page would (same Origin, JSON, the session cookie it was given).
import { join } from "node:path";
import { Accounts } from "../lib/accounts.ts";
import type { Config } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { Rooms } from "../lib/rooms.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { startServer, type TestServer, tempDir } from "./helpers.ts";

export interface AccountsServer extends TestServer {
	accounts: Accounts;
	rooms: Rooms;
	/** Its message store (SQLite), for tests that await its background work (settled). */
	store: SqliteStore;
	/** Every log line this server wrote. */
	logs: string[];
}

/** An in-process server under --auth accounts with a database of its own (or `dbPath`). */
export async function startAccountsServer(
	options: { config?: Partial<Config>; dbPath?: string } = {},
): Promise<AccountsServer> {
	const dir = options.dbPath ? undefined : tempDir("hubbub-acct-");
	const dbPath = options.dbPath ?? join((dir as { path: string }).path, "hubbub.db");
	// In the order the server opens them: the room tables read the message and account tables.
	const store = new SqliteStore(dbPath);
	const accounts = await Accounts.open(dbPath);
	const rooms = await Rooms.open(dbPath, accounts.store);
	const logs: string[] = [];
	const s = startServer({
		dbPath,
		store,
		accounts,
		rooms,
		log: createLogger("debug", (line) => logs.push(line)),
		config: { auth: "accounts", ...options.config },
	});
	return {
		...s,
		accounts,
		rooms,
		store,
		logs,
		async [Symbol.asyncDispose]() {
			await s[Symbol.asyncDispose]();
			dir?.[Symbol.dispose]();
		},
	};
}

export interface ApiAnswer {
	status: number;
	headers: Headers;
	body: Record<string, unknown> & { ok?: boolean; code?: string; message?: string };
}

/** A browser-like caller: its own cookie jar of one session cookie, and the server's own Origin. */
export class Browser {
	cookie?: string;
	constructor(
		readonly base: string,
		readonly init: { tls?: { ca: string }; origin?: string } = {},
	) {}

	async call(
		method: string,
		path: string,
		body?: unknown,
		headers: Record<string, string> = {},
	): Promise<ApiAnswer> {
		const r = await fetch(`${this.base}${path}`, {
			method,
			headers: {
				origin: this.init.origin ?? this.base,
				...(body !== undefined ? { "content-type": "application/json" } : {}),
				...(this.cookie ? { cookie: this.cookie } : {}),
				...headers,
			},
			body: body === undefined ? undefined : JSON.stringify(body),
			redirect: "manual",
			...(this.init.tls ? { tls: this.init.tls } : {}),
		});
		const set = r.headers.get("set-cookie");
		if (set) {
			const value = /^hubbub_session=([^;]*)/.exec(set)?.[1];
			this.cookie = value ? `hubbub_session=${value}` : undefined;
		}
		const text = await r.text();
		let parsed: ApiAnswer["body"] = {};
		try {
			parsed = JSON.parse(text);
		} catch {
			parsed = { text } as ApiAnswer["body"];
		}
		return { status: r.status, headers: r.headers, body: parsed };
	}

	get token(): string | undefined {
		return this.cookie?.slice("hubbub_session=".length);
	}

	/** Headers for a WebSocket from this browser. */
	wsHeaders(): Record<string, string> {
		return { origin: this.init.origin ?? this.base, ...(this.cookie ? { cookie: this.cookie } : {}) };
	}
}

/** First-run setup as `name`; returns the admin's browser. */
export async function setupAdmin(
	s: { url: string },
	name = "alice",
	password = "correct horse",
): Promise<Browser> {
	const b = new Browser(s.url);
	const r = await b.call("POST", "/api/auth/setup", { name, password });
	if (r.status !== 201) throw new Error(`setup failed: ${r.status} ${JSON.stringify(r.body)}`);
	return b;
}

/** An admin makes an invite; a new browser signs up with it. */
export async function invite(
	s: { url: string },
	admin: Browser,
	name: string,
	password: string,
): Promise<Browser> {
	const made = await admin.call("POST", "/api/admin/invites", { uses: 1, hours: 1 });
	if (made.status !== 201) throw new Error(`invite failed: ${made.status} ${JSON.stringify(made.body)}`);
	const code = String(made.body.link).split("#invite=")[1];
	const b = new Browser(s.url);
	const r = await b.call("POST", "/api/auth/signup", { name, password, invite: code });
	if (r.status !== 201) throw new Error(`signup failed: ${r.status} ${JSON.stringify(r.body)}`);
	return b;
}
