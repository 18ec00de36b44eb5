// Who may read which room: the ONE place every read of stored messages outside a live join asks (search, downloads).
import type { Account } from "./accounts.ts";

/** The person asking: the connection's name, and its account under --auth accounts. */
export interface Reader {
	name: string;
	account?: Account;
	/** --auth accounts: the rooms the account is a member of (lib/rooms.ts keeps it per process, up to date). */
	memberOf?: ReadonlySet<string>;
}

/**
 * True when `reader` may read `room`'s stored messages. Under --auth none
 * every room is open to every identified person; under --auth accounts only
 * a room's members may read it (lib/rooms.ts: joining an open room makes one
 * a member). It must stay cheap and synchronous. HTTP paths build the
 * Reader from Rooms.readerFor (async).
 */
export function mayRead(reader: Reader, room: string): boolean {
	const rooms = readableRooms(reader);
	return rooms === undefined || rooms.has(room);
}

/**
 * Every room `reader` may read, or undefined for "every room" (--auth none).
 * Search filters by this inside the store's query, so nothing about rows the
 * reader may not read (not even how many there are) shapes an answer.
 */
export function readableRooms(reader: Reader): ReadonlySet<string> | undefined {
	if (reader.account === undefined) return undefined;
	return reader.memberOf ?? new Set();
}
