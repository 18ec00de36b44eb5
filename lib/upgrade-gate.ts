// Who may open a WebSocket: the origin, the connection cap, flood bans and per-address limits, in one
// place that both the upgrade (/ws) and the page's question (/api/upgrade-check) ask.
import type { Config } from "./config.ts";
import { addressGroup, checkOrigin } from "./origin.ts";
import { PenaltyBox, UpgradeRate } from "./rate-limit.ts";

/** Why an upgrade is refused, as the page shows it. */
export interface Refusal {
	status: 403 | 429 | 503;
	code: "origin_not_allowed" | "too_many_connections" | "server_full";
	message: string;
	retryAfter?: number;
}

export class UpgradeGate {
	// Addresses (IPv6 by /64) whose connection was just closed for flooding: without a pause
	// a flooder reconnects and gets a fresh burst each time.
	private readonly penalties: PenaltyBox;
	// Connect/hello/close cycles from one address, as fast as it can, would cost every other connection.
	private readonly upgrades: UpgradeRate;

	constructor(
		private readonly config: Pick<
			Config,
			"origins" | "floodBan" | "upgradeRate" | "upgradeBurst" | "maxConnsPerIp"
		>,
		private readonly cap: number,
		private readonly open: { readonly connectionCount: number; connectionsFrom(address: string): number },
	) {
		this.penalties = new PenaltyBox(config.floodBan);
		this.upgrades = new UpgradeRate(config.upgradeRate, config.upgradeBurst);
	}

	/** Bans the address's group for --flood-ban seconds (its connection was closed for flooding). */
	punish(address: string): void {
		this.penalties.punish(addressGroup(address));
	}

	/** Why a connection from `address` would be refused now; undefined if it would not. */
	refusal(origin: string | null, host: string | null, address: string): Refusal | undefined {
		const verdict = checkOrigin(origin, host, this.config.origins);
		if (!verdict.ok) return { status: 403, code: "origin_not_allowed", message: verdict.message };
		if (this.open.connectionCount >= this.cap) {
			return {
				status: 503,
				code: "server_full",
				message: "the server is at its connection limit; the page tries again by itself",
				retryAfter: 30,
			};
		}
		const banned = this.penalties.remaining(addressGroup(address));
		if (banned > 0) {
			return {
				status: 429,
				code: "too_many_connections",
				message: `a connection from your address was closed for sending too fast; wait ${banned} s before reconnecting`,
				retryAfter: banned,
			};
		}
		const max = this.config.maxConnsPerIp;
		if (this.open.connectionsFrom(address) >= max) {
			return {
				status: 429,
				code: "too_many_connections",
				message: `your address already has ${max} connections open to this server, its limit; close another tab or window of this chat`,
				retryAfter: 10,
			};
		}
		return undefined;
	}

	/** `refusal`, and for a real upgrade also the per-address upgrade rate (it takes a token). */
	admit(origin: string | null, host: string | null, address: string): Refusal | undefined {
		const wait = this.upgrades.take(addressGroup(address));
		return (
			this.refusal(origin, host, address) ??
			(wait > 0
				? {
						status: 429,
						code: "too_many_connections",
						message: `your address is connecting too often; wait ${wait} s before reconnecting`,
						retryAfter: wait,
					}
				: undefined)
		);
	}
}
