// Full-text search's contract, shared by both stores: how a query is read, which messages match, the snippet and its highlights, and paging.
import { LIMITS } from "../protocol.ts";
import type { StoredRow } from "./store.ts";

export interface SearchQuery {
	/** Words and "quoted phrases"; a message matches when it holds every one (see `parseTerms`). */
	text: string;
	room?: string;
	/** Author: compared case-insensitively with the sender's name. */
	from?: string;
	/** Only messages with ts < before (ms since the epoch). */
	before?: number;
	/** Only messages with ts >= after. */
	after?: number;
	/** Where the previous page stopped (opaque, from `SearchPage.cursor`). */
	cursor?: string;
	limit: number;
}

export interface SearchHit {
	room: string;
	seq: number;
	from: string;
	ts: number;
	/** Plain text: the message, or a window of it around the first match with "…" where it was cut. */
	snippet: string;
	/** [start, end) of each matched part of `snippet`, in UTF-16 code units, ascending, never overlapping. */
	highlights: [number, number][];
}

export interface SearchPage {
	/** Newest first. */
	hits: SearchHit[];
	/** Present when more may follow: pass it back as `cursor` for the next page. */
	cursor?: string;
	/** The newest messages were not all indexed yet (a first page only): they may be missing. */
	behind?: true;
}

/** A cursor this store did not give (another store's, or forged). */
export class BadCursor extends Error {
	override name = "BadCursor";
	constructor() {
		super("field 'cursor' is not one this server gave; start the search again without it");
	}
}

/** What a store's index is asked for: terms it can prefilter on, plus the filters. */
export interface SearchPlan {
	/** Terms of 3 or more characters: substrings, case-insensitive (a trigram index finds them). */
	long: string[];
	/** Terms of 1–2 characters: the start of a word (a word index finds them). */
	short: string[];
	room?: string;
	/** Lower-case author name, as stores keep `sender_key`. */
	senderKey?: string;
	before: number;
	after: number;
	/**
	 * The rooms the reader may read (undefined: every room). Stores filter by
	 * them INSIDE their query, before any limit, so rows the reader may not
	 * read never count toward a page, a scan bound or a cursor: an answer's
	 * shape must not tell whether such rows exist.
	 */
	rooms?: string[];
}

/** A stored message with its place in the store's newest-first order (what a cursor encodes). */
export interface Candidate {
	row: StoredRow;
	pos: string;
}

/**
 * Reads up to `n` candidates newest first, strictly after `cursor`: a superset
 * of the matches is fine (runSearch checks terms and filters again).
 */
export type FetchCandidates = (
	plan: SearchPlan,
	cursor: string | undefined,
	n: number,
) => Promise<Candidate[]>;

/** Rows one search call looks at before it answers with what it found and a cursor (bounds a search's cost). */
export const SCAN_ROWS = 1000;
/** Characters of a long message a snippet shows. */
export const SNIPPET_CHARS = 160;
const MAX_TERMS = 8;

const hasWordChar = /[\p{L}\p{N}]/u;

/**
 * The query's terms: whitespace-separated words and "quoted phrases", at most
 * 8, each matched case-insensitively. A term of 3 or more characters matches
 * anywhere (inside words, in text without spaces: Japanese, `ERR_SOCKET_TIMEOUT`);
 * a term of 1–2 characters matches the start of a word, and is dropped when it
 * holds no letter or digit (it would match almost everything).
 */
export function parseTerms(text: string): string[] {
	const terms: string[] = [];
	for (const m of text.matchAll(/"([^"]*)"?|(\S+)/g)) {
		const term = (m[1] ?? m[2] ?? "").trim();
		if (term === "" || terms.includes(term)) continue;
		if ([...term].length < 3 && !hasWordChar.test(term)) continue;
		terms.push(term);
		if (terms.length === MAX_TERMS) break;
	}
	return terms;
}

export function isShort(term: string): boolean {
	return [...term].length < 3;
}

function escapeRegExp(s: string): string {
	// Only syntax characters: under the `u` flag escaping anything else (like "-") is an error.
	return s.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
}

/** One term as a pattern: anywhere when long, at a word start when short. */
function termSource(term: string): string {
	return isShort(term) ? `(?<![\\p{L}\\p{N}])${escapeRegExp(term)}` : escapeRegExp(term);
}

/** The JS definition of a match, which both stores' indexes only prefilter for: every term is found. */
export class Matcher {
	private readonly each: RegExp[];
	private readonly any: RegExp;

	constructor(readonly terms: string[]) {
		this.each = terms.map((t) => new RegExp(termSource(t), "iu"));
		this.any = new RegExp(terms.map(termSource).join("|") || "(?!)", "giu");
	}

	matches(text: string): boolean {
		return this.terms.length > 0 && this.each.every((re) => re.test(text));
	}

	/** The snippet for `text` and the ranges of every term found in it. */
	snippet(text: string): { snippet: string; highlights: [number, number][] } {
		const ranges: [number, number][] = [];
		for (const m of text.matchAll(this.any)) {
			if (m[0].length === 0) continue;
			const start = m.index;
			const end = start + m[0].length;
			const last = ranges.at(-1);
			if (last && start <= last[1]) last[1] = Math.max(last[1], end);
			else ranges.push([start, end]);
		}
		if (text.length <= SNIPPET_CHARS) return { snippet: text, highlights: ranges };
		// A window that starts a little before the first match, widened to whole code points.
		let from = Math.max(0, (ranges[0]?.[0] ?? 0) - Math.floor(SNIPPET_CHARS / 4));
		from = Math.min(from, text.length - SNIPPET_CHARS);
		let to = from + SNIPPET_CHARS;
		if (isLowSurrogate(text, from)) from--;
		if (isLowSurrogate(text, to)) to++;
		const head = from > 0 ? "…" : "";
		const tail = to < text.length ? "…" : "";
		const shift = head.length - from;
		const highlights = ranges
			.filter(([s, e]) => e > from && s < to)
			.map(([s, e]): [number, number] => [Math.max(s, from) + shift, Math.min(e, to) + shift]);
		return { snippet: head + text.slice(from, to) + tail, highlights };
	}
}

function isLowSurrogate(s: string, i: number): boolean {
	const c = s.charCodeAt(i);
	return c >= 0xdc00 && c <= 0xdfff;
}

/** The filters, checked here whatever the store already did with them. */
function passes(plan: SearchPlan, row: StoredRow): boolean {
	const ts = Number(row.ts);
	return (
		(plan.room === undefined || row.room === plan.room) &&
		(plan.senderKey === undefined || row.sender.toLowerCase() === plan.senderKey) &&
		ts < plan.before &&
		ts >= plan.after
	);
}

/**
 * Runs a search over a store's candidates, which are already limited to the
 * `readable` rooms (lib/access.ts readableRooms; undefined: every room): keeps
 * those that match every term, newest first, until the page is full or
 * SCAN_ROWS were looked at; then it answers with a cursor. A page may
 * therefore hold fewer than `limit` hits and still have a cursor, and a full
 * page always has one (the next may be empty): whether more exist is never
 * looked up, so it cannot leak.
 */
export async function runSearch(
	query: SearchQuery,
	fetch: FetchCandidates,
	readable: ReadonlySet<string> | undefined,
): Promise<SearchPage> {
	const terms = parseTerms(query.text);
	if (terms.length === 0) return { hits: [] };
	if (
		readable !== undefined &&
		(readable.size === 0 || (query.room !== undefined && !readable.has(query.room)))
	)
		return { hits: [] };
	const matcher = new Matcher(terms);
	const plan: SearchPlan = {
		long: terms.filter((t) => !isShort(t)),
		short: terms.filter(isShort),
		room: query.room,
		senderKey: query.from?.toLowerCase(),
		before: query.before ?? Number.MAX_SAFE_INTEGER,
		after: query.after ?? 0,
		rooms: readable === undefined ? undefined : query.room !== undefined ? [query.room] : [...readable],
	};
	const limit = Math.max(1, Math.min(query.limit, LIMITS.searchMax));
	const hits: SearchHit[] = [];
	let cursor = query.cursor;
	let scanned = 0;
	let n = limit;
	for (;;) {
		const batch = await fetch(plan, cursor, n);
		for (const c of batch) {
			cursor = c.pos;
			scanned++;
			const { row } = c;
			// The store filtered by room already; checked again so a store's mistake cannot show a row.
			if (readable !== undefined && !readable.has(row.room)) continue;
			if (!passes(plan, row) || !matcher.matches(row.text)) continue;
			hits.push({
				room: row.room,
				seq: Number(row.seq),
				from: row.sender,
				ts: Number(row.ts),
				...matcher.snippet(row.text),
			});
			if (hits.length === limit) return { hits, cursor };
		}
		if (batch.length < n) return { hits };
		if (scanned >= SCAN_ROWS) return { hits, cursor };
		n = Math.min(500, n * 2);
	}
}
