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
 * a member). It must stay cheap and synchronous: search calls it once per
 * candidate row. HTTP paths build the Reader from Rooms.readerFor (async).
 */
export function mayRead(reader: Reader, room: string): boolean {
	if (reader.account === undefined) return true;
	return reader.memberOf?.has(room) ?? false;
}
