// Where messages are kept: the seam between the hub and a durable store (SQLite or PostgreSQL).
import { canonicalEmoji, type FileRef, LIMITS, type Message } from "../protocol.ts";
import type { SearchPage, SearchQuery } from "./search.ts";

export interface NewMessage {
	room: string;
	/** Display name of the sender; idempotency is keyed on its lower-case form. */
	from: string;
	id?: string;
	text: string;
	ts: number;
	/** Files the message carries, as resolved from `account`'s uploads (lib/attachments-index.ts). */
	files?: FileRef[];
	/** The sender's account id: its uploads of `files` are marked sent. */
	account?: string;
}

/** One account's upload of one file (per account and content: a second upload of the same bytes refreshes it). */
export interface UploadRow {
	account: string;
	/** The file's id (sha256 hex). */
	id: string;
	name: string;
	type: string;
	size: number;
	width?: number;
	height?: number;
	inline: boolean;
	/** When it was last uploaded (ms). */
	created: number;
	/** True once a message carried it (since its last upload). */
	sent: boolean;
}

/**
 * What both stores keep of uploaded files (the bytes themselves live in
 * lib/attachments.ts's folder): who uploaded which file, and which messages
 * hold it, so downloads can be checked per room and files no message holds deleted.
 */
export interface FileIndex {
	/**
	 * Records (or refreshes, as un-sent and new) `row.account`'s upload of
	 * `row.id`, and runs `place` (which puts its bytes where downloads find
	 * them) inside the same transaction: a `forgetFiles` of the same file runs
	 * wholly before or wholly after, so it never deletes bytes a new row needs.
	 */
	recordUpload(row: Omit<UploadRow, "sent">, place?: () => void): Promise<void>;
	/** `account`'s uploads among `ids` (in no particular order; unknown ids are absent). */
	uploads(account: string, ids: string[]): Promise<UploadRow[]>;
	/** Bytes of every file `account` has uploaded and that is still stored. */
	uploadedBytes(account: string): Promise<number>;
	/** Rooms with a message holding file `id` (at most `limit`). */
	fileRooms(id: string, limit: number): Promise<string[]>;
	/** Removes message (room, seq)'s files (its column and links); the ids it held. */
	releaseFiles(room: string, seq: number): Promise<string[]>;
	/**
	 * Of `ids` (or, when undefined, of every uploaded file, a few hundred at a
	 * time), those no message holds and no un-sent upload newer than
	 * `unsentSince` refers to: their upload rows are removed and `remove`
	 * deletes their bytes, in the transaction that decided it. Resolves with them.
	 */
	forgetFiles(
		ids: string[] | undefined,
		unsentSince: number,
		remove?: (id: string) => void,
	): Promise<string[]>;
	/**
	 * Removes links to messages that no longer hold their files (deleted, or
	 * whose files were released) in case a releaseFiles after a deletion
	 * failed; resolves with how many.
	 */
	unlinkGone(): Promise<number>;
	/** Which of `ids` an upload row or a message still refers to (the rest are bytes nothing needs). */
	knownFiles(ids: string[]): Promise<Set<string>>;
}

export interface Appended {
	message: Message;
	/** False when (room, sender, id) was already stored: `message` is the stored one. */
	created: boolean;
}

export interface Page {
	messages: Message[];
	/** True when messages older than the first one returned exist (for `after`: newer than the last one). */
	more: boolean;
}

/**
 * A durable, ordered message log per room.
 *
 * Contract for every implementation:
 * - `append` resolves only after the message is committed; seq is per room,
 *   starts at 1 and has no gaps, also when several processes share the store.
 * - Appends resolve in the order their seqs were given within one room, so the
 *   caller can publish in resolution order.
 * - A repeated (room, lower(from), id) stores nothing and resolves with the stored message.
 * - Reads return messages ascending by seq.
 */
export interface Store extends FileIndex {
	/** Names this store's history; changes only when the history is new. */
	readonly epoch: string;
	/**
	 * Names this database for as long as it exists, through backups and
	 * restores (unlike `epoch`): a cluster's processes share it, and Redis
	 * keys and channels are namespaced by it.
	 */
	readonly id: string;
	append(input: NewMessage): Promise<Appended>;
	/** The newest `limit` messages; `more` if older exist. */
	latest(room: string, limit: number): Promise<Page>;
	/**
	 * The newest `limit` messages with seq > since; `more` if more than `limit` had seq > since,
	 * or if some with seq > since were removed by retention (`prune`).
	 */
	since(room: string, since: number, limit: number): Promise<Page>;
	/**
	 * Up to `limit` messages with seq > after, ascending from the oldest: a page
	 * forward through the log; `more` if messages beyond the last returned exist.
	 */
	after(room: string, after: number, limit: number): Promise<Page>;
	/** Up to `limit` messages with seq < before, ascending; `more` if older exist. */
	before(room: string, before: number, limit: number): Promise<Page>;
	/**
	 * Messages matching `query`, newest first, among the `readable` rooms
	 * (lib/access.ts readableRooms; undefined: every room), filtered inside the
	 * query; lib/search.ts states the contract. Throws BadCursor for a cursor
	 * it did not give.
	 */
	search(query: SearchQuery, readable: ReadonlySet<string> | undefined): Promise<SearchPage>;
	/**
	 * Protocol 1.2 (--auth accounts): replaces the text of message `seq` and
	 * stamps `edited` with `ts`. Every edit, removal and reaction takes the
	 * room's next change number (consecutive per room, committed in that
	 * order, also across processes) and stamps it on the message as `change`.
	 * Refused (nothing stored, no number taken) when there is no such message
	 * or it was deleted. Who may do it is the caller's rule (lib/message-changes.ts).
	 */
	edit(room: string, seq: number, text: string, ts: number): Promise<ChangeOutcome>;
	/**
	 * Deletes message `seq` as a tombstone: the row and its seq stay (the log
	 * stays gap-free), its text becomes "" and its reactions go, and the text
	 * is erased from the store's files as far as the engine allows (see
	 * docs/SECURITY.md). Deleting a tombstone again is refused ("deleted"): no change number, no update.
	 */
	remove(room: string, seq: number): Promise<ChangeOutcome>;
	/**
	 * Adds (`on`) or takes back `name`'s reaction `emoji` on message `seq`;
	 * names are compared by name key, emoji by protocol.ts canonicalEmoji. At most
	 * LIMITS.reactionsPerMessage distinct emoji per message, and
	 * LIMITS.reactionsPerPerson of one person's. A repeat (already on, already off) still
	 * takes a change number, so every accepted request has its `update`.
	 */
	react(room: string, seq: number, emoji: string, name: string, on: boolean): Promise<ChangeOutcome>;
	/**
	 * The messages whose last change is after `afterChange` (and whose seq is at
	 * most `maxSeq`, when given), ordered by that change, as they are now;
	 * `more` when more than `limit` matched.
	 */
	changes(room: string, afterChange: number, limit: number, maxSeq?: number): Promise<Page>;
	/** The room's change counter: the number of its last edit, removal or reaction (0 when none). */
	lastChange(room: string): Promise<number>;
	/**
	 * Undefined when a tiny write (one row in a table of its own) commits;
	 * otherwise a sentence saying why sends would fail now (file deleted or
	 * replaced, disk full, database unreachable or locked).
	 */
	probe(): Promise<string | undefined>;
	/**
	 * Removes each room's oldest messages beyond `policy`: always a prefix of
	 * the room (every seq up to the room's floor), never its seq counter, so a
	 * removed seq is never given again. Works in steps: a call removes at most
	 * a few thousand messages per room and resolves with how many it removed.
	 */
	prune(policy: Retention, now?: number): Promise<number>;
	/** Commits whatever is pending, then releases the store. */
	close(): Promise<void>;
}

/** What an edit, removal or reaction did: the message as it is now (with its `change`), or why nothing changed. */
export type ChangeOutcome =
	| { ok: true; message: Message & { change: number } }
	| { ok: false; reason: ChangeRefusal };

/** How much history a room keeps (see lib/retention.ts); 0 or absent means no bound. */
export interface Retention {
	/** Messages kept per room. */
	keep?: number;
	/** Messages older than this are removed. */
	maxAgeMs?: number;
}

/** Rows one `prune` call removes from one room at most, so a large first prune never stalls the store. */
export const PRUNE_STEP = 5000;

/** Stores take this: the bytes of text one sender (lower-case name key) may store per UTC day; 0 is no bound. */
export interface QuotaOptions {
	dailyQuota?: number;
}

/** The UTC day a timestamp falls on, as the quota counts it. */
export function quotaDay(ts: number): number {
	return Math.floor(ts / 86_400_000);
}

/** A send refused because its sender's daily quota is spent; nothing was stored. Not a store fault. */
export class QuotaExceeded extends Error {
	override name = "QuotaExceeded";
	constructor(readonly quota: number) {
		super(`the daily quota of ${quota} bytes of text for this name is used up; try again tomorrow (UTC)`);
	}
}

/**
 * A send named a file its account did not upload, or one deleted meanwhile:
 * nothing was stored. Checked again inside the append's transaction, so a
 * message is never stored with a file a deletion took at the same moment.
 */
export class UnknownFile extends Error {
	override name = "UnknownFile";
}

/** A store that could not do what was asked; the message is safe to log, not to show users. */
export class StoreError extends Error {
	override name = "StoreError";
}

/** A stored message as both stores' queries return it (PostgreSQL may give numbers as strings). */
export interface StoredRow {
	room: string;
	seq: number | string;
	sender: string;
	client_id: string | null;
	text: string;
	ts: number | string;
	/** JSON of the message's FileRef[]; null (or not selected) when it has none. */
	files?: string | null;
	// Protocol 1.2; absent in rows read by queries that do not select them (search hits).
	edited?: number | string | null;
	/** 0/1 in SQLite, a boolean in PostgreSQL. */
	deleted?: number | boolean | null;
	/** JSON of Message["reactions"], null when none. */
	reactions?: string | null;
	change_seq?: number | string | null;
}

/** The columns messageFromRow reads, for every query that returns whole messages. */
export const MESSAGE_COLUMNS =
	"room, seq, sender, client_id, text, ts, files, edited, deleted, reactions, change_seq";

export function messageFromRow(r: StoredRow): Message {
	const m: Message = {
		type: "message",
		room: r.room,
		seq: Number(r.seq),
		from: r.sender,
		text: r.text,
		ts: Number(r.ts),
	};
	if (r.client_id !== null) m.id = r.client_id;
	if (r.files) m.files = JSON.parse(r.files) as FileRef[];
	if (r.edited !== null && r.edited !== undefined) m.edited = Number(r.edited);
	if (r.deleted) m.deleted = true;
	if (r.reactions) m.reactions = JSON.parse(r.reactions) as NonNullable<Message["reactions"]>;
	if (r.change_seq !== null && r.change_seq !== undefined) m.change = Number(r.change_seq);
	return m;
}

/** The JSON kept in a message's `files` column, or null. */
export function filesColumn(files: FileRef[] | undefined): string | null {
	return files && files.length > 0 ? JSON.stringify(files) : null;
}

/** An upload row as both stores' queries return it. */
export function uploadFromRow(r: Record<string, unknown>): UploadRow {
	const row: UploadRow = {
		account: String(r.account),
		id: String(r.hash),
		name: String(r.name),
		type: String(r.type),
		size: Number(r.size),
		inline: Number(r.inline) === 1 || r.inline === true,
		created: Number(r.created),
		sent: Number(r.sent) === 1 || r.sent === true,
	};
	if (r.width !== null && r.width !== undefined) row.width = Number(r.width);
	if (r.height !== null && r.height !== undefined) row.height = Number(r.height);
	return row;
}

/** Rows of uploads `forgetFiles` looks at in one sweep. */
export const FORGET_STEP = 500;

export type Reactions = NonNullable<Message["reactions"]>;

/** Why a store refused a change (nothing stored, no change number taken). */
export type ChangeRefusal = "not_found" | "deleted" | "too_many_reactions" | "too_many_own_reactions";

/**
 * `name`'s reaction `emoji` added (`on`) or taken back: the new list (each
 * emoji in the order it was first used), or why adding is refused: it would
 * pass `max` distinct emoji on the message, or `perPerson` distinct emoji of
 * this person's. Names are compared by `key`, emoji by canonicalEmoji.
 */
export function toggleReaction(
	list: Reactions,
	emoji: string,
	name: string,
	on: boolean,
	key: (name: string) => string,
	max: number,
	perPerson = LIMITS.reactionsPerPerson,
): Reactions | "too_many_reactions" | "too_many_own_reactions" {
	const k = key(name);
	// Compared in one form (protocol.ts canonicalEmoji): a row stored before that form still matches.
	const form = canonicalEmoji(emoji);
	const next = list.map((r) => ({ emoji: r.emoji, names: [...r.names] }));
	let entry = next.find((r) => canonicalEmoji(r.emoji) === form);
	const mine = (r: { names: string[] }) => r.names.some((n) => key(n) === k);
	if (on) {
		if (entry && mine(entry)) return next;
		if (next.filter(mine).length >= perPerson) return "too_many_own_reactions";
		if (!entry) {
			if (next.length >= max) return "too_many_reactions";
			entry = { emoji: form, names: [] };
			next.push(entry);
		}
		entry.names.push(name);
	} else if (entry) {
		entry.names = entry.names.filter((n) => key(n) !== k);
	}
	return next.filter((r) => r.names.length > 0);
}

/** A new history's name: 8 base36 characters from 40 random bits, short for the wire and unique enough. */
export function newEpoch(): string {
	const bytes = crypto.getRandomValues(new Uint8Array(5));
	let n = 0n;
	for (const b of bytes) n = (n << 8n) | BigInt(b);
	return n.toString(36).padStart(8, "0");
}

/** True when `db` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
	return /^postgres(ql)?:\/\//i.test(db);
}
