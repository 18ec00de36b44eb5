// A token bucket: `rate` frames a second on average, `burst` at once.
export class TokenBucket {
	private tokens: number;
	private last = performance.now();

	constructor(
		private readonly rate: number,
		private readonly burst: number,
	) {
		this.tokens = burst;
	}

	/** Takes one token; false when the bucket is empty. */
	take(now = performance.now()): boolean {
		this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
		this.last = now;
		if (this.tokens < 1) return false;
		this.tokens -= 1;
		return true;
	}
}
