// How the page turns text, names and times into what it shows: Markdown, avatars, days and times, lengths.
import MarkdownIt from "markdown-it";
import { LIMITS } from "../protocol.ts";

/**
 * A small Markdown subset (emphasis, strikethrough, code, quotes, lists, links).
 * Raw HTML is off, so markup in a message is shown as text; markdown-it's link
 * check refuses javascript:, vbscript:, file: and data: URLs. Images and
 * headings are off: a chat line is not a document.
 */
const markdown = new MarkdownIt("zero", { html: false, linkify: true, breaks: true }).enable([
	"emphasis",
	"strikethrough",
	"backticks",
	"fence",
	"code",
	"blockquote",
	"list",
	"link",
	"linkify",
	"autolink",
	"newline",
	"escape",
	"entity",
]);
markdown.validateLink = (url) => /^(https?:|mailto:)/i.test(url.trim());
const renderLinkOpen = markdown.renderer.rules.link_open;
markdown.renderer.rules.link_open = (tokens, idx, options, env, self) => {
	const token = tokens[idx];
	token?.attrSet("rel", "noopener noreferrer");
	token?.attrSet("target", "_blank");
	return renderLinkOpen
		? renderLinkOpen(tokens, idx, options, env, self)
		: self.renderToken(tokens, idx, options);
};

/** The message as safe HTML (see `markdown` above for what is allowed). */
export function renderMarkdown(text: string): string {
	return markdown.render(text);
}

/** Matches text made only of emoji (and the joiners and modifiers between them), at most 8. */
const EMOJI_ONLY =
	/^(?:\s*(?:\p{Extended_Pictographic}|\p{Regional_Indicator})(?:\uFE0F|\p{Emoji_Modifier}|\u200D(?:\p{Extended_Pictographic})|\p{Regional_Indicator})*){1,8}\s*$/u;

/** True for a message of only a few emoji, shown larger. */
export function isEmojiOnly(text: string): boolean {
	return EMOJI_ONLY.test(text);
}

/** Characters as the server counts them: code points, so an emoji is one. */
export function charCount(text: string): number {
	let n = 0;
	for (const _ of text) n++;
	return n;
}

export const MAX_TEXT = LIMITS.textChars;

/** Up to two initials for an avatar: the first letters of the first two words, or the first two letters. */
export function initials(name: string): string {
	const words = name
		.trim()
		.split(/[\s._-]+/u)
		.filter(Boolean);
	const letters =
		words.length > 1 ? words.slice(0, 2).map((w) => [...w][0]) : [...(words[0] ?? "?")].slice(0, 2);
	return letters.join("").toUpperCase();
}

/** A colour index 0–7 from the name, the same on every page, so a person keeps their colour. */
export function colourOf(name: string): number {
	let h = 2166136261;
	for (const ch of name.toLowerCase()) {
		h ^= ch.codePointAt(0) ?? 0;
		h = Math.imul(h, 16777619);
	}
	return (h >>> 0) % 8;
}

function startOfDay(ts: number): number {
	const d = new Date(ts);
	d.setHours(0, 0, 0, 0);
	return d.getTime();
}

/** A day separator's label: "Today", "Yesterday" or the date. */
export function dayLabel(ts: number, now = Date.now()): string {
	const days = Math.round((startOfDay(now) - startOfDay(ts)) / 86_400_000);
	if (days === 0) return "Today";
	if (days === 1) return "Yesterday";
	const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear();
	return new Date(ts).toLocaleDateString([], {
		weekday: "long",
		month: "long",
		day: "numeric",
		...(sameYear ? {} : { year: "numeric" }),
	});
}

export function sameDay(a: number, b: number): boolean {
	return startOfDay(a) === startOfDay(b);
}

export function clock(ts: number): string {
	return new Date(ts).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}

/** The full date and time, for a tooltip. */
export function fullTime(ts: number): string {
	return new Date(ts).toLocaleString([], { dateStyle: "full", timeStyle: "short" });
}

/** "alice", "alice and bob", "alice, bob and 3 others". */
export function names(list: string[]): string {
	if (list.length <= 2) return list.join(" and ");
	if (list.length === 3) return `${list[0]}, ${list[1]} and ${list[2]}`;
	return `${list[0]}, ${list[1]} and ${list.length - 2} others`;
}

/** A presence line: "carol joined", "3 people joined · bob left". */
export function presenceText(joined: string[], left: string[]): string {
	const part = (list: string[], verb: string) =>
		list.length === 0 ? "" : list.length > 3 ? `${list.length} people ${verb}` : `${names(list)} ${verb}`;
	return [part(joined, "joined"), part(left, "left")].filter(Boolean).join(" · ");
}

/** What a screen reader hears for a new message: who, and the start of it. */
export function announcement(from: string, text: string): string {
	const chars = [...text.replace(/\s+/g, " ").trim()];
	return `${from}: ${chars.length > 140 ? `${chars.slice(0, 140).join("")}…` : chars.join("")}`;
}

/** Whether the text mentions `name` as @name (not as part of a longer word). */
export function mentions(text: string, name: string | undefined): boolean {
	if (!name) return false;
	const at = text.toLowerCase().indexOf(`@${name.toLowerCase()}`);
	if (at < 0) return false;
	const after = text[at + name.length + 1];
	return after === undefined || !/[\p{L}\p{N}_-]/u.test(after);
}
