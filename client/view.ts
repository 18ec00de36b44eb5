// The page's DOM: draws what the Chat model says and hands the person's actions to it. User text only ever goes through textContent.
import type { Message } from "../protocol.ts";
import type { Change, Chat, Pending } from "./chat.ts";

const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** Text with its http(s) URLs as links, built from DOM nodes (never parsed as HTML). */
export function linkify(doc: Document, text: string): DocumentFragment {
	const out = doc.createDocumentFragment();
	let at = 0;
	for (const match of text.matchAll(URL_IN_TEXT)) {
		const url = match[0];
		const index = match.index ?? 0;
		let href: string | undefined;
		try {
			const parsed = new URL(url);
			if (parsed.protocol === "http:" || parsed.protocol === "https:") href = parsed.href;
		} catch {
			href = undefined;
		}
		if (!href) continue;
		out.append(doc.createTextNode(text.slice(at, index)));
		const a = doc.createElement("a");
		a.href = href;
		a.textContent = url;
		a.rel = "noopener noreferrer";
		a.target = "_blank";
		out.append(a);
		at = index + url.length;
	}
	out.append(doc.createTextNode(text.slice(at)));
	return out;
}

function clock(ts: number): string {
	return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

interface SystemLine {
	/** Shown after the message with this seq (0: before all). */
	after: number;
	text: string;
}

export class View {
	private readonly el: {
		status: HTMLElement;
		hello: HTMLFormElement;
		helloName: HTMLInputElement;
		helloError: HTMLElement;
		rooms: HTMLUListElement;
		joinForm: HTMLFormElement;
		joinRoom: HTMLInputElement;
		joinError: HTMLElement;
		title: HTMLElement;
		messages: HTMLOListElement;
		typing: HTMLElement;
		compose: HTMLFormElement;
		composeLabel: HTMLElement;
		text: HTMLTextAreaElement;
		composeError: HTMLElement;
		members: HTMLUListElement;
		memberCount: HTMLElement;
		announcer: HTMLElement;
	};
	private readonly system = new Map<string, SystemLine[]>();
	private countdown?: ReturnType<typeof setInterval>;
	private typingTimer?: ReturnType<typeof setTimeout>;

	constructor(
		private readonly chat: Chat,
		private readonly doc: Document,
	) {
		const $ = <T extends HTMLElement>(id: string) => {
			const e = doc.getElementById(id);
			if (!e) throw new Error(`the page has no #${id}`);
			return e as T;
		};
		this.el = {
			status: $("status"),
			hello: $("hello"),
			helloName: $("hello-name"),
			helloError: $("hello-error"),
			rooms: $("rooms"),
			joinForm: $("join-form"),
			joinRoom: $("join-room"),
			joinError: $("join-error"),
			title: $("room-title"),
			messages: $("messages"),
			typing: $("typing"),
			compose: $("compose"),
			composeLabel: $("compose-label"),
			text: $("text"),
			composeError: $("compose-error"),
			members: $("members"),
			memberCount: $("member-count"),
			announcer: $("announcer"),
		};
		this.bind();
		chat.on((c) => this.apply(c));
		this.el.helloName.value = chat.name ?? "";
		this.drawStatus();
		this.drawIdentity();
		this.drawRooms();
		this.drawRoom();
	}

	private bind(): void {
		const { el, chat } = this;
		el.hello.addEventListener("submit", (e) => {
			e.preventDefault();
			el.helloError.textContent = "";
			chat.identify(el.helloName.value);
		});
		el.joinForm.addEventListener("submit", (e) => {
			e.preventDefault();
			const room = el.joinRoom.value.trim().toLowerCase().replace(/^#/, "");
			if (chat.open(room)) {
				el.joinRoom.value = "";
				el.joinError.textContent = "";
				el.text.focus();
			} else {
				el.joinError.textContent =
					"Room names are 1–32 of a–z, 0–9, - and _, starting with a letter or digit.";
			}
		});
		el.compose.addEventListener("submit", (e) => {
			e.preventDefault();
			this.submit();
		});
		el.text.addEventListener("keydown", (e) => {
			if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
				e.preventDefault();
				this.submit();
			}
		});
		el.text.addEventListener("input", () => {
			if (el.text.value.trim() !== "") chat.typing();
		});
		el.messages.addEventListener("scroll", () => {
			if (el.messages.scrollTop < 80) chat.loadOlder();
		});
	}

	private submit(): void {
		const { el, chat } = this;
		const text = el.text.value;
		if (text.trim() === "") return;
		if (chat.send(text)) {
			el.text.value = "";
			el.composeError.textContent = "";
		} else {
			el.composeError.textContent = chat.name
				? "That message is too long (4000 characters at most)."
				: "Pick a name first.";
		}
	}

	private apply(change: Change): void {
		const current = this.chat.current;
		switch (change.kind) {
			case "status":
				return this.drawStatus();
			case "identity":
				if (change.error) this.el.helloError.textContent = change.error;
				return this.drawIdentity();
			case "rooms":
				return this.drawRooms();
			case "room":
				this.drawRooms();
				if (change.room === current) this.drawRoom();
				return;
			case "message":
				if (change.room === current) this.appendMessage(change.message);
				return;
			case "pending":
				if (change.room === current) this.drawPending();
				return;
			case "history":
				if (change.room === current) this.prependHistory(change.added);
				return;
			case "members":
				if (change.room === current) this.drawMembers();
				return;
			case "typing":
				if (change.room === current) this.drawTyping();
				return;
			case "system":
				return this.addSystem(change.room ?? current, change.text);
			case "error":
				if (change.restore !== undefined && this.el.text.value === "") this.el.text.value = change.restore;
				this.el.composeError.textContent = change.text;
				return;
		}
	}

	// ---- status and identity

	private drawStatus(): void {
		clearInterval(this.countdown);
		const s = this.chat.status;
		const set = (text: string, kind: string) => {
			this.el.status.textContent = text;
			this.el.status.dataset.state = kind;
		};
		switch (s.kind) {
			case "connecting":
				return set("Connecting…", "connecting");
			case "connected":
				return set(this.chat.name ? `Connected as ${this.chat.name}` : "Connected", "connected");
			case "offline":
				return set("Offline: will reconnect when the network is back", "offline");
			case "reconnecting": {
				const tick = () =>
					set(`Reconnecting in ${Math.max(1, Math.ceil((s.at - Date.now()) / 1000))} s…`, "reconnecting");
				tick();
				this.countdown = setInterval(tick, 1000);
			}
		}
	}

	private drawIdentity(): void {
		const named = this.chat.name !== undefined && this.chat.status.kind === "connected";
		this.el.hello.hidden = named;
		if (!named && this.chat.status.kind !== "reconnecting") this.el.helloName.focus();
		this.drawStatus();
	}

	// ---- rooms

	private drawRooms(): void {
		const items = [...this.chat.rooms.values()].map((r) => {
			const li = this.doc.createElement("li");
			const open = this.doc.createElement("button");
			open.type = "button";
			open.className = "room";
			open.textContent = `#${r.name}`;
			if (r.name === this.chat.current) open.setAttribute("aria-current", "page");
			if (r.unread > 0) {
				const badge = this.doc.createElement("span");
				badge.className = "unread";
				badge.textContent = String(r.unread);
				badge.setAttribute("aria-label", `${r.unread} unread`);
				open.append(" ", badge);
			}
			open.addEventListener("click", () => this.chat.open(r.name));
			const leave = this.doc.createElement("button");
			leave.type = "button";
			leave.className = "leave";
			leave.textContent = "×";
			leave.setAttribute("aria-label", `Leave #${r.name}`);
			leave.addEventListener("click", () => this.chat.leave(r.name));
			li.append(open, leave);
			return li;
		});
		this.el.rooms.replaceChildren(...items);
	}

	// ---- messages

	private atBottom(): boolean {
		const m = this.el.messages;
		return m.scrollHeight - m.scrollTop - m.clientHeight < 40;
	}

	private keepBottom(wasAtBottom: boolean): void {
		if (wasAtBottom) this.el.messages.scrollTop = this.el.messages.scrollHeight;
	}

	private messageItem(m: Message): HTMLLIElement {
		const li = this.doc.createElement("li");
		li.className = m.from === this.chat.name ? "message mine" : "message";
		li.dataset.seq = String(m.seq);
		if (m.id) li.dataset.id = m.id;
		const from = this.doc.createElement("span");
		from.className = "from";
		from.textContent = m.from;
		const time = this.doc.createElement("time");
		time.dateTime = new Date(m.ts).toISOString();
		time.textContent = clock(m.ts);
		const text = this.doc.createElement("p");
		text.className = "text";
		text.append(linkify(this.doc, m.text));
		li.append(from, time, text);
		return li;
	}

	private pendingItem(p: Pending): HTMLLIElement {
		const li = this.doc.createElement("li");
		li.className = "message mine pending";
		li.dataset.id = p.id;
		const from = this.doc.createElement("span");
		from.className = "from";
		from.textContent = this.chat.name ?? "";
		const state = this.doc.createElement("span");
		state.className = "state";
		state.textContent = "sending…";
		const text = this.doc.createElement("p");
		text.className = "text";
		text.append(linkify(this.doc, p.text));
		li.append(from, state, text);
		return li;
	}

	private systemItem(text: string): HTMLLIElement {
		const li = this.doc.createElement("li");
		li.className = "system";
		li.textContent = text;
		return li;
	}

	private drawRoom(): void {
		const r = this.chat.peek(this.chat.current);
		this.el.title.textContent = `#${r.name}`;
		this.el.composeLabel.textContent = `Message #${r.name}`;
		this.el.text.placeholder = `Message #${r.name}`;
		const lines = this.system.get(r.name) ?? [];
		const items: HTMLLIElement[] = [];
		let next = 0;
		for (const m of r.messages) {
			while (next < lines.length && (lines[next] as SystemLine).after < m.seq) {
				items.push(this.systemItem((lines[next++] as SystemLine).text));
			}
			items.push(this.messageItem(m));
		}
		while (next < lines.length) items.push(this.systemItem((lines[next++] as SystemLine).text));
		for (const p of r.pending) items.push(this.pendingItem(p));
		this.el.messages.replaceChildren(...items);
		this.el.messages.scrollTop = this.el.messages.scrollHeight;
		this.drawMembers();
		this.drawTyping();
	}

	private firstPending(): Element | null {
		return this.el.messages.querySelector("li.pending");
	}

	private appendMessage(m: Message): void {
		const bottom = this.atBottom();
		this.el.messages.insertBefore(this.messageItem(m), this.firstPending());
		this.keepBottom(bottom);
		if (m.from !== this.chat.name) this.el.announcer.textContent = `${m.from}: ${m.text}`;
	}

	private drawPending(): void {
		const bottom = this.atBottom();
		for (const li of this.el.messages.querySelectorAll("li.pending")) li.remove();
		for (const p of this.chat.peek(this.chat.current).pending) this.el.messages.append(this.pendingItem(p));
		this.keepBottom(bottom);
	}

	private prependHistory(added: number): void {
		const list = this.el.messages;
		const older = this.chat.peek(this.chat.current).messages.slice(0, added);
		const before = list.scrollHeight;
		const top = list.scrollTop;
		list.prepend(...older.map((m) => this.messageItem(m)));
		// Keep what the reader was looking at where it was.
		list.scrollTop = top + (list.scrollHeight - before);
	}

	private addSystem(room: string, text: string): void {
		const r = this.chat.rooms.get(room);
		const line = { after: r?.messages.at(-1)?.seq ?? 0, text };
		const lines = this.system.get(room) ?? [];
		lines.push(line);
		this.system.set(room, lines.slice(-100));
		if (room !== this.chat.current) return;
		const bottom = this.atBottom();
		this.el.messages.insertBefore(this.systemItem(text), this.firstPending());
		this.keepBottom(bottom);
	}

	// ---- members and typing

	private drawMembers(): void {
		const r = this.chat.peek(this.chat.current);
		this.el.memberCount.textContent = String(r.members.length);
		this.el.members.replaceChildren(
			...r.members.map((name) => {
				const li = this.doc.createElement("li");
				li.textContent = name === this.chat.name ? `${name} (you)` : name;
				return li;
			}),
		);
	}

	private drawTyping(): void {
		clearTimeout(this.typingTimer);
		const r = this.chat.peek(this.chat.current);
		const names = this.chat.typingNow(r.name);
		this.el.typing.textContent =
			names.length === 0
				? ""
				: names.length === 1
					? `${names[0]} is typing…`
					: names.length === 2
						? `${names[0]} and ${names[1]} are typing…`
						: `${names.length} people are typing…`;
		const next = Math.min(...r.typing.values());
		if (Number.isFinite(next))
			this.typingTimer = setTimeout(() => this.drawTyping(), Math.max(50, next - Date.now()));
	}
}
