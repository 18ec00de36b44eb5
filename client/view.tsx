// The page's DOM, drawn by Preact from the Chat model at most once per frame; the person's actions go back to the model.
import { createRef, render } from "preact";
import { ROOM_PATTERN } from "../protocol.ts";
import { AccountMenu } from "./account-menu.tsx";
import type { Change, Chat, RoomView } from "./chat.ts";
import { Composer, type Suggestion } from "./composer.tsx";
import { announcement, charCount, colourOf, initials, MAX_TEXT } from "./format.ts";
import { Handlers, withActions } from "./message-actions.tsx";
import { countText, sidebarGroups } from "./rooms-list.tsx";
import { roomLabel } from "./rooms-model.ts";
import { RoomsUi } from "./rooms-ui.tsx";
import { SearchUi } from "./search.tsx";
import { RowView, rows } from "./timeline.tsx";
import { type Request, Uploads } from "./uploads.ts";

/** Rows of messages drawn at most; older ones are dropped from the DOM and drawn again on scroll. */
export const WINDOW_MAX = 300;
const WINDOW_KEEP = 200;
const WINDOW_STEP = 100;
const UNDO_LEAVE_MS = 10_000;
const PRESENCE_DRAW_MS = 250;
const ROOM_RULE = "Room names are 1–32 of a–z, 0–9, - and _, starting with a letter or digit.";

type Storage = Pick<globalThis.Storage, "getItem" | "setItem">;

export interface ViewOptions {
	/** Runs a draw later; the page uses requestAnimationFrame so a flood of frames draws once per frame. Tests draw at once. */
	schedule?: (draw: () => void) => void;
	storage?: Storage;
	/** Suggestions for ":word" (emoji shortcodes), when loaded. */
	shortcodes?: (word: string) => Suggestion[];
	/** Opens the emoji picker; it calls `pick` with the chosen emoji. */
	emojiPicker?: (pick: (emoji: string) => void) => void;
	notifications?: Notifications;
	/** Makes the request an upload goes in (XMLHttpRequest; a stand-in in tests). */
	uploadRequest?: () => Request;
}

/** The browser's Notification API, or a stand-in. */
export interface Notifications {
	permission(): "default" | "granted" | "denied" | "unsupported";
	request(): Promise<unknown>;
	show(title: string, body: string, tag: string): void;
}

interface Scroll {
	top: number;
	bottom: boolean;
}

function load<T>(storage: Storage | undefined, key: string, fallback: T): T {
	try {
		const raw = storage?.getItem(key);
		return raw ? (JSON.parse(raw) as T) : fallback;
	} catch {
		return fallback;
	}
}

export class View {
	private readonly root: HTMLElement;
	private readonly schedule: (draw: () => void) => void;
	private scheduled = false;
	private soonTimer?: ReturnType<typeof setTimeout>;
	private drawing = false;
	private readonly switcherInput = createRef<HTMLInputElement>();
	private readonly helloInput = createRef<HTMLInputElement>();
	private countdown?: ReturnType<typeof setInterval>;
	private typingTimer?: ReturnType<typeof setTimeout>;
	private undoTimer?: ReturnType<typeof setTimeout>;

	// What the page shows that is not the chat's own state.
	private helloError = "";
	private helloWaiting = false;
	private composeError = "";
	/** The person asked for notifications and the browser said no: the button is gone, so say why. */
	private notifyAsked = false;
	private joinError = "";
	private drafts: Record<string, string>;
	private muted: string[];
	private drawer = false;
	private switcher = false;
	private switcherQuery = "";
	private undo?: string;
	private undoLabel = "";
	private announced = "";
	private statusWas = "";
	/** Per room: the index of the first message drawn, and where the reader was. */
	private readonly from = new Map<string, number>();
	private readonly scroll = new Map<string, Scroll>();
	private shownRoom?: string;
	private focusComposer = false;
	private readonly resized?: ResizeObserver;
	private observed?: HTMLElement;
	private readonly searchUi: SearchUi;
	/** Files on their way, per room (--auth accounts). */
	private readonly uploads: Uploads;
	/** Files are being dragged over the room. */
	private dropping = false;
	/** The search result last scrolled to ("room:seq"), so it is scrolled to once. */
	private shownFocus?: string;
	private readonly roomsUi: RoomsUi;
	/** An element to focus after the next draw (a dialog's first field). */
	private focusId?: string;

	constructor(
		private readonly chat: Chat,
		private readonly doc: Document,
		private readonly options: ViewOptions = {},
	) {
		const root = doc.getElementById("app");
		if (!root) throw new Error("the page has no #app");
		this.root = root;
		this.schedule =
			options.schedule ?? ((draw) => (doc.defaultView ?? window).requestAnimationFrame(() => draw()));
		this.drafts = load(options.storage, "hubbub.drafts", {});
		this.muted = load(options.storage, "hubbub.muted", []);
		this.uploads = new Uploads(() => this.later(), options.uploadRequest);
		this.searchUi = new SearchUi(chat, {
			redraw: () => this.later(),
			openHit: (hit) => {
				this.searchUi.shown = false;
				this.rememberScroll();
				this.drawer = false;
				this.composeError = "";
				this.shownFocus = undefined;
				chat.openAt(hit.room, hit.seq);
				this.later();
			},
			closed: () => {
				this.focusComposer = true;
			},
		});
		this.roomsUi = new RoomsUi(chat, {
			redraw: () => this.later(),
			openRoom: (room) => this.openRoom(room),
			leaveNow: (room) => this.leaveRoom(room),
			say: (text) => {
				this.composeError = text;
				this.later();
			},
			focus: (id) => {
				if (id === "") this.focusComposer = true;
				else this.focusId = id;
			},
			pickEmoji: options.emojiPicker,
			showMembers: () => {
				this.drawer = true;
				this.focusId = "members-panel";
				this.later();
			},
		});
		chat.on((c) => this.changed(c));
		doc.addEventListener("keydown", (e) => this.shortcut(e));
		// A smaller list (a phone's keyboard opening, a narrower window) keeps a reader who was at the bottom there.
		const Observer = doc.defaultView?.ResizeObserver;
		this.resized = Observer
			? new Observer(() => {
					const list = this.list();
					if (list && this.scroll.get(this.chat.current)?.bottom !== false)
						list.scrollTop = list.scrollHeight;
				})
			: undefined;
		this.draw();
	}

	/** Draws on the next frame (or at once, in tests); several changes make one draw. */
	private later(): void {
		if (this.scheduled) return;
		this.scheduled = true;
		this.schedule(() => {
			this.scheduled = false;
			this.draw();
		});
	}

	/**
	 * Draws within PRESENCE_DRAW_MS: for who is here and who is typing, which
	 * can change thousands of times a second in a flood and need not be drawn
	 * at once. Anything else that changes meanwhile draws it too.
	 */
	private soon(): void {
		if (this.scheduled || this.soonTimer !== undefined) return;
		if (!this.options.schedule) {
			this.soonTimer = setTimeout(() => {
				this.soonTimer = undefined;
				this.later();
			}, PRESENCE_DRAW_MS);
		} else this.later();
	}

	private changed(c: Change): void {
		if (c.kind === "members" || c.kind === "typing") return this.soon();
		this.roomsUi.changed(c);
		switch (c.kind) {
			case "identity":
				this.helloWaiting = false;
				if (c.error) {
					this.helloError =
						c.code === "name_taken"
							? "Someone is using that name right now. Pick another one."
							: `That name cannot be used: ${c.error}.`;
				} else if (this.chat.name && this.chat.status.kind === "connected") {
					this.helloError = "";
					this.focusComposer = true;
				}
				break;
			case "error":
				if (c.restore !== undefined && this.draft() === "") this.setDraft(this.chat.current, c.restore);
				this.composeError = c.text;
				break;
			case "message":
				if (c.room === this.chat.current && c.message.from !== this.chat.name)
					this.announce(announcement(c.message.from, c.message.text));
				break;
			case "unseen":
				// Direct messages notify like mentions: they are written to this person.
				this.notify(
					c.room,
					c.message.from,
					c.message.text,
					c.mention || this.chat.rooms.get(c.room)?.info?.kind === "direct",
				);
				break;
			case "status":
				this.announceStatus();
				break;
			case "system":
				this.announce(c.text);
				break;
		}
		this.later();
	}

	// ---- what a screen reader hears: each change once

	private announce(text: string): void {
		this.announced = text;
	}

	private announceStatus(): void {
		const s = this.chat.status;
		const said =
			s.kind === "connected"
				? "Connected."
				: s.kind === "offline"
					? "Offline."
					: s.kind === "reconnecting"
						? "Connection lost. Reconnecting."
						: s.kind === "refused"
							? s.message
							: s.kind === "reclaiming"
								? `Waiting for your name ${s.name} to be free.`
								: s.kind === "ended"
									? s.deactivated
										? "Your account was deactivated by an admin."
										: "Signed out."
									: "";
		// A countdown or a retry of the same state is not news.
		if (said && said !== this.statusWas) this.announce(said);
		this.statusWas = said;
	}

	// ---- notifications

	private notify(room: string, from: string, text: string, mention: boolean): void {
		const n = this.options.notifications;
		if (!n || !mention || this.muted.includes(room) || !this.doc.hidden) return;
		const where = roomLabel(room, this.chat.rooms.get(room)?.info);
		if (n.permission() === "granted") n.show(`${from} in ${where}`, announcement(from, text), room);
	}

	private toggleMute(room: string): void {
		this.muted = this.muted.includes(room) ? this.muted.filter((r) => r !== room) : [...this.muted, room];
		this.options.storage?.setItem("hubbub.muted", JSON.stringify(this.muted));
		this.later();
	}

	// ---- drafts

	private draft(room = this.chat.current): string {
		return this.drafts[room] ?? "";
	}

	private setDraft(room: string, text: string): void {
		if (text === "") delete this.drafts[room];
		else this.drafts[room] = text;
		this.options.storage?.setItem("hubbub.drafts", JSON.stringify(this.drafts));
		this.later();
	}

	// ---- actions

	/** Puts text at the composer's caret, as if typed. */
	private insert(text: string): void {
		const box = this.doc.getElementById("text") as HTMLTextAreaElement | null;
		if (!box) return;
		const start = box.selectionStart ?? box.value.length;
		box.setRangeText(text, start, box.selectionEnd ?? start, "end");
		box.dispatchEvent(new Event("input", { bubbles: true }));
		box.focus();
	}

	private openRoom(room: string): void {
		this.rememberScroll();
		if (this.chat.open(room)) {
			this.drawer = false;
			this.switcher = false;
			this.composeError = "";
			this.focusComposer = true;
		}
		this.later();
	}

	private leaveRoom(room: string): void {
		// Named as the list named it, before the room (and its title) is gone.
		this.undoLabel = roomLabel(room, this.chat.rooms.get(room)?.info);
		this.chat.leave(room);
		this.undo = room;
		clearTimeout(this.undoTimer);
		this.undoTimer = setTimeout(() => {
			this.undo = undefined;
			this.later();
		}, UNDO_LEAVE_MS);
		this.focusComposer = true;
		this.later();
	}

	/** Scrolls to the newest message; being there marks the room read. */
	private jumpToNewest(): void {
		const list = this.list();
		// Below a search result, the newest are held apart until the pages reach them: go to them.
		this.chat.goLive();
		const r = this.chat.peek(this.chat.current);
		this.from.set(r.name, Math.max(0, r.messages.length - WINDOW_KEEP));
		this.scroll.set(r.name, { top: 0, bottom: true });
		this.chat.setAtNewest(true);
		this.draw();
		if (list) list.scrollTop = list.scrollHeight;
		this.focusComposer = true;
		this.later();
	}

	private send(text: string): boolean {
		const chat = this.chat;
		const n = charCount(text);
		if (!chat.name) {
			this.composeError = "Pick a name first.";
		} else if (n > MAX_TEXT) {
			this.composeError = `This message is too long: ${n.toLocaleString()} characters, ${MAX_TEXT.toLocaleString()} at most.`;
		} else if (this.uploads.busy(chat.current)) {
			this.composeError = "Wait for the files to finish uploading (or remove them), then send.";
		} else if (chat.send(text, this.uploads.ready(chat.current))) {
			this.composeError = "";
			this.setDraft(chat.current, "");
			this.uploads.clear(chat.current);
			this.later();
			return true;
		}
		this.later();
		return false;
	}

	private addFiles(room: string, files: File[]): void {
		this.composeError = this.uploads.add(room, files) ?? "";
		this.focusComposer = true;
		this.later();
	}

	/** Files dragged over the room may be dropped there (text and links are left to the browser). */
	private onDragOver = (e: DragEvent): void => {
		if (!e.dataTransfer?.types.includes("Files")) return;
		e.preventDefault();
		e.dataTransfer.dropEffect = "copy";
		if (!this.dropping) {
			this.dropping = true;
			this.later();
		}
	};

	private onDragLeave = (e: DragEvent): void => {
		const into = e.relatedTarget as Node | null;
		if (!this.dropping || (into && (e.currentTarget as HTMLElement).contains(into))) return;
		this.dropping = false;
		this.later();
	};

	private onDrop = (e: DragEvent): void => {
		this.dropping = false;
		this.later();
		const files = [...(e.dataTransfer?.files ?? [])];
		if (files.length === 0 || !this.chat.current) return;
		e.preventDefault();
		this.addFiles(this.chat.current, files);
	};

	private suggest(word: string): Suggestion[] {
		if (word.startsWith("@")) {
			const prefix = word.slice(1).toLowerCase();
			return this.chat
				.peek(this.chat.current)
				.members.filter((m) => m !== this.chat.name && m.toLowerCase().startsWith(prefix))
				.map((m) => ({ insert: `@${m}`, label: `@${m}` }));
		}
		return this.options.shortcodes?.(word) ?? [];
	}

	private moveRoom(step: number): void {
		const { rooms, directs } = sidebarGroups(this.chat);
		const names = [...rooms, ...directs].map((r) => r.name);
		if (names.length === 0) return;
		const at = names.indexOf(this.chat.current);
		this.openRoom(names[(at + step + names.length) % names.length] as string);
	}

	private shortcut(e: KeyboardEvent): void {
		if (this.searchUi.key(e)) return;
		if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
			e.preventDefault();
			this.switcher = true;
			this.switcherQuery = "";
			this.draw();
			this.switcherInput.current?.focus();
		} else if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
			e.preventDefault();
			this.moveRoom(e.key === "ArrowUp" ? -1 : 1);
		} else if (e.key === "Escape" && this.roomsUi.escape()) {
			e.preventDefault();
		} else if (e.key === "Escape") {
			const closing = this.switcher || this.drawer;
			this.switcher = false;
			this.drawer = false;
			this.chat.markRead();
			if (closing) this.focusComposer = true;
			this.later();
		}
	}

	// ---- scrolling

	private list(): HTMLElement | null {
		return this.doc.getElementById("messages");
	}

	private rememberScroll(): void {
		const list = this.list();
		if (!list || this.shownRoom === undefined) return;
		this.scroll.set(this.shownRoom, {
			top: list.scrollTop,
			bottom: list.scrollHeight - list.scrollTop - list.clientHeight < 40,
		});
	}

	private onScroll = (): void => {
		const list = this.list();
		if (!list) return;
		const room = this.chat.current;
		const r = this.chat.peek(room);
		const from = this.windowStart(r);
		const bottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
		this.scroll.set(room, { top: list.scrollTop, bottom });
		this.chat.setAtNewest(bottom);
		if (list.scrollTop < 80) {
			// Near the top: draw older messages already here, or ask the server for more.
			if (from > 0) {
				this.from.set(room, Math.max(0, from - WINDOW_STEP));
				this.draw();
			} else this.chat.loadOlder();
		} else if (bottom && r.messages.length - from > WINDOW_MAX) {
			this.later();
		}
		if (bottom && r.newer) this.chat.loadNewer(room);
	};

	private windowStart(r: RoomView): number {
		const from = Math.min(this.from.get(r.name) ?? 0, r.messages.length);
		return from;
	}

	// ---- drawing

	private draw(): void {
		if (this.drawing) return;
		this.drawing = true;
		try {
			this.drawNow();
		} finally {
			this.drawing = false;
		}
	}

	private drawNow(): void {
		const chat = this.chat;
		const room = chat.current;
		const r = chat.peek(room);
		const list = this.list();
		const sameRoom = this.shownRoom === room;
		const atBottom = !list || !sameRoom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
		// The first message the reader can see, and where: rows added above must not move it.
		const anchor = list && sameRoom && !atBottom ? firstVisible(list) : undefined;
		if (!sameRoom) this.rememberScroll();

		// Keep the drawn window bounded: a reader at the bottom only needs the newest rows.
		let from = this.windowStart(r);
		if (atBottom && r.messages.length - from > WINDOW_MAX) from = r.messages.length - WINDOW_KEEP;
		const focusKey = r.focus === undefined ? undefined : `${room}:${r.focus}`;
		const focusAt = focusKey !== this.shownFocus ? r.messages.findIndex((m) => m.seq === r.focus) : -1;
		// A search result just opened is drawn, with some of what came before it.
		if (focusAt >= 0 && (focusAt < from || focusAt - from > WINDOW_MAX)) from = Math.max(0, focusAt - 50);
		this.from.set(room, from);

		render(this.app(r, from), this.root);

		const after = this.list();
		if (after && after !== this.observed) {
			this.resized?.disconnect();
			this.resized?.observe(after);
			this.observed = after;
		}
		if (after) {
			const saved = this.scroll.get(room);
			if (!sameRoom) {
				after.scrollTop = saved && !saved.bottom ? saved.top : after.scrollHeight;
			} else if (atBottom && !r.newer) {
				after.scrollTop = after.scrollHeight;
			} else if (anchor) {
				const row = after.querySelector<HTMLElement>(`li[data-seq="${anchor.seq}"]`);
				if (row) after.scrollTop = row.offsetTop - anchor.offset;
			}
			const found = focusAt >= 0 ? after.querySelector<HTMLElement>(`li[data-seq="${r.focus}"]`) : null;
			if (found) {
				this.shownFocus = focusKey;
				found.scrollIntoView?.({ block: "center" });
				found.focus({ preventScroll: true });
			}
			// Below a search result, the next page comes once the reader is at the end of what is here.
			if (r.newer && after.scrollHeight - after.scrollTop - after.clientHeight < 40) chat.loadNewer(room);
		}
		this.shownRoom = room;
		this.drawTitle();
		this.tick();
		if (this.focusId !== undefined) {
			this.doc.getElementById(this.focusId)?.focus();
			this.focusId = undefined;
			this.focusComposer = false;
		}
		if (this.focusComposer) {
			this.focusComposer = false;
			this.doc.getElementById("text")?.focus();
		}
		this.searchUi.drawn();
	}

	/** Timers for what changes with time alone: a countdown, typing that expires. */
	private tick(): void {
		clearInterval(this.countdown);
		clearTimeout(this.typingTimer);
		const s = this.chat.status;
		if (s.kind === "reconnecting" || s.kind === "refused" || s.kind === "reclaiming") {
			this.countdown = setInterval(() => this.later(), 1000);
		}
		const r = this.chat.rooms.get(this.chat.current);
		if (r && r.typing.size > 0) {
			const next = Math.min(...r.typing.values());
			this.typingTimer = setTimeout(() => this.later(), Math.max(50, next - Date.now()));
		}
	}

	private drawTitle(): void {
		const total = this.chat.unreadTotal;
		const current = this.chat.current;
		const room = current ? `${roomLabel(current, this.chat.rooms.get(current)?.info)} · hubbub` : "hubbub";
		this.doc.title = total > 0 ? `(${total}) ${room}` : room;
		const icon = this.doc.querySelector<HTMLLinkElement>("link[rel=icon]");
		const href = favicon(total);
		if (icon && icon.getAttribute("href") !== href) icon.setAttribute("href", href);
	}

	private statusText(): { text: string; countdown: string; state: string } {
		const s = this.chat.status;
		const seconds = (at: number) => `${Math.max(1, Math.ceil((at - Date.now()) / 1000))} s`;
		switch (s.kind) {
			case "connecting":
				return { text: "Connecting…", countdown: "", state: "connecting" };
			case "connected":
				return {
					text: this.chat.name ? `Connected as ${this.chat.name}` : "Connected",
					countdown: "",
					state: "connected",
				};
			case "offline":
				return { text: "Offline: will reconnect when the network is back", countdown: "", state: "offline" };
			case "reconnecting":
				return { text: "Reconnecting", countdown: ` in ${seconds(s.at)}…`, state: "reconnecting" };
			case "refused":
				return { text: s.message, countdown: ` Trying again in ${seconds(s.at)}.`, state: "refused" };
			case "ended":
				return { text: "Signed out: sign in again at /account", countdown: "", state: "refused" };
			case "reclaiming":
				return {
					text: `Waiting for the server to let go of the name ${s.name} from your previous connection`,
					countdown: ` (up to ${seconds(s.until)})…`,
					state: "reclaiming",
				};
		}
	}

	private app(r: RoomView, from: number) {
		const chat = this.chat;
		const status = this.statusText();
		const named = chat.name !== undefined && !this.helloWaiting;
		const header = (
			<header class="top">
				{named && (
					<button
						type="button"
						class="icon drawer-toggle"
						aria-label="Rooms and members"
						aria-expanded={this.drawer}
						aria-controls="drawer"
						onClick={() => {
							this.drawer = !this.drawer;
							this.later();
						}}
					>
						☰
					</button>
				)}
				<h1>hubbub</h1>
				{named && this.searchUi.field()}
				<p id="status" data-state={status.state}>
					{this.chat.status.kind === "ended" && this.chat.status.deactivated ? (
						"Your account was deactivated by an admin."
					) : this.chat.status.kind === "ended" ? (
						<>
							Signed out. <a href="/account">Sign in again</a>
						</>
					) : (
						status.text
					)}
					{status.countdown && <span aria-hidden="true">{status.countdown}</span>}
				</p>
				{chat.accounts && this.chat.status.kind !== "ended" && <AccountMenu />}
			</header>
		);
		const announcer = (
			<div id="announcer" class="visually-hidden" aria-live="polite">
				{this.announced}
			</div>
		);
		if (!named) {
			// The name form once the server is there to answer it (a signed-in page is welcomed without one).
			const asking = this.helloWaiting || this.helloError !== "" || chat.status.kind === "connected";
			const waiting = (
				<main class="hello-screen">
					<p class="hint">Connecting to the server…</p>
				</main>
			);
			return [header, asking ? this.hello() : waiting, announcer];
		}
		return [
			header,
			// Next to the field in the tab order; drawn over the room.
			this.searchUi.panel(),
			this.layout(r, from),
			this.switcher ? this.roomSwitcher() : null,
			this.roomsUi.dialog(),
			announcer,
		];
	}

	private hello() {
		return (
			<main class="hello-screen">
				<form
					id="hello"
					class="hello"
					aria-labelledby="hello-title"
					onSubmit={(e) => {
						e.preventDefault();
						const name = this.helloInput.current?.value.trim() ?? "";
						if (name === "") return;
						this.helloError = "";
						this.helloWaiting = true;
						this.chat.identify(name);
						this.later();
					}}
				>
					<h2 id="hello-title">Welcome to hubbub</h2>
					<p class="hint">Pick a name to show beside your messages.</p>
					<label for="hello-name">Your name</label>
					<div class="row">
						<input
							id="hello-name"
							ref={this.helloInput}
							name="name"
							autocomplete="nickname"
							maxlength={32}
							required
							// The form is the whole screen: typing a name is the only thing to do.
							autofocus
						/>
						<button type="submit" disabled={this.helloWaiting}>
							{this.helloWaiting ? "Checking…" : "Start chatting"}
						</button>
					</div>
					<p id="hello-error" class="error reserved" role="alert">
						{this.helloError}
					</p>
				</form>
			</main>
		);
	}

	private layout(r: RoomView, from: number) {
		const chat = this.chat;
		const room = chat.current;
		const muted = this.muted.includes(room);
		const typing = room ? chat.typingNow(room) : [];
		const perm = this.options.notifications?.permission() ?? "unsupported";
		return (
			<div class="layout">
				<div id="drawer" class="drawer" data-open={this.drawer}>
					<nav class="rooms-panel" aria-label="Rooms">
						{this.roomsUi.list()}
						{this.undo && (
							<p class="undo">
								Left <bdi>{this.undoLabel}</bdi>.{" "}
								<button
									type="button"
									class="link"
									onClick={() => {
										const back = this.undo as string;
										this.undo = undefined;
										if (!this.roomsUi.comeBack(back)) this.openRoom(back);
									}}
								>
									Undo
								</button>
							</p>
						)}
						{!chat.accounts && (
							<form
								id="join-form"
								class="join"
								onSubmit={(e) => {
									e.preventDefault();
									const input = (e.currentTarget as HTMLFormElement).elements.namedItem(
										"room",
									) as HTMLInputElement;
									const name = input.value.trim().toLowerCase().replace(/^#/, "");
									if (ROOM_PATTERN.test(name)) {
										input.value = "";
										this.joinError = "";
										this.openRoom(name);
									} else {
										this.joinError = ROOM_RULE;
										this.later();
									}
								}}
							>
								<label for="join-room">Join a room</label>
								<div class="row">
									<input
										id="join-room"
										name="room"
										placeholder="room-name"
										autocomplete="off"
										maxlength={33}
									/>
									<button type="submit">Join</button>
								</div>
								<p id="join-error" class="error" role="alert">
									{this.joinError}
								</p>
							</form>
						)}
						<p class="hint">Ctrl+K: switch rooms · Alt+↑/↓: next room</p>
					</nav>
					<aside id="members-panel" class="members-panel" aria-label="Members" tabIndex={-1}>
						{r.info ? (
							this.roomsUi.members(r)
						) : (
							<>
								<h2>
									Members <span id="member-count">{r.members.length}</span>
								</h2>
								<ul id="members">
									{r.members.map((name) => (
										<li key={name}>
											<span
												class={`avatar small c${colourOf(name)}`}
												data-initials={initials(name)}
												aria-hidden="true"
											/>
											<bdi>{name === chat.name ? `${name} (you)` : name}</bdi>
										</li>
									))}
								</ul>
							</>
						)}
					</aside>
				</div>
				<main
					class="chat"
					onDragOver={chat.accounts ? this.onDragOver : undefined}
					onDragLeave={chat.accounts ? this.onDragLeave : undefined}
					onDrop={chat.accounts ? this.onDrop : undefined}
					data-drop={this.dropping ? "files" : undefined}
				>
					{room === "" ? (
						<div class="empty">
							<h2 id="room-title">No rooms</h2>
							<p>You have left every room. Join one on the left, or press Ctrl+K.</p>
						</div>
					) : (
						<>
							<div class="room-header">
								{r.info ? (
									this.roomsUi.header(r)
								) : (
									<>
										<h2 id="room-title">#{room}</h2>
										<span class="members-count">
											{r.members.length === 1 ? "1 person here" : `${r.members.length} people here`}
										</span>
									</>
								)}
								{perm === "default" && (
									<button
										type="button"
										class="secondary"
										onClick={() => {
											this.notifyAsked = true;
											this.options.notifications?.request().then(
												() => this.later(),
												() => this.later(),
											);
										}}
									>
										Turn on notifications
									</button>
								)}
								{perm === "denied" && this.notifyAsked && (
									<span class="hint" role="status">
										Notifications are blocked in this browser's settings
									</span>
								)}
								{perm === "granted" && (
									<button
										type="button"
										class="secondary"
										aria-pressed={muted}
										onClick={() => this.toggleMute(room)}
									>
										{muted ? "Muted" : "Mute"}
									</button>
								)}
							</div>
							<Handlers.Provider value={this.roomsUi.handlers}>
								<ol
									id="messages"
									aria-label={`Messages in ${roomLabel(room, r.info)}`}
									// biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable list must take focus so keyboard users can scroll it
									tabIndex={0}
									onScroll={this.onScroll}
									onKeyDown={r.info ? moveBetweenMessages : undefined}
								>
									{withActions(
										rows(r, from, chat.name),
										r,
										chat.name,
										chat.role,
										this.roomsUi.editingSeq(),
									).map((row) => (
										<RowView key={row.key} row={row} />
									))}
								</ol>
							</Handlers.Provider>
							{/* Always there and of no height, so the button showing never moves the list. */}
							<div class="jump-anchor">
								{(!chat.atNewest || r.newer) && (
									<button type="button" class="jump" onClick={() => this.jumpToNewest()}>
										{r.unread > 0 ? `Jump to newest (${countText(r.unread)} new)` : "Jump to newest"}
									</button>
								)}
							</div>
							<p id="typing" class="typing">
								{typing.length === 0
									? ""
									: typing.length === 1
										? `${typing[0]} is typing…`
										: typing.length === 2
											? `${typing[0]} and ${typing[1]} are typing…`
											: `${typing.length} people are typing…`}
							</p>
							<Composer
								room={room}
								label={roomLabel(room, r.info)}
								draft={this.draft(room)}
								error={this.composeError}
								disabled={r.info?.archived !== undefined}
								onDraft={(text) => this.setDraft(room, text)}
								onSend={(text) => this.send(text)}
								onTyping={() => chat.typing()}
								suggest={(word) => this.suggest(word)}
								onEmojiButton={() => this.options.emojiPicker?.((emoji) => this.insert(emoji))}
								onEditLast={() => this.roomsUi.editLast()}
								{...(chat.accounts
									? {
											uploads: this.uploads.of(room),
											onFiles: (files: File[]) => this.addFiles(room, files),
											onCancelUpload: (key: string) => this.uploads.cancel(room, key),
										}
									: {})}
							/>
							{r.info?.archived !== undefined && (
								<p class="hint archived-note">This room is archived: it can be read, not written in.</p>
							)}
						</>
					)}
				</main>
			</div>
		);
	}

	private roomSwitcher() {
		const query = this.switcherQuery.trim().toLowerCase().replace(/^#/, "");
		const matches = [...this.chat.rooms.keys()].filter(
			(n) => n.includes(query) || roomLabel(n, this.chat.rooms.get(n)?.info).toLowerCase().includes(query),
		);
		const create = query !== "" && ROOM_PATTERN.test(query) && !this.chat.rooms.has(query);
		const close = () => {
			this.switcher = false;
			this.focusComposer = true;
			this.later();
		};
		return (
			// biome-ignore lint/a11y/noStaticElementInteractions: a click beside the dialog closes it; Escape does the same from the keyboard
			// biome-ignore lint/a11y/useKeyWithClickEvents: Escape (handled for the whole page) is the keyboard's way to close
			<div class="overlay" onClick={(e) => e.target === e.currentTarget && close()}>
				<div class="switcher" role="dialog" aria-modal="true" aria-label="Switch room">
					<form
						onSubmit={(e) => {
							e.preventDefault();
							const target = matches[0] ?? (create ? query : undefined);
							if (target) this.openRoom(target);
						}}
					>
						<label for="switcher-input">Go to room</label>
						<input
							id="switcher-input"
							ref={this.switcherInput}
							autocomplete="off"
							value={this.switcherQuery}
							onInput={(e) => {
								this.switcherQuery = (e.currentTarget as HTMLInputElement).value;
								this.draw();
							}}
						/>
					</form>
					<ul class="switcher-list">
						{matches.map((n) => (
							<li key={n}>
								<button type="button" class="room" onClick={() => this.openRoom(n)}>
									{roomLabel(n, this.chat.rooms.get(n)?.info)}
								</button>
							</li>
						))}
						{create && (
							<li>
								<button type="button" class="room" onClick={() => this.openRoom(query)}>
									Join #{query}
								</button>
							</li>
						)}
					</ul>
				</div>
			</div>
		);
	}
}

/** Up and down arrows in the message list move between messages, so a message's actions are a Tab away. */
function moveBetweenMessages(e: KeyboardEvent): void {
	if (e.key !== "ArrowUp" && e.key !== "ArrowDown") return;
	const list = e.currentTarget as HTMLElement;
	const rows = [...list.querySelectorAll<HTMLElement>("li.message[data-seq]")];
	if (rows.length === 0 || (e.target as HTMLElement).closest("textarea")) return;
	const at = rows.findIndex((row) => row.contains(e.target as Node));
	const next = at < 0 ? (e.key === "ArrowUp" ? rows.length - 1 : 0) : at + (e.key === "ArrowUp" ? -1 : 1);
	const row = rows[Math.max(0, Math.min(rows.length - 1, next))];
	e.preventDefault();
	row?.focus();
	row?.scrollIntoView({ block: "nearest" });
}

/** The first message row at least partly in view, and its distance from the list's top edge. */
function firstVisible(list: HTMLElement): { seq: string; offset: number } | undefined {
	for (const row of list.querySelectorAll<HTMLElement>("li.message[data-seq]")) {
		if (row.offsetTop + row.offsetHeight > list.scrollTop) {
			return { seq: row.dataset.seq as string, offset: row.offsetTop - list.scrollTop };
		}
	}
	return undefined;
}

/** A favicon with the unread count on it (a plain dot at 0). */
export function favicon(unread: number): string {
	const label = unread > 99 ? "99+" : String(unread);
	const badge =
		unread > 0
			? `<circle cx="22" cy="10" r="10" fill="#d92d20"/><text x="22" y="14.5" font-size="${label.length > 1 ? 10 : 13}" font-family="sans-serif" font-weight="bold" fill="#fff" text-anchor="middle">${label}</text>`
			: "";
	const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="2" y="6" width="24" height="20" rx="6" fill="#2456c7"/>${badge}</svg>`;
	return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}
