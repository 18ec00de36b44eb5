// Who may read which room: the ONE place every read of stored messages outside a live join asks (search, downloads).
import type { Account } from "./accounts.ts";

/** The person asking: the connection's name, and its account under --auth accounts. */
export interface Reader {
	name: string;
	account?: Account;
}

/**
 * True when `reader` may read `room`'s stored messages. Today every room is
 * open to every identified person (there is no per-room access yet, issue 12),
 * so this allows everything; issue 12 tightens it HERE, and search results and
 * attachment downloads follow without another change. It must stay cheap and
 * synchronous: search calls it once per candidate row.
 */
export function mayRead(_reader: Reader, _room: string): boolean {
	return true;
}
