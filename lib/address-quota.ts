// The daily quota of message text per address group, beside the per-name one the store keeps.
import { quotaDay } from "./store.ts";

/**
 * Bytes of message text each address group (an IPv4 address, an IPv6 /64:
 * lib/origin.ts addressGroup) may send per UTC day, so one address cannot fill
 * the disk by taking a fresh name (and fresh rooms) for every connection.
 * Kept in memory, per process: a restart or another process of a cluster
 * starts its own count, which bounds the fill rate, not the exact total.
 */
export class AddressQuota {
	private day = -1;
	private readonly used = new Map<string, number>();

	/** `bytesPerDay` 0: no bound. */
	constructor(private readonly bytesPerDay: number) {}

	/** Charges `bytes` to `group`; false (and nothing charged) when that would go past its quota for today. */
	charge(group: string, bytes: number, now = Date.now()): boolean {
		if (this.bytesPerDay === 0) return true;
		const day = quotaDay(now);
		if (day !== this.day) {
			this.day = day;
			this.used.clear();
		}
		const used = this.used.get(group) ?? 0;
		if (used + bytes > this.bytesPerDay) return false;
		this.used.set(group, used + bytes);
		return true;
	}

	/** Gives back a charge whose message was not stored. */
	refund(group: string, bytes: number): void {
		const used = this.used.get(group);
		if (used !== undefined) this.used.set(group, Math.max(0, used - bytes));
	}
}
