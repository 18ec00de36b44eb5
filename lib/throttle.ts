// Counting attempts per key in a sliding window: failed sign-ins per address and per account,
// sign-ups per address. Memory is bounded: past `maxKeys` the oldest keys are forgotten.

export class Throttle {
	private readonly hits = new Map<string, number[]>();

	constructor(
		readonly limit: number,
		readonly windowMs: number,
		private readonly maxKeys = 100_000,
	) {}

	/** Seconds until `key` may try again, or 0 when it may now. */
	retryAfter(key: string, now = Date.now()): number {
		const times = this.recent(key, now);
		if (times.length < this.limit) return 0;
		return Math.max(1, Math.ceil(((times[0] as number) + this.windowMs - now) / 1000));
	}

	/** Counts one attempt for `key`. */
	hit(key: string, now = Date.now()): void {
		const times = this.recent(key, now);
		times.push(now);
		if (times.length > this.limit) times.shift();
		// Re-inserted so Map order is least recently hit first: the oldest key goes when full.
		this.hits.delete(key);
		this.hits.set(key, times);
		if (this.hits.size > this.maxKeys) {
			const oldest = this.hits.keys().next().value;
			if (oldest !== undefined) this.hits.delete(oldest);
		}
	}

	private recent(key: string, now: number): number[] {
		const times = this.hits.get(key);
		if (!times) return [];
		while (times.length > 0 && (times[0] as number) <= now - this.windowMs) times.shift();
		if (times.length === 0) this.hits.delete(key);
		return times;
	}
}
