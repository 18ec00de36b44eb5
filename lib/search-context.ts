// History reads for opening a search result: the messages around a seq, and pages forward from it to the live end.
import type { Message } from "../protocol.ts";
import type { Page, Store } from "./store.ts";

/** A `history` answer that may also say whether newer messages follow its last one. */
export interface ContextPage extends Page {
	/** True when messages newer than the last one returned exist. */
	newer: boolean;
}

const size = (m: Message) => Buffer.byteLength(JSON.stringify(m)) + 1;

/**
 * Up to `limit` messages centred on `seq` (it included, when it exists):
 * about half older, half newer. Cut to `maxBytes` from both far ends (never
 * below the message at `seq`), saying `more`/`newer` for what was cut.
 */
export async function around(
	store: Pick<Store, "before" | "after">,
	room: string,
	seq: number,
	limit: number,
	maxBytes: number,
): Promise<ContextPage> {
	const [older, newer] = await Promise.all([
		store.before(room, seq + 1, Math.ceil(limit / 2)),
		store.after(room, seq, Math.floor(limit / 2)),
	]);
	const head = older.messages;
	const tail = newer.messages;
	let more = older.more;
	let hasNewer = newer.more;
	let bytes = [...head, ...tail].reduce((n, m) => n + size(m), 0);
	// Drop from whichever far end is longer until it fits; the message asked for stays.
	while (bytes > maxBytes && head.length + tail.length > 1) {
		if (tail.length >= head.length - 1 && tail.length > 0) {
			bytes -= size(tail.pop() as Message);
			hasNewer = true;
		} else {
			bytes -= size(head.shift() as Message);
			more = true;
		}
	}
	return { messages: [...head, ...tail], more, newer: hasNewer };
}

/**
 * Up to `limit` messages with seq > `seq`, oldest first: the way from a
 * search result down to the live end. Cut to `maxBytes` from the newest end
 * (at least one message), then `newer` is true. `more` is true when seq ≥ 1
 * (older messages precede this page).
 */
export async function forward(
	store: Pick<Store, "after">,
	room: string,
	seq: number,
	limit: number,
	maxBytes: number,
): Promise<ContextPage> {
	const page = await store.after(room, seq, limit);
	const messages = page.messages;
	let newer = page.more;
	let bytes = messages.reduce((n, m) => n + size(m), 0);
	while (bytes > maxBytes && messages.length > 1) {
		bytes -= size(messages.pop() as Message);
		newer = true;
	}
	return { messages, more: seq >= 1, newer };
}
