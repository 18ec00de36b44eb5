// Protocol 1.2 on the page, with no DOM: what a changed message, a read position and a room's kind mean for what the page holds.
import type { Message, RoomInfo } from "../protocol.ts";

/** How often the page tells the server how far the person has read, at most. */
export const READ_EVERY_MS = 1000;

/** What the page holds of a room beyond v1 (all of it from the server, in --auth accounts mode). */
export interface RoomState {
	/** The room as this account sees it: kind, title, topic, counts. Absent under --auth none. */
	info?: RoomInfo;
	/** Every member's name, online or not (from `joined.people`). */
	people: string[];
	/** The highest change counter held (`joined.change`, `update.change`): sent back as `join.changes`. */
	change: number;
	/** The newest seq the person has seen. */
	lastRead: number;
	/** When the room was opened with unread messages: those after this seq get the "new since you were here" line. */
	lineAfter?: number;
}

/** Index of the message with `seq` in an ascending list, or -1. */
export function indexOfSeq(messages: readonly Message[], seq: number): number {
	let lo = 0;
	let hi = messages.length - 1;
	while (lo <= hi) {
		const mid = (lo + hi) >> 1;
		const at = (messages[mid] as Message).seq;
		if (at === seq) return mid;
		if (at < seq) lo = mid + 1;
		else hi = mid - 1;
	}
	return -1;
}

/**
 * Puts the current state of messages the page holds in place of the old ones
 * (an edit, a deletion, a reaction). Messages it does not hold are left out:
 * loading them later brings their current state. A version no newer than the
 * one held (by its `change`) is ignored: around a join the same change can
 * arrive twice, and a late copy must not bring an old text back. Returns how
 * many were replaced.
 */
export function applyUpdates(messages: Message[], updates: readonly Message[]): number {
	let n = 0;
	for (const m of updates) {
		const at = indexOfSeq(messages, m.seq);
		const held = messages[at];
		if (!held || (held.change !== undefined && (m.change ?? 0) <= held.change)) continue;
		messages[at] = m;
		n++;
	}
	return n;
}

/** The room's newest seq the page knows of: its last message, or the server's count when it has not loaded them. */
export function newestSeq(messages: readonly Message[], info?: RoomInfo): number {
	return Math.max(messages.at(-1)?.seq ?? 0, info?.lastSeq ?? 0);
}

/** What a person may do to a message. */
export function mayEdit(m: Message, me: string | undefined, info?: RoomInfo): boolean {
	return info !== undefined && !info.archived && !m.deleted && m.from === me;
}

/** Own messages; an admin any; a private room's creator any in that room. */
export function mayDelete(
	m: Message,
	me: string | undefined,
	role: string | undefined,
	info?: RoomInfo,
): boolean {
	if (!info || info.archived || m.deleted || !me) return false;
	return m.from === me || role === "admin" || (info.kind === "private" && info.creator === me);
}

/** Renaming, the topic, archiving and (private rooms) members: the creator or an admin. */
export function mayManage(me: string | undefined, role: string | undefined, info?: RoomInfo): boolean {
	if (!info || info.kind === "direct" || !me) return false;
	return role === "admin" || info.creator === me;
}

/** How the room is named on the page: "#general", a private room's title, the other people of a direct one. */
export function roomLabel(name: string, info?: RoomInfo): string {
	if (!info) return `#${name}`;
	if (info.kind === "direct") return info.title || name;
	return info.kind === "private" ? info.title : `#${info.title}`;
}

/**
 * A reaction toggled by `me`: the message as it will look once the server
 * agrees. Used to decide the frame's `on`, never shown as confirmed.
 */
export function reacted(m: Message, emoji: string, me: string): boolean {
	return m.reactions?.some((r) => r.emoji === emoji && r.names.includes(me)) ?? false;
}
