// A seeded random source, so a soak's plan (which fault, when, which client does what) repeats with its seed.

export interface Rng {
	/** Uniform in [0, 1). */
	next(): number;
	/** An integer in [lo, hi]. */
	int(lo: number, hi: number): number;
	pick<T>(items: readonly T[]): T;
	chance(p: number): boolean;
	/** A new source of its own, derived from this one: parts of the soak draw without disturbing each other. */
	fork(): Rng;
}

/** mulberry32: small, fast and good enough to plan a soak. */
export function rng(seed: number): Rng {
	let a = seed >>> 0;
	const next = () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	const self: Rng = {
		next,
		int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
		pick: (items) => {
			if (items.length === 0) throw new Error("pick from nothing");
			return items[Math.floor(next() * items.length)] as (typeof items)[number];
		},
		chance: (p) => next() < p,
		fork: () => rng(Math.floor(next() * 4294967296)),
	};
	return self;
}
