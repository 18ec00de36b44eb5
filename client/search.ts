// Searching the rooms' history (docs/PROTOCOL.md "Search"): the filters, the answers page by page, and what went wrong; no DOM.
import type { SearchHit } from "../protocol.ts";
import type { Change, Chat } from "./chat.ts";

export type Hit = import("zod").infer<typeof SearchHit>;

export interface SearchFilters {
	query: string;
	/** A room's name, or "" for every room the person may read. */
	room: string;
	/** An author's name, or "". */
	from: string;
	/** Dates as a date input gives them (YYYY-MM-DD, the person's own time zone), or "". */
	since: string;
	until: string;
}

export type SearchStatus =
	| { kind: "idle" }
	| { kind: "searching" }
	| { kind: "done" }
	| { kind: "error"; text: string; retry: boolean };

export const EMPTY_FILTERS: SearchFilters = { query: "", room: "", from: "", since: "", until: "" };

/** Hits per answer. */
const PAGE = 20;

/** A local date (YYYY-MM-DD) as ms since the epoch at its midnight, `days` later; undefined if not a date. */
export function dayStart(date: string, days = 0): number | undefined {
	const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
	if (!m) return undefined;
	const t = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + days).getTime();
	return Number.isFinite(t) ? t : undefined;
}

/**
 * The snippet cut into plain-text pieces, `mark` where a highlight range
 * falls. Ranges from the server are clamped, sorted and stripped of overlaps:
 * a bad range never throws or repeats text.
 */
export function pieces(snippet: string, highlights: readonly (readonly [number, number])[]) {
	const out: { text: string; mark: boolean }[] = [];
	const ranges = [...highlights]
		.map(([a, b]) => [Math.max(0, Math.min(a, snippet.length)), Math.max(0, Math.min(b, snippet.length))])
		.filter(([a, b]) => (a as number) < (b as number))
		.sort((x, y) => (x[0] as number) - (y[0] as number));
	let at = 0;
	for (const [a, b] of ranges as [number, number][]) {
		const start = Math.max(a, at);
		if (start >= b) continue;
		if (start > at) out.push({ text: snippet.slice(at, start), mark: false });
		out.push({ text: snippet.slice(start, b), mark: true });
		at = b;
	}
	if (at < snippet.length) out.push({ text: snippet.slice(at), mark: false });
	return out;
}

/** One search at a time: a new one forgets the answers still out for the old one. */
export class Search {
	filters: SearchFilters = { ...EMPTY_FILTERS };
	hits: Hit[] = [];
	cursor?: string;
	/** The first page said the newest messages were still being indexed (they may be missing). */
	behind = false;
	status: SearchStatus = { kind: "idle" };
	private ref?: string;
	private count = 0;

	constructor(
		private readonly chat: Chat,
		private readonly changed: () => void,
	) {
		chat.on((c) => this.heard(c));
	}

	/** Starts a search with these filters; false (and an error to show) when it cannot be sent. */
	run(filters: SearchFilters): boolean {
		this.filters = { ...filters, query: filters.query.trim(), from: filters.from.trim() };
		this.hits = [];
		this.cursor = undefined;
		this.behind = false;
		if (this.filters.query === "") {
			this.ref = undefined;
			this.status = { kind: "idle" };
			this.changed();
			return false;
		}
		return this.send();
	}

	/** The next page of the same search. */
	more(): boolean {
		if (!this.cursor || this.status.kind === "searching") return false;
		return this.send(this.cursor);
	}

	/** Asks the last request again (after an error). */
	retry(): boolean {
		return this.hits.length > 0 && this.cursor ? this.send(this.cursor) : this.run(this.filters);
	}

	clear(): void {
		this.ref = undefined;
		this.filters = { ...EMPTY_FILTERS };
		this.hits = [];
		this.cursor = undefined;
		this.behind = false;
		this.status = { kind: "idle" };
		this.changed();
	}

	private send(cursor?: string): boolean {
		const f = this.filters;
		const ref = `search-${++this.count}`;
		const after = dayStart(f.since);
		// "Until" a date includes that whole day.
		const before = dayStart(f.until, 1);
		const sent = this.chat.search({
			ref,
			query: f.query,
			limit: PAGE,
			...(f.room ? { room: f.room } : {}),
			...(f.from ? { from: f.from } : {}),
			...(after !== undefined ? { after } : {}),
			...(before !== undefined ? { before } : {}),
			...(cursor ? { cursor } : {}),
		});
		this.ref = sent ? ref : undefined;
		this.status = sent
			? { kind: "searching" }
			: { kind: "error", text: "Not connected: search again once the page is back online.", retry: true };
		this.changed();
		return sent;
	}

	private heard(c: Change): void {
		if (c.kind === "search" && c.frame.ref === this.ref) {
			this.ref = undefined;
			this.hits = [...this.hits, ...c.frame.hits];
			this.cursor = c.frame.cursor;
			if (c.frame.behind) this.behind = true;
			this.status = { kind: "done" };
			this.changed();
		} else if (c.kind === "search-error" && c.ref === this.ref) {
			this.ref = undefined;
			this.status =
				c.code === "rate_limited"
					? {
							kind: "error",
							text: "Too many searches at once: wait a few seconds, then try again.",
							retry: true,
						}
					: c.code === "disconnected"
						? { kind: "error", text: "The connection dropped before the answer came.", retry: true }
						: c.code === "server_error"
							? { kind: "error", text: "The server could not search just now.", retry: true }
							: { kind: "error", text: `The server refused this search: ${c.text}`, retry: false };
			this.changed();
		}
	}
}
