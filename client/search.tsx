// The search field in the header and its panel: filters, results with the matches marked (as text, never HTML), paging.
import { createRef } from "preact";
import type { Chat } from "./chat.ts";
import { clock, fullTime } from "./format.ts";
import { roomLabel } from "./rooms-model.ts";
import { EMPTY_FILTERS, type Hit, pieces, Search, type SearchFilters } from "./search.ts";

export interface SearchHooks {
	/** Draws the page again. */
	redraw(): void;
	/** Shows the result in its room (and closes the panel). */
	openHit(hit: Hit): void;
	/** The panel closed: focus goes back to where the person writes. */
	closed(): void;
}

/** Keys typed into these are text, not shortcuts. */
function typingIn(target: EventTarget | null): boolean {
	const el = target as HTMLElement | null;
	return (
		!!el &&
		(el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable)
	);
}

/** The search field, its panel and their keys. The view puts `field()` in the header and `panel()` beside the room. */
export class SearchUi {
	readonly search: Search;
	/** The panel is shown. */
	shown = false;
	private draft: SearchFilters = { ...EMPTY_FILTERS };
	/** "This room" or every room. */
	private here = false;
	private focusNext?: "input" | "results";
	private readonly input = createRef<HTMLInputElement>();
	private readonly results = createRef<HTMLOListElement>();

	constructor(
		private readonly chat: Chat,
		private readonly hooks: SearchHooks,
	) {
		this.search = new Search(chat, () => hooks.redraw());
	}

	/** Handles `/`, Ctrl/Cmd+Shift+F and Escape; true when the key was the search's. */
	key(e: KeyboardEvent): boolean {
		const find = (e.ctrlKey || e.metaKey) && e.shiftKey && e.key.toLowerCase() === "f";
		if (find || (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !typingIn(e.target))) {
			e.preventDefault();
			this.show("input");
			return true;
		}
		if (e.key === "Escape" && this.shown) {
			this.hide();
			return true;
		}
		return false;
	}

	show(focus: "input" | "results" = "input"): void {
		this.shown = true;
		this.focusNext = focus;
		// The field is always drawn: focus it now, or the keys typed before the next frame (`/three`) go to the body.
		if (focus === "input") this.input.current?.focus();
		this.hooks.redraw();
	}

	hide(): void {
		this.shown = false;
		// A show() whose draw has not happened yet must not pull focus back into the closed panel's field.
		this.focusNext = undefined;
		this.hooks.closed();
		this.hooks.redraw();
	}

	/** After a draw: puts focus where the last action said. */
	drawn(): void {
		const next = this.focusNext;
		this.focusNext = undefined;
		if (next === "input") this.input.current?.focus();
		else if (next === "results") this.results.current?.querySelector<HTMLElement>(".hit")?.focus();
	}

	/** Focus went on past the field and its panel (Tab, a click elsewhere): the panel closes, leaving focus where it went. */
	private readonly left = (e: FocusEvent) => {
		const to = e.relatedTarget as Node | null;
		const doc = (e.currentTarget as Element).ownerDocument;
		if (
			!to ||
			!this.shown ||
			doc.getElementById("search-panel")?.contains(to) ||
			this.input.current?.form?.contains(to)
		)
			return;
		this.shown = false;
		this.hooks.redraw();
	};

	private run(): void {
		const f = this.draft;
		this.search.run({ ...f, room: this.here ? this.chat.current : "" });
		this.shown = true;
	}

	field() {
		return (
			<form
				class="search-field"
				aria-label="Search messages"
				onFocusOut={this.left}
				onSubmit={(e) => {
					e.preventDefault();
					this.run();
				}}
			>
				<label for="search-input" class="visually-hidden">
					Search messages
				</label>
				<input
					id="search-input"
					ref={this.input}
					type="search"
					// The "/" key hint means nothing on a touch screen.
					placeholder={globalThis.matchMedia?.("(pointer: coarse)").matches ? "Search" : "Search  /"}
					autocomplete="off"
					maxlength={200}
					aria-controls={this.shown ? "search-panel" : undefined}
					value={this.draft.query}
					onInput={(e) => {
						this.draft.query = (e.currentTarget as HTMLInputElement).value;
					}}
					onKeyDown={(e) => {
						// Escape closes the panel (the page's handler) and keeps the words, which a search field would clear.
						if (e.key === "Escape") e.preventDefault();
						// ↓ from the field goes to the results (Tab goes through the filters first).
						if (e.key === "ArrowDown" && this.search.hits.length > 0) {
							e.preventDefault();
							const first = this.results.current?.querySelector<HTMLElement>(".hit");
							if (first) first.focus();
							else this.show("results");
						}
					}}
					onFocus={() => {
						if (!this.shown) {
							this.shown = true;
							this.hooks.redraw();
						}
					}}
				/>
			</form>
		);
	}

	panel() {
		if (!this.shown) return null;
		const s = this.search;
		const room = this.chat.current;
		const field = (key: "from" | "since" | "until") => (e: Event) => {
			this.draft[key] = (e.currentTarget as HTMLInputElement).value;
		};
		const status = s.status;
		const said =
			status.kind === "searching"
				? "Searching…"
				: status.kind === "error"
					? status.text
					: status.kind === "done"
						? s.hits.length === 0
							? s.cursor
								? "Nothing yet in the messages looked at so far."
								: `No messages match “${s.filters.query}”.`
							: `${s.hits.length}${s.cursor ? "+" : ""} ${s.hits.length === 1 ? "message" : "messages"}, newest first`
						: "Type words to find, then press Enter.";
		// The server was busy: what was sent in the last seconds may not be searchable yet.
		const lagging =
			status.kind === "done" && s.behind
				? `${said.endsWith(".") ? "" : "."} The newest messages are still being indexed and may be missing: search again in a moment.`
				: "";
		return (
			<section id="search-panel" class="search-panel" aria-label="Search" onFocusOut={this.left}>
				<div class="search-head">
					<h2>Search</h2>
					<button
						type="button"
						class="icon"
						aria-label="Close search"
						title="Close (Escape)"
						onClick={() => this.hide()}
					>
						×
					</button>
				</div>
				<form
					class="search-filters"
					onSubmit={(e) => {
						e.preventDefault();
						this.run();
					}}
				>
					<label>
						Where
						<select
							value={this.here ? "here" : "all"}
							onChange={(e) => {
								this.here = (e.currentTarget as HTMLSelectElement).value === "here";
							}}
						>
							<option value="all">All rooms</option>
							{room && (
								<option value="here">This room ({roomLabel(room, this.chat.rooms.get(room)?.info)})</option>
							)}
						</select>
					</label>
					<label>
						From
						<input
							value={this.draft.from}
							onInput={field("from")}
							placeholder="anyone"
							autocomplete="off"
							maxlength={32}
						/>
					</label>
					<label>
						On or after
						<input type="date" value={this.draft.since} onInput={field("since")} />
					</label>
					<label>
						On or before
						<input type="date" value={this.draft.until} onInput={field("until")} />
					</label>
					<button type="submit">Search</button>
				</form>
				<p
					id="search-status"
					class={status.kind === "error" ? "search-status error" : "search-status"}
					role="status"
				>
					{said}
					{lagging}
					{status.kind === "error" && status.retry && (
						<>
							{" "}
							<button type="button" class="link" onClick={() => s.retry()}>
								Try again
							</button>
						</>
					)}
				</p>
				{s.hits.length > 0 && (
					<ol
						class="search-results"
						ref={this.results}
						aria-label="Results"
						onKeyDown={(e) => {
							// ↑/↓ move between results.
							if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
							const hits = [...(this.results.current?.querySelectorAll<HTMLElement>(".hit") ?? [])];
							const at = hits.indexOf(e.target as HTMLElement);
							const next = hits[at + (e.key === "ArrowDown" ? 1 : -1)];
							if (at < 0) return;
							e.preventDefault();
							if (next) next.focus();
							else if (e.key === "ArrowUp") this.input.current?.focus();
						}}
					>
						{s.hits.map((hit) => (
							<li key={`${hit.room}:${hit.seq}`}>
								<button type="button" class="hit" onClick={() => this.hooks.openHit(hit)}>
									<span class="hit-meta">
										<span class="hit-room">
											<bdi>{roomLabel(hit.room, this.chat.rooms.get(hit.room)?.info)}</bdi>
										</span>{" "}
										· <bdi>{hit.from}</bdi> ·{" "}
										<time dateTime={new Date(hit.ts).toISOString()} title={fullTime(hit.ts)}>
											{shortDate(hit.ts)} {clock(hit.ts)}
										</time>
									</span>
									<span class="snippet" dir="auto">
										{pieces(hit.snippet, hit.highlights).map((p, i) =>
											p.mark ? <mark key={i}>{p.text}</mark> : p.text,
										)}
									</span>
								</button>
							</li>
						))}
					</ol>
				)}
				{s.cursor && status.kind !== "searching" && (
					<button type="button" class="secondary more" onClick={() => s.more()}>
						More results
					</button>
				)}
			</section>
		);
	}
}

function shortDate(ts: number): string {
	const d = new Date(ts);
	const sameYear = d.getFullYear() === new Date().getFullYear();
	return d.toLocaleDateString(
		undefined,
		sameYear ? { month: "short", day: "numeric" } : { dateStyle: "medium" },
	);
}
