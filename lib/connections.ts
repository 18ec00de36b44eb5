// This process's open sockets: how many, from which addresses, and the sweep that drops the silent ones.
import type { ServerWebSocket } from "bun";
import { addressGroup } from "./origin.ts";

/** What the registry reads of a socket's data. */
interface Tracked {
	address: string;
	/** performance.now() of the last frame or pong from the client. */
	lastSeen: number;
}

export class Connections<T extends Tracked> implements Iterable<ServerWebSocket<T>> {
	private readonly open = new Set<ServerWebSocket<T>>();
	/** Open sockets per address group (an IPv6 /64 counts as one address: see addressGroup). */
	private readonly perAddress = new Map<string, number>();

	get size(): number {
		return this.open.size;
	}

	[Symbol.iterator](): Iterator<ServerWebSocket<T>> {
		return this.open[Symbol.iterator]();
	}

	/** Open connections from one client address. */
	from(address: string): number {
		return this.perAddress.get(addressGroup(address)) ?? 0;
	}

	add(ws: ServerWebSocket<T>): void {
		this.open.add(ws);
		const group = addressGroup(ws.data.address);
		this.perAddress.set(group, (this.perAddress.get(group) ?? 0) + 1);
	}

	delete(ws: ServerWebSocket<T>): void {
		if (!this.open.delete(ws)) return;
		const group = addressGroup(ws.data.address);
		const left = (this.perAddress.get(group) ?? 1) - 1;
		if (left > 0) this.perAddress.set(group, left);
		else this.perAddress.delete(group);
	}

	/**
	 * Pings sockets silent for half of `idleMs` and drops those silent for all
	 * of it. Bun's own idle timer restarts whenever the server sends, so in a
	 * busy room a vanished peer would never time out without this.
	 */
	sweep(idleMs: number, now = performance.now()): void {
		for (const ws of this.open) {
			const silent = now - ws.data.lastSeen;
			if (silent >= idleMs) ws.terminate();
			else if (silent >= idleMs / 2) ws.ping();
		}
	}
}
