// The room list: rooms and direct messages in two groups, each with its unread and mention badges and a way to leave.
import type { Chat, RoomView } from "./chat.ts";
import { colourOf, initials } from "./format.ts";
import { LockIcon } from "./room-icons.tsx";
import { roomLabel } from "./rooms-model.ts";

export interface RoomsListProps {
	chat: Chat;
	onOpen(room: string): void;
	onLeave(room: string): void;
	/** --auth accounts: the directory, a new room, a new direct message. */
	onBrowse?(): void;
	onCreate?(): void;
	onDirect?(): void;
}

const collator = new Intl.Collator(undefined, { sensitivity: "base" });

function Item({
	r,
	current,
	onOpen,
	onLeave,
}: { r: RoomView; current: boolean } & Pick<RoomsListProps, "onOpen" | "onLeave">) {
	const label = roomLabel(r.name, r.info);
	const kind = r.info?.kind;
	const described =
		r.unread === 0
			? undefined
			: r.mentions > 0
				? `${label}, ${countText(r.unread)} unread, ${countText(r.mentions)} mentioning you`
				: `${label}, ${countText(r.unread)} unread`;
	return (
		<li>
			<button
				type="button"
				class={r.unread > 0 ? "room has-unread" : "room"}
				aria-current={current ? "page" : undefined}
				aria-label={described}
				data-room={r.name}
				onClick={() => onOpen(r.name)}
			>
				{kind === "direct" && (
					<span
						class={`avatar small c${colourOf(label)}`}
						data-initials={initials(label)}
						aria-hidden="true"
					/>
				)}
				{kind === "private" && (
					<span class="lock" role="img" aria-label="private">
						<LockIcon />
					</span>
				)}
				<bdi class="room-name">{label}</bdi>
				{r.info?.archived !== undefined && <span class="tag">archived</span>}
				{r.unread > 0 && " "}
				{r.unread > 0 && (
					<span class={r.mentions > 0 ? "unread mention" : "unread"}>{countText(r.unread)}</span>
				)}
			</button>
			<button
				type="button"
				class="leave"
				aria-label={`Leave ${label}`}
				title={`Leave ${label}`}
				onClick={() => onLeave(r.name)}
			>
				×
			</button>
		</li>
	);
}

/** The list's groups in the order shown (Alt+↑/↓ walks the same order): without accounts one group as joined; with them rooms, then direct messages, each by name. */
export function sidebarGroups(chat: Chat): { accounts: boolean; rooms: RoomView[]; directs: RoomView[] } {
	const all = [...chat.rooms.values()];
	// Protocol 1.2 (welcome names a role, rooms have info): even with no rooms left, the directory is a click away.
	const accounts = chat.role !== undefined || all.some((r) => r.info);
	if (!accounts) return { accounts, rooms: all, directs: [] };
	const byLabel = (a: RoomView, b: RoomView) =>
		collator.compare(
			roomLabel(a.name, a.info).replace(/^#/, ""),
			roomLabel(b.name, b.info).replace(/^#/, ""),
		);
	return {
		accounts,
		rooms: all.filter((r) => r.info?.kind !== "direct").sort(byLabel),
		directs: all.filter((r) => r.info?.kind === "direct").sort(byLabel),
	};
}

export function RoomsList(props: RoomsListProps) {
	const { chat } = props;
	const { accounts, rooms, directs } = sidebarGroups(chat);
	const item = (r: RoomView) => (
		<Item
			key={r.name}
			r={r}
			current={r.name === chat.current}
			onOpen={props.onOpen}
			onLeave={props.onLeave}
		/>
	);
	if (!accounts) {
		return (
			<>
				<h2>Rooms</h2>
				<ul id="rooms">{rooms.map(item)}</ul>
			</>
		);
	}
	return (
		<>
			<div class="group-head">
				<h2 id="rooms-title">Rooms</h2>
				<button type="button" class="icon" aria-label="New room" title="New room" onClick={props.onCreate}>
					+
				</button>
			</div>
			<ul id="rooms" aria-labelledby="rooms-title">
				{rooms.map(item)}
			</ul>
			<button type="button" class="link browse" onClick={props.onBrowse}>
				Browse rooms
			</button>
			<div class="group-head">
				<h2 id="directs-title">Direct messages</h2>
				<button
					type="button"
					class="icon"
					aria-label="New direct message"
					title="New direct message"
					onClick={props.onDirect}
				>
					+
				</button>
			</div>
			<ul id="directs" aria-labelledby="directs-title">
				{directs.map(item)}
			</ul>
			{directs.length === 0 && <p class="hint">Write to someone from their name in a room's members.</p>}
		</>
	);
}

/** A count as a badge shows it: the server stops counting unread and mentions at 100 (docs/PROTOCOL.md, RoomInfo). */
export function countText(n: number): string {
	return n >= 100 ? "99+" : String(n);
}
