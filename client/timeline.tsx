// The room's timeline: which rows to show (grouped messages, day separators, presence lines) and how each row looks.
import { Component } from "preact";
import type { Message } from "../protocol.ts";
import { Attachments } from "./attachments.tsx";
import type { Pending, RoomView } from "./chat.ts";
import {
	clock,
	colourOf,
	dayLabel,
	fullTime,
	initials,
	isEmojiOnly,
	mentions,
	presenceText,
	renderMarkdown,
	sameDay,
} from "./format.ts";
import { EditBox, MessageExtras, Tombstone } from "./message-actions.tsx";
import { roomLabel } from "./rooms-model.ts";

/** Messages from one person closer together than this share one name and avatar. */
const GROUP_MS = 5 * 60_000;

export type Row =
	| { kind: "start"; key: string; text: string }
	| { kind: "loading"; key: string }
	/** Below a search result: newer messages are on their way (chat.ts `newer`). */
	| { kind: "newer"; key: string }
	| { kind: "day"; key: string; label: string }
	| { kind: "presence"; key: string; text: string }
	/** "New since you were here", above the first message the person had not read when the room opened. */
	| { kind: "line"; key: string }
	| {
			kind: "message";
			key: string;
			message: Message;
			head: boolean;
			mine: boolean;
			mention: boolean;
			/** The message opened from a search result. */
			found?: boolean;
			/** What the person may do to it (message-actions.tsx `withActions`); absent under --auth none. */
			can?: string;
			editing?: boolean;
	  }
	| { kind: "pending"; key: string; pending: Pending; head: boolean; from: string };

/**
 * The rows for messages[from..] of a room, with what goes between them. Only
 * this window is drawn, so the page's DOM stays bounded however long a room
 * is open (the view moves `from` as the reader scrolls).
 */
export function rows(r: RoomView, from: number, me: string | undefined, now = Date.now()): Row[] {
	const out: Row[] = [];
	if (from === 0 && r.joined && !r.more) {
		out.push({
			kind: "start",
			key: "start",
			text:
				r.messages.length === 0 && r.pending.length === 0
					? `This is the start of ${startOf(r)}. Say hello!`
					: `This is the start of ${startOf(r)}.`,
		});
	} else if (from === 0 && r.loadingHistory) out.push({ kind: "loading", key: "loading" });
	const firstSeq = from === 0 ? 0 : (r.messages[from - 1]?.seq ?? 0);
	let p = r.presence.findIndex((line) => line.after >= firstSeq);
	if (p < 0) p = r.presence.length;
	let last: { from: string; ts: number } | undefined;
	const presenceUpTo = (seq: number) => {
		for (; p < r.presence.length && (r.presence[p]?.after ?? 0) < seq; p++) {
			const line = r.presence[p];
			if (!line) continue;
			const text = presenceText(line.joined, line.left);
			if (text === "") continue;
			out.push({ kind: "presence", key: `p${line.after}-${p}`, text });
			last = undefined;
		}
	};
	// The day of the last row drawn: a presence line or the unread line between two messages of one day is no new day.
	let day: number | undefined;
	const place = (who: string, ts: number): boolean => {
		if (day === undefined || !sameDay(day, ts)) {
			out.push({ kind: "day", key: `d${new Date(ts).toDateString()}`, label: dayLabel(ts, now) });
			last = undefined;
		}
		day = ts;
		const head = !last || last.from !== who || ts - last.ts > GROUP_MS;
		last = { from: who, ts };
		return head;
	};
	let lined = r.lineAfter === undefined;
	for (let i = from; i < r.messages.length; i++) {
		const m = r.messages[i] as Message;
		presenceUpTo(m.seq);
		const line = !lined && m.seq > (r.lineAfter as number);
		let head = place(m.from, m.ts);
		if (line) {
			// Below the day's separator, above the first unread message, which starts a group of its own.
			lined = true;
			out.push({ kind: "line", key: "line" });
			head = true;
		}
		out.push({
			kind: "message",
			key: `m${m.seq}`,
			message: m,
			head,
			mine: m.from === me,
			mention: m.from !== me && mentions(m.text, me),
			...(m.seq === r.focus ? { found: true } : {}),
		});
	}
	if (r.newer) {
		out.push({ kind: "newer", key: "newer" });
		return out;
	}
	presenceUpTo(Number.POSITIVE_INFINITY);
	for (const pending of r.pending) {
		const head = place(me ?? "", pending.ts);
		out.push({ kind: "pending", key: `q${pending.id}`, pending, head, from: me ?? "" });
	}
	return out;
}

/** What the first row calls the room: "#general", "Launch plans", "your conversation with bob". */
function startOf(r: RoomView): string {
	return r.info?.kind === "direct" ? `your conversation with ${r.info.title}` : roomLabel(r.name, r.info);
}

// Markdown is rendered once per message, not once per draw.
const rendered = new WeakMap<object, string>();
function html(key: object, text: string): string {
	let out = rendered.get(key);
	if (out === undefined) {
		out = renderMarkdown(text).trim();
		rendered.set(key, out);
	}
	return out;
}

function Avatar({ name }: { name: string }) {
	return <span class={`avatar c${colourOf(name)}`} data-initials={initials(name)} aria-hidden="true" />;
}

function Text({ source, text }: { source: object; text: string }) {
	return (
		<div
			class={isEmojiOnly(text) ? "text emoji-only" : "text"}
			dir="auto"
			// Safe: markdown-it with raw HTML off and only http(s)/mailto links (format.ts); the XSS tests hold it.
			dangerouslySetInnerHTML={{ __html: html(source, text) }}
		/>
	);
}

/** One row. Rows only redraw when their own row object changes. */
export class RowView extends Component<{ row: Row }> {
	override shouldComponentUpdate(next: { row: Row }): boolean {
		const a = this.props.row;
		const b = next.row;
		if (a.kind !== b.kind) return true;
		if (a.kind === "message" && b.kind === "message")
			return (
				a.message !== b.message ||
				a.head !== b.head ||
				a.mine !== b.mine ||
				a.mention !== b.mention ||
				a.found !== b.found ||
				a.can !== b.can ||
				a.editing !== b.editing
			);
		if (a.kind === "pending" && b.kind === "pending") return a.pending !== b.pending || a.head !== b.head;
		return JSON.stringify(a) !== JSON.stringify(b);
	}

	override render() {
		const row = this.props.row;
		switch (row.kind) {
			case "start":
				return <li class="start">{row.text}</li>;
			case "loading":
				return <li class="start">Loading older messages…</li>;
			case "newer":
				return <li class="start newer">Loading newer messages…</li>;
			case "day":
				return (
					<li class="day">
						<span>{row.label}</span>
					</li>
				);
			case "presence":
				return <li class="system">{row.text}</li>;
			case "line":
				return (
					<li class="new-line">
						<span>New since you were here</span>
					</li>
				);
			case "message": {
				const m = row.message;
				const cls = [
					"message",
					row.head ? "head" : "cont",
					row.mine && "mine",
					row.mention && "mention",
					row.found && "found",
				];
				return (
					<li
						class={cls.filter(Boolean).join(" ")}
						data-seq={m.seq}
						data-id={m.id}
						// The search result opened takes focus, so the keyboard and a screen reader start there; with
						// actions (accounts), arrow keys in the list move between messages, so a row's actions need no tab stop each.
						tabIndex={row.found || row.can !== undefined ? -1 : undefined}
					>
						{row.head && <Avatar name={m.from} />}
						{row.head && (
							<span class="from">
								<bdi>{m.from}</bdi>
							</span>
						)}
						<time dateTime={new Date(m.ts).toISOString()} title={fullTime(m.ts)}>
							{clock(m.ts)}
						</time>
						{m.deleted ? (
							<Tombstone />
						) : row.editing ? (
							<EditBox message={m} />
						) : (
							m.text !== "" && <Text source={m} text={m.text} />
						)}
						{!m.deleted && m.files && m.files.length > 0 && <Attachments files={m.files} />}
						{row.can !== undefined && <MessageExtras message={m} can={row.can} />}
					</li>
				);
			}
			case "pending":
				return (
					<li class={`message mine pending ${row.head ? "head" : "cont"}`} data-id={row.pending.id}>
						{row.head && <Avatar name={row.from} />}
						{row.head && (
							<span class="from">
								<bdi>{row.from}</bdi>
							</span>
						)}
						<span class="state">sending…</span>
						{row.pending.text !== "" && <Text source={row.pending} text={row.pending.text} />}
						{row.pending.files && <Attachments files={row.pending.files} />}
					</li>
				);
		}
	}
}
