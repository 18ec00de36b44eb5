// The room dialogs: the directory of open rooms, a new room, a new direct message, a room's settings, and "are you sure?".
import type { ComponentChildren } from "preact";
import { LIMITS, ROOM_PATTERN, type RoomInfo } from "../protocol.ts";

export interface DirectoryRoom {
	room: string;
	title: string;
	topic: string;
	members: number;
}

interface Shell {
	id: string;
	title: string;
	onClose(): void;
	children: ComponentChildren;
	role?: "dialog" | "alertdialog";
}

/** A modal box over the page; a click beside it or Escape (handled by the view) closes it. */
export function Dialog({ id, title, onClose, children, role = "dialog" }: Shell) {
	return (
		// biome-ignore lint/a11y/noStaticElementInteractions: a click beside the dialog closes it; Escape does the same from the keyboard
		// biome-ignore lint/a11y/useKeyWithClickEvents: Escape (handled for the whole page) is the keyboard's way to close
		<div class="overlay" onClick={(e) => e.target === e.currentTarget && onClose()}>
			{/* biome-ignore lint/a11y/useAriaPropsSupportedByRole: the role is dialog or alertdialog, both modal */}
			<div id={id} class="dialog" role={role} aria-modal="true" aria-labelledby={`${id}-title`}>
				<div class="dialog-head">
					<h2 id={`${id}-title`}>{title}</h2>
					<button type="button" class="icon" aria-label="Close" onClick={onClose}>
						×
					</button>
				</div>
				{children}
			</div>
		</div>
	);
}

function members(n: number): string {
	return n === 1 ? "1 member" : `${n.toLocaleString()} members`;
}

export interface DirectoryProps {
	rooms: DirectoryRoom[] | undefined;
	/** Rooms this account is in: "Open" instead of "Join". */
	mine: (room: string) => boolean;
	error: string;
	onQuery(query: string): void;
	onJoin(room: string): void;
	onCreate(): void;
	onClose(): void;
}

export function DirectoryDialog(p: DirectoryProps) {
	return (
		<Dialog id="directory" title="Browse rooms" onClose={p.onClose}>
			<label for="directory-query">Find a room by name</label>
			<input
				id="directory-query"
				type="search"
				autocomplete="off"
				maxlength={LIMITS.titleChars}
				onInput={(e) => p.onQuery((e.currentTarget as HTMLInputElement).value)}
			/>
			<p class="error" role="alert">
				{p.error}
			</p>
			{p.rooms === undefined ? (
				<p class="hint">Loading…</p>
			) : p.rooms.length === 0 ? (
				<p class="hint">No open rooms match.</p>
			) : (
				<ul class="directory-list" aria-label="Open rooms">
					{p.rooms.map((r) => (
						<li key={r.room}>
							<div class="directory-room">
								<bdi class="directory-title">#{r.title}</bdi>
								<span class="hint">
									{members(r.members)}
									{r.title !== r.room ? ` · #${r.room}` : ""}
								</span>
								{r.topic && (
									<bdi class="directory-topic" dir="auto">
										{r.topic}
									</bdi>
								)}
							</div>
							<button
								type="button"
								class={p.mine(r.room) ? "secondary" : "small"}
								aria-label={`${p.mine(r.room) ? "Open" : "Join"} #${r.title}`}
								onClick={() => p.onJoin(r.room)}
							>
								{p.mine(r.room) ? "Open" : "Join"}
							</button>
						</li>
					))}
				</ul>
			)}
			<p class="dialog-foot">
				<button type="button" class="link" onClick={p.onCreate}>
					Create a room
				</button>
			</p>
		</Dialog>
	);
}

/** A room's address from its name: "Design reviews" → "design-reviews". */
export function roomId(name: string): string {
	return name
		.normalize("NFKD")
		.toLowerCase()
		.replace(/[\u0300-\u036f]/g, "")
		.replace(/[^a-z0-9_-]+/g, "-")
		.replace(/^[-_]+|-+$/g, "")
		.slice(0, LIMITS.roomChars)
		.replace(/-+$/, "");
}

export interface CreateProps {
	error: string;
	busy: boolean;
	onCreate(room: string, kind: "open" | "private", title: string, topic: string): void;
	onClose(): void;
}

export function CreateRoomDialog(p: CreateProps) {
	return (
		<Dialog id="create-room" title="Create a room" onClose={p.onClose}>
			<form
				class="stack"
				onSubmit={(e) => {
					e.preventDefault();
					const form = e.currentTarget as HTMLFormElement;
					const field = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value.trim();
					const title = field("title");
					const room = roomId(field("address") || title);
					const kind =
						(form.elements.namedItem("kind") as RadioNodeList).value === "private" ? "private" : "open";
					p.onCreate(room, kind, title || room, field("topic"));
				}}
			>
				<label for="create-title">Name</label>
				<input id="create-title" name="title" required maxlength={LIMITS.titleChars} autocomplete="off" />
				<label for="create-address">Address (optional)</label>
				<input
					id="create-address"
					name="address"
					maxlength={LIMITS.roomChars}
					autocomplete="off"
					placeholder="made from the name"
					aria-describedby="create-address-hint"
				/>
				<p id="create-address-hint" class="hint">
					a–z, 0–9, - and _; it cannot be changed later.
				</p>
				<label for="create-topic">Topic (optional)</label>
				<input id="create-topic" name="topic" maxlength={LIMITS.topicChars} autocomplete="off" />
				<fieldset>
					<legend>Who can find it</legend>
					<label>
						<input type="radio" name="kind" value="open" defaultChecked /> Open: anyone here can find and join
						it
					</label>
					<label>
						<input type="radio" name="kind" value="private" /> Private: only the people you add
					</label>
				</fieldset>
				<p class="error" role="alert">
					{p.error}
				</p>
				<div class="dialog-buttons">
					<button type="button" class="secondary" onClick={p.onClose}>
						Cancel
					</button>
					<button type="submit" disabled={p.busy}>
						{p.busy ? "Creating…" : "Create room"}
					</button>
				</div>
			</form>
		</Dialog>
	);
}

/** Checks a room address before it is sent: the server's own rule, said as a sentence. */
export function roomIdProblem(room: string): string {
	return ROOM_PATTERN.test(room)
		? ""
		: "The address needs at least one of a–z or 0–9 (and only a–z, 0–9, - and _).";
}

export interface DirectProps {
	error: string;
	busy: boolean;
	/** Names the person might mean (people in their rooms). */
	known: string[];
	onStart(names: string[]): void;
	onClose(): void;
}

export function DirectDialog(p: DirectProps) {
	return (
		<Dialog id="new-direct" title="New direct message" onClose={p.onClose}>
			<form
				class="stack"
				onSubmit={(e) => {
					e.preventDefault();
					const input = (e.currentTarget as HTMLFormElement).elements.namedItem("names") as HTMLInputElement;
					const names = input.value
						.split(",")
						.map((n) => n.trim().replace(/^@/, ""))
						.filter(Boolean);
					if (names.length > 0) p.onStart([...new Set(names)]);
				}}
			>
				<label for="direct-names">To (names, separated by commas)</label>
				<input id="direct-names" name="names" required autocomplete="off" list="direct-known" />
				<datalist id="direct-known">
					{p.known.map((n) => (
						<option key={n} value={n} />
					))}
				</datalist>
				<p class="hint">
					Up to {LIMITS.directOthers} people. The same people always get the same conversation.
				</p>
				<p class="error" role="alert">
					{p.error}
				</p>
				<div class="dialog-buttons">
					<button type="button" class="secondary" onClick={p.onClose}>
						Cancel
					</button>
					<button type="submit" disabled={p.busy}>
						Start
					</button>
				</div>
			</form>
		</Dialog>
	);
}

export interface SettingsProps {
	info: RoomInfo;
	error: string;
	busy: boolean;
	onSave(change: { title?: string; topic?: string; archived?: boolean }): void;
	onClose(): void;
}

export function RoomSettingsDialog({ info, error, busy, onSave, onClose }: SettingsProps) {
	const archived = info.archived !== undefined;
	return (
		<Dialog id="room-settings" title="Room settings" onClose={onClose}>
			<form
				class="stack"
				onSubmit={(e) => {
					e.preventDefault();
					const form = e.currentTarget as HTMLFormElement;
					const title = (form.elements.namedItem("title") as HTMLInputElement).value.trim();
					const topic = (form.elements.namedItem("topic") as HTMLInputElement).value.trim();
					onSave({
						...(title && title !== info.title ? { title } : {}),
						...(topic !== info.topic ? { topic } : {}),
					});
				}}
			>
				<label for="settings-title">Name</label>
				<input
					id="settings-title"
					name="title"
					required
					maxlength={LIMITS.titleChars}
					defaultValue={info.title}
					autocomplete="off"
				/>
				<label for="settings-topic">Topic</label>
				<input
					id="settings-topic"
					name="topic"
					maxlength={LIMITS.topicChars}
					defaultValue={info.topic}
					autocomplete="off"
				/>
				<p class="error" role="alert">
					{error}
				</p>
				<div class="dialog-buttons">
					<button
						type="button"
						class="secondary"
						disabled={busy}
						onClick={() => onSave({ archived: !archived })}
					>
						{archived ? "Unarchive room" : "Archive room"}
					</button>
					<button type="submit" disabled={busy}>
						Save
					</button>
				</div>
				<p class="hint">
					{archived
						? "Archived: people can read it, nobody can write in it."
						: "Archiving makes the room read-only and takes it out of the directory."}
				</p>
			</form>
		</Dialog>
	);
}

export interface ConfirmProps {
	title: string;
	text: string;
	confirm: string;
	onConfirm(): void;
	onClose(): void;
}

/** "Are you sure?" for what cannot be undone; Cancel has the focus. */
export function ConfirmDialog(p: ConfirmProps) {
	return (
		<Dialog id="confirm" title={p.title} onClose={p.onClose} role="alertdialog">
			<p>{p.text}</p>
			<div class="dialog-buttons">
				<button id="confirm-cancel" type="button" class="secondary" onClick={p.onClose}>
					Cancel
				</button>
				<button type="button" class="danger" onClick={p.onConfirm}>
					{p.confirm}
				</button>
			</div>
		</Dialog>
	);
}
