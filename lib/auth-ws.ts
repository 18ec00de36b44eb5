// WebSockets under --auth accounts: the upgrade is authenticated by the session cookie, the account
// names the connection, and a session that ends (sign-out, deactivation, password change) closes
// its sockets at once, here and, through the revocation log, on every other process.
import type { ServerWebSocket } from "bun";
import { CLOSE } from "../protocol.ts";
import type { Account, Accounts, Authenticated } from "./accounts.ts";
import { nameKey } from "./names.ts";

interface Bound {
	account: Account;
	tokenHash: string;
}

/** The account a connection was authenticated as, keyed by its `ws.data` (set before the upgrade). */
const bound = new WeakMap<object, Bound>();

export function bindAccount(data: object, auth: Authenticated): void {
	bound.set(data, { account: auth.account, tokenHash: auth.tokenHash });
}

export function accountOf(data: object): Account | undefined {
	return bound.get(data)?.account;
}

/**
 * Under accounts a `hello` is answered with `welcome` again when it names the
 * connection's own account (a v1 client sending its usual hello keeps
 * working), and refused with `already_identified` otherwise.
 */
export function helloMatchesAccount(data: object, name: string): boolean {
	const account = accountOf(data);
	return account !== undefined && nameKey(account.name) === nameKey(name);
}

/** Every authenticated socket of this process by session, so an ended session closes them. */
export class LiveSessions<T extends object> {
	private readonly bySession = new Map<string, Set<ServerWebSocket<T>>>();
	/** Sessions ended lately: a socket authenticated just before its session ended, but opened after, is closed too. */
	private readonly recentlyEnded = new Map<string, number>();

	constructor(accounts: Accounts) {
		accounts.onSessionEnded((tokenHash, why) => this.end(tokenHash, why));
	}

	add(ws: ServerWebSocket<T>): Account | undefined {
		const b = bound.get(ws.data);
		if (!b) return undefined;
		if (this.recentlyEnded.has(b.tokenHash)) {
			ws.close(CLOSE.sessionEnded, "session ended; sign in again");
			return undefined;
		}
		let set = this.bySession.get(b.tokenHash);
		if (!set) {
			set = new Set();
			this.bySession.set(b.tokenHash, set);
		}
		set.add(ws);
		return b.account;
	}

	remove(ws: ServerWebSocket<T>): void {
		const b = bound.get(ws.data);
		if (!b) return;
		const set = this.bySession.get(b.tokenHash);
		set?.delete(ws);
		if (set?.size === 0) this.bySession.delete(b.tokenHash);
	}

	/** Closes every socket of the session with CLOSE.sessionEnded. */
	end(tokenHash: string, why = "session ended; sign in again"): number {
		const now = Date.now();
		this.recentlyEnded.set(tokenHash, now);
		for (const [hash, at] of this.recentlyEnded) {
			if (at > now - 60_000) break;
			this.recentlyEnded.delete(hash);
		}
		const set = this.bySession.get(tokenHash);
		if (!set) return 0;
		this.bySession.delete(tokenHash);
		for (const ws of set) ws.close(CLOSE.sessionEnded, why);
		return set.size;
	}

	get size(): number {
		return this.bySession.size;
	}
}
