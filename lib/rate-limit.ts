// The cost model's parts: token buckets, and the default rate of every client frame type.
import type { ClientFrameType } from "../protocol.ts";

/** A token bucket: `rate` tokens a second on average, `burst` at once. */
export class TokenBucket {
	private tokens: number;
	private last = performance.now();

	constructor(
		private readonly rate: number,
		private readonly burst: number,
	) {
		this.tokens = burst;
	}

	/** Tokens there now: may be negative after `spend` ran it into debt. */
	level(now = performance.now()): number {
		this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
		this.last = now;
		return this.tokens;
	}

	/** Takes one token; false when the bucket is empty. */
	take(now = performance.now()): boolean {
		if (this.level(now) < 1) return false;
		this.tokens -= 1;
		return true;
	}

	/** Takes `n` tokens even when that leaves a debt, which later refills pay back first. */
	spend(n: number, now = performance.now()): void {
		this.level(now);
		this.tokens -= n;
	}
}

export interface FrameRate {
	/** Frames a second, on average. */
	rate: number;
	/** Frames at once before the rate applies. */
	burst: number;
}

/**
 * Every client frame type's default rate, per connection. Chosen so the page
 * never meets them: it rejoins all its rooms (at most --max-rooms, 50) at once
 * after a reconnect, retries `hello` once a second while its old connection's
 * name is released, pages history one screen at a time and sends `typing` at
 * most every 2 s (tests/abuse-limits.test.ts plays such a page). `send` and
 * `typing` come from their own older flags (--send-rate, --typing-rate).
 */
export const FRAME_RATES: Record<Exclude<ClientFrameType, "send" | "typing">, FrameRate> = {
	hello: { rate: 2, burst: 10 },
	join: { rate: 5, burst: 100 },
	// A page leaves one room per click; each leave tells the room, so its burst is small.
	leave: { rate: 2, burst: 10 },
	history: { rate: 5, burst: 20 },
	ping: { rate: 2, burst: 20 },
	// A page searches when the person stops typing (or presses Enter) and pages results on scroll.
	search: { rate: 2, burst: 10 },
	// Protocol 1.2 (--auth accounts). Room changes are a person's clicks; `read` follows scrolling.
	create: { rate: 1, burst: 5 },
	direct: { rate: 1, burst: 10 },
	directory: { rate: 1, burst: 10 },
	room_update: { rate: 1, burst: 10 },
	member_add: { rate: 1, burst: 20 },
	member_remove: { rate: 1, burst: 20 },
	read: { rate: 2, burst: 20 },
	edit: { rate: 1, burst: 10 },
	delete: { rate: 1, burst: 10 },
	react: { rate: 2, burst: 20 },
};

/**
 * Frames that fail validation (not JSON, binary, unknown type, bad fields):
 * the page never sends one, so they get the strictest budget, and each one
 * past it is a strike like any other refusal.
 */
export const INVALID_RATE: FrameRate = { rate: 2, burst: 10 };

/**
 * Addresses recently closed for flooding, refused at the upgrade until their
 * time is up: without it a flooder reconnects and gets a fresh burst each time.
 */
export class PenaltyBox {
	private readonly until = new Map<string, number>();

	constructor(private readonly seconds: number) {}

	punish(address: string, now = performance.now()): void {
		this.until.set(address, now + this.seconds * 1000);
		// Forget expired entries now and then, so the map stays as small as the set of recent flooders.
		if (this.until.size > 1000) for (const [a, t] of this.until) if (t <= now) this.until.delete(a);
	}

	/** Seconds until `address` may connect again; 0 when it may now. */
	remaining(address: string, now = performance.now()): number {
		const t = this.until.get(address);
		if (t === undefined) return 0;
		if (t <= now) {
			this.until.delete(address);
			return 0;
		}
		return Math.ceil((t - now) / 1000);
	}
}

/**
 * WebSocket upgrades per address group (lib/origin.ts addressGroup): a token
 * bucket each, so one address cannot churn connect/hello/close cycles as fast
 * as it can. Buckets back at their burst are forgotten now and then, so the
 * map stays as small as the set of addresses that connected recently.
 */
export class UpgradeRate {
	private readonly buckets = new Map<string, TokenBucket>();

	constructor(
		private readonly rate: number,
		private readonly burst: number,
	) {}

	/** Takes one upgrade for `group`: 0 when it may go ahead, else the seconds until it may. */
	take(group: string, now = performance.now()): number {
		let bucket = this.buckets.get(group);
		if (!bucket) {
			if (this.buckets.size >= 10_000)
				for (const [g, b] of this.buckets) if (b.level(now) >= this.burst) this.buckets.delete(g);
			bucket = new TokenBucket(this.rate, this.burst);
			this.buckets.set(group, bucket);
		}
		if (bucket.take(now)) return 0;
		return Math.max(1, Math.ceil((1 - bucket.level(now)) / this.rate));
	}
}
