// Counting attempts per key in a sliding window: sign-ins per address and per account, sign-ups,
// invite and reset-link uses per address. The counts live in the account store (SQLite or
// PostgreSQL), so every process of a cluster shares one limit: N processes do not allow N× the attempts.

/** Where attempts are counted (AccountStore implements it; see takeAttempt there). */
export interface AttemptLog {
	takeAttempt(
		keys: string[],
		limit: number,
		since: number,
		now: number,
	): Promise<{ ok: true; seqs: number[] } | { ok: false; blockedSince: number }>;
	forgetAttempts(seqs: number[]): Promise<void>;
}

/** What take() answers: a ticket to forgive() the attempt by, or the seconds to wait. */
export type Taken = { ok: true; ticket: number[] } | { ok: false; retryAfter: number };

export class Throttle {
	constructor(
		private readonly log: AttemptLog,
		readonly limit: number,
		readonly windowMs: number,
		private readonly now: () => number = Date.now,
	) {}

	/**
	 * Counts one attempt under every key, unless one of them is at its limit.
	 * Counted before the attempt is made, not after it failed: parallel
	 * requests cannot all pass the check before any of them is counted.
	 */
	async take(keys: string[]): Promise<Taken> {
		const now = this.now();
		const taken = await this.log.takeAttempt(keys, this.limit, now - this.windowMs, now);
		if (taken.ok) return { ok: true, ticket: taken.seqs };
		return {
			ok: false,
			retryAfter: Math.max(1, Math.ceil((taken.blockedSince + this.windowMs - now) / 1000)),
		};
	}

	/** Uncounts an attempt that turned out not to count (a sign-in with the right password). */
	async forgive(ticket: number[]): Promise<void> {
		await this.log.forgetAttempts(ticket);
	}
}
