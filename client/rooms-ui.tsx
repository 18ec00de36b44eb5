// The page's protocol 1.2 screens and what they do: dialogs for rooms, the members panel, message actions. The view draws what this holds.
import type { Change, Chat, RoomView } from "./chat.ts";
import type { MessageHandlers } from "./message-actions.tsx";
import { RoomTitle } from "./room-header.tsx";
import { MembersPanel } from "./room-members.tsx";
import { RoomsList } from "./rooms-list.tsx";
import { mayManage, roomLabel } from "./rooms-model.ts";

/** The dialogs load on first use: most visits never open one, and the page stays small. */
type Dialogs = typeof import("./room-dialogs.tsx");
let dialogs: Dialogs | undefined;
let loading: Promise<Dialogs> | undefined;

/** How long the directory waits after a keystroke before asking the server. */
const QUERY_AFTER_MS = 200;

export interface RoomsUiHost {
	redraw(): void;
	/** Opens a room as choosing it in the list does (closes the drawer, focuses the composer). */
	openRoom(room: string): void;
	/** Leaves at once, with the view's "Undo". */
	leaveNow(room: string): void;
	/** A sentence for the person, shown by the message box. */
	say(text: string): void;
	/** Focuses this element after the next draw ("" = the message box). */
	focus(id: string): void;
	/** Opens the emoji picker; `pick` gets the chosen one. */
	pickEmoji?(pick: (emoji: string) => void): void;
	/** Shows the members (the drawer on a phone). */
	showMembers(): void;
}

type Open =
	| { kind: "directory" }
	| { kind: "create" }
	| { kind: "direct" }
	| { kind: "settings"; room: string }
	| { kind: "confirm"; title: string; text: string; confirm: string; run: () => void };

export class RoomsUi {
	private open?: Open;
	private error = "";
	/** The request a dialog waits for. */
	private waiting?: string;
	private membersError = "";
	private memberRefs = new Set<string>();
	private actionRefs = new Set<string>();
	private editing?: { room: string; seq: number };
	private queryTimer?: ReturnType<typeof setTimeout>;
	/** A direct room just left, so "Undo" can start it again. */
	private leftDirect?: { room: string; people: string[] };

	constructor(
		private readonly chat: Chat,
		private readonly host: RoomsUiHost,
	) {}

	/** The handlers message rows use (one object for the page's life). */
	readonly handlers: MessageHandlers = {
		me: () => this.chat.name,
		react: (seq, emoji) => this.track(this.chat.react(this.chat.current, seq, emoji)),
		pickReaction: (seq) => {
			const room = this.chat.current;
			this.host.pickEmoji?.((emoji) => this.track(this.chat.react(room, seq, emoji)));
		},
		startEdit: (seq) => {
			this.editing = { room: this.chat.current, seq };
			this.host.redraw();
		},
		saveEdit: (seq, text) => {
			const room = this.editing?.room ?? this.chat.current;
			this.track(this.chat.edit(room, seq, text));
			this.editing = undefined;
			this.host.focus("");
			this.host.redraw();
		},
		cancelEdit: () => {
			this.editing = undefined;
			this.host.focus("");
			this.host.redraw();
		},
		remove: (seq) => {
			const room = this.chat.current;
			this.confirm(
				"Delete this message?",
				"It is deleted for everyone, and cannot be brought back.",
				"Delete",
				() => this.track(this.chat.remove(room, seq)),
			);
		},
		direct: (name) => this.direct([name]),
	};

	private track(ref: string | undefined): void {
		if (ref) this.actionRefs.add(ref);
		else this.host.say("Not connected: try again in a moment.");
	}

	/** The seq being edited in the room shown, if any. */
	editingSeq(): number | undefined {
		return this.editing?.room === this.chat.current ? this.editing.seq : undefined;
	}

	/** Up arrow in an empty message box: edit the person's last message. True when there was one. */
	editLast(): boolean {
		const r = this.chat.rooms.get(this.chat.current);
		const m = this.chat.lastOwn();
		if (!r?.info || r.info.archived || !m) return false;
		this.handlers.startEdit(m.seq);
		return true;
	}

	changed(c: Change): void {
		if (c.kind === "answer") {
			if (this.memberRefs.delete(c.ref)) {
				this.membersError = c.error ?? "";
			} else if (this.actionRefs.delete(c.ref)) {
				if (c.error) this.host.say(c.error);
			} else if (c.ref === this.waiting) {
				this.waiting = undefined;
				if (c.error) this.error = c.error;
				else if (this.open?.kind !== "directory") this.close();
			}
			this.host.redraw();
		} else if (c.kind === "directory") this.host.redraw();
		else if (c.kind === "update" && this.editing?.seq === c.message.seq && c.message.deleted) {
			// Deleted (by someone else) while being edited: nothing is left to edit.
			this.editing = undefined;
		}
	}

	/** True when a dialog is open (Escape closes it first). */
	get shown(): boolean {
		return this.open !== undefined;
	}

	close(): void {
		if (!this.open) return;
		this.open = undefined;
		this.error = "";
		this.waiting = undefined;
		this.host.focus("");
		this.host.redraw();
	}

	/** Escape cancels an edit (the edit box handles its own) or closes a dialog. */
	escape(): boolean {
		if (this.open) {
			this.close();
			return true;
		}
		return false;
	}

	private show(open: Open, focus: string): void {
		this.open = open;
		this.error = "";
		this.waiting = undefined;
		this.host.focus(focus);
		if (dialogs) return this.host.redraw();
		loading ??= import("./room-dialogs.tsx");
		loading.then(
			(loaded) => {
				dialogs = loaded;
				this.host.focus(focus);
				this.host.redraw();
			},
			() => {
				loading = undefined;
				this.open = undefined;
				this.host.say("The dialog could not be loaded: check the connection and try again.");
			},
		);
	}

	browse(): void {
		this.chat.directory = undefined;
		this.chat.findRooms();
		this.show({ kind: "directory" }, "directory-query");
	}

	private confirm(title: string, text: string, confirm: string, run: () => void): void {
		this.show({ kind: "confirm", title, text, confirm, run }, "confirm-cancel");
	}

	/** Opens (or starts) the direct conversation with these people. */
	direct(names: string[]): void {
		const ref = this.chat.direct(names);
		if (!ref) return this.host.say("Not connected: try again in a moment.");
		if (this.open?.kind === "direct") this.waiting = ref;
		else this.actionRefs.add(ref);
		this.host.redraw();
	}

	/**
	 * Leaving: a private room only comes back if its creator adds you again, so
	 * it asks first; an open or direct room leaves at once, with "Undo".
	 */
	leave(room: string): void {
		const r = this.chat.rooms.get(room);
		const info = r?.info;
		if (info?.kind === "private") {
			this.confirm(
				`Leave ${roomLabel(room, info)}?`,
				"It is a private room: you can only come back if its creator or an admin adds you again.",
				"Leave",
				() => {
					this.chat.leave(room);
					this.host.redraw();
				},
			);
			return;
		}
		if (info?.kind === "direct") {
			this.leftDirect = { room, people: (info.people ?? []).filter((n) => n !== this.chat.name) };
		}
		this.host.leaveNow(room);
	}

	/** "Undo" after leaving: a direct room is started again by its people; false means join it as usual. */
	comeBack(room: string): boolean {
		if (this.leftDirect?.room !== room) return false;
		this.direct(this.leftDirect.people);
		this.leftDirect = undefined;
		return true;
	}

	// ---- drawing

	list() {
		return (
			<RoomsList
				chat={this.chat}
				onOpen={(room) => this.host.openRoom(room)}
				onLeave={(room) => this.leave(room)}
				onBrowse={() => this.browse()}
				onCreate={() => this.show({ kind: "create" }, "create-title")}
				onDirect={() => this.show({ kind: "direct" }, "direct-names")}
			/>
		);
	}

	header(r: RoomView) {
		return (
			<RoomTitle
				r={r}
				manage={mayManage(this.chat.name, this.chat.role, r.info)}
				onMembers={() => this.host.showMembers()}
				onSettings={() => this.show({ kind: "settings", room: r.name }, "settings-title")}
			/>
		);
	}

	members(r: RoomView) {
		const manage = mayManage(this.chat.name, this.chat.role, r.info) && r.info?.kind === "private";
		const member = (ref: string | undefined) => {
			if (ref) this.memberRefs.add(ref);
			this.membersError = ref ? "" : "Not connected: try again in a moment.";
			this.host.redraw();
		};
		return (
			<MembersPanel
				r={r}
				me={this.chat.name}
				manage={manage}
				error={this.membersError}
				onDirect={(name) => this.direct([name])}
				onAdd={(name) => member(this.chat.addMember(r.name, name))}
				onRemove={(name) =>
					this.confirm(
						`Remove ${name}?`,
						`${name} will no longer see ${roomLabel(r.name, r.info)} or its messages.`,
						"Remove",
						() => member(this.chat.removeMember(r.name, name)),
					)
				}
			/>
		);
	}

	/** People the person might write to: everyone in their rooms. */
	private known(): string[] {
		const all = new Set<string>();
		for (const r of this.chat.rooms.values()) for (const n of r.people) if (n !== this.chat.name) all.add(n);
		return [...all].sort();
	}

	dialog() {
		const o = this.open;
		if (!o || !dialogs) return null;
		const {
			ConfirmDialog,
			CreateRoomDialog,
			DirectDialog,
			DirectoryDialog,
			RoomSettingsDialog,
			roomIdProblem,
		} = dialogs;
		const close = () => this.close();
		switch (o.kind) {
			case "directory":
				return (
					<DirectoryDialog
						rooms={this.chat.directory?.rooms}
						mine={(room) => this.chat.rooms.has(room)}
						error={this.error}
						onQuery={(query) => {
							clearTimeout(this.queryTimer);
							this.queryTimer = setTimeout(() => this.chat.findRooms(query.trim()), QUERY_AFTER_MS);
						}}
						onJoin={(room) => {
							this.open = undefined;
							this.host.openRoom(room);
						}}
						onCreate={() => this.show({ kind: "create" }, "create-title")}
						onClose={close}
					/>
				);
			case "create":
				return (
					<CreateRoomDialog
						error={this.error}
						busy={this.waiting !== undefined}
						onCreate={(room, kind, title, topic) => {
							this.error = roomIdProblem(room);
							if (!this.error) {
								this.waiting = this.chat.create(room, kind, title, topic);
								if (!this.waiting) this.error = "Not connected: try again in a moment.";
							}
							this.host.redraw();
						}}
						onClose={close}
					/>
				);
			case "direct":
				return (
					<DirectDialog
						error={this.error}
						busy={this.waiting !== undefined}
						known={this.known()}
						onStart={(names) => this.direct(names)}
						onClose={close}
					/>
				);
			case "settings": {
				const info = this.chat.rooms.get(o.room)?.info;
				if (!info) return null;
				return (
					<RoomSettingsDialog
						info={info}
						error={this.error}
						busy={this.waiting !== undefined}
						onSave={(change) => {
							if (Object.keys(change).length === 0) return close();
							this.waiting = this.chat.updateRoom(o.room, change);
							this.host.redraw();
						}}
						onClose={close}
					/>
				);
			}
			case "confirm":
				return (
					<ConfirmDialog
						title={o.title}
						text={o.text}
						confirm={o.confirm}
						onConfirm={() => {
							this.close();
							o.run();
						}}
						onClose={close}
					/>
				);
		}
	}
}
