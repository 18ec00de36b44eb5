// What a person can do to a message (react, edit, delete, write to its author) and how a changed message looks.
import { Component, createContext, createRef } from "preact";
import type { Message } from "../protocol.ts";
import type { RoomView } from "./chat.ts";
import { fullTime } from "./format.ts";
import { Reactions } from "./reactions.tsx";
import { TrashIcon } from "./room-icons.tsx";
import { mayDelete, mayEdit } from "./rooms-model.ts";
import type { Row } from "./timeline.tsx";

/** The view's handlers for message actions: one stable object, so rows need not redraw when it is passed down. */
export interface MessageHandlers {
	me(): string | undefined;
	/** Toggles this person's reaction. */
	react(seq: number, emoji: string): void;
	/** Opens the emoji picker to add a reaction. */
	pickReaction(seq: number): void;
	startEdit(seq: number): void;
	saveEdit(seq: number, text: string): void;
	cancelEdit(): void;
	/** Asks to delete (with a confirmation). */
	remove(seq: number): void;
	/** Opens the direct conversation with this person. */
	direct(name: string): void;
}

export const Handlers = createContext<MessageHandlers | undefined>(undefined);

/**
 * Marks on message rows what this person may do to each ("r" react, "e"
 * edit, "d" delete, "m" message its author) and which one is being edited.
 * Only under --auth accounts (a room with `info`); otherwise rows are unchanged.
 */
export function withActions(
	rows: Row[],
	r: RoomView,
	me: string | undefined,
	role: string | undefined,
	editing: number | undefined,
): Row[] {
	const info = r.info;
	if (!info) return rows;
	return rows.map((row) => {
		if (row.kind !== "message") return row;
		const m = row.message;
		const can = [
			!m.deleted && !info.archived ? "r" : "",
			mayEdit(m, me, info) ? "e" : "",
			mayDelete(m, me, role, info) ? "d" : "",
			m.from !== me && info.kind !== "direct" ? "m" : "",
		].join("");
		return { ...row, can, ...(editing === m.seq ? { editing: true } : {}) };
	});
}

/** "(edited)", with when as a tooltip and for screen readers. */
export function Edited({ ts }: { ts: number }) {
	return (
		<time class="edited" dateTime={new Date(ts).toISOString()} title={`Edited ${fullTime(ts)}`}>
			(edited)
		</time>
	);
}

export function Tombstone() {
	return <p class="text deleted">This message was deleted.</p>;
}

/** Edits a message in place: Enter saves, Shift+Enter is a new line, Escape cancels. */
export class EditBox extends Component<{ message: Message }> {
	static override contextType = Handlers;
	private readonly box = createRef<HTMLTextAreaElement>();

	override componentDidMount(): void {
		const box = this.box.current;
		if (!box) return;
		box.value = this.props.message.text;
		box.focus();
		box.selectionStart = box.selectionEnd = box.value.length;
	}

	private save(): void {
		const h = this.context as MessageHandlers;
		const text = this.box.current?.value ?? "";
		if (text.trim() === "" || text === this.props.message.text) h.cancelEdit();
		else h.saveEdit(this.props.message.seq, text);
	}

	override render() {
		const h = this.context as MessageHandlers;
		const id = `edit-${this.props.message.seq}`;
		return (
			<form
				class="edit-box"
				onSubmit={(e) => {
					e.preventDefault();
					this.save();
				}}
			>
				<label for={id} class="visually-hidden">
					Edit your message
				</label>
				<textarea
					id={id}
					ref={this.box}
					dir="auto"
					rows={2}
					onKeyDown={(e) => {
						if (e.key === "Escape") {
							e.preventDefault();
							e.stopPropagation();
							h.cancelEdit();
						} else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
							e.preventDefault();
							this.save();
						}
					}}
				/>
				<div class="edit-buttons">
					<span class="hint">Escape to cancel · Enter to save</span>
					<button type="button" class="secondary" onClick={() => h.cancelEdit()}>
						Cancel
					</button>
					<button type="submit" class="small">
						Save
					</button>
				</div>
			</form>
		);
	}
}

/**
 * What goes under a message's text: "(edited)", its reactions, and a toolbar
 * shown on hover or when the row has the keyboard's focus (hidden, its
 * buttons take no tab stops).
 */
export class MessageExtras extends Component<{ message: Message; can: string }> {
	static override contextType = Handlers;

	override render() {
		const h = this.context as MessageHandlers | undefined;
		const { message: m, can } = this.props;
		if (!h) return null;
		const who = m.from;
		return (
			<>
				{m.edited !== undefined && !m.deleted && <Edited ts={m.edited} />}
				{m.reactions && m.reactions.length > 0 && (
					<Reactions
						reactions={m.reactions}
						me={h.me()}
						disabled={!can.includes("r")}
						onToggle={(emoji) => h.react(m.seq, emoji)}
					/>
				)}
				{can !== "" && (
					<div class="actions" role="toolbar" aria-label={`Message from ${who}`}>
						{can.includes("r") && (
							<button
								type="button"
								class="icon"
								aria-label="Add reaction"
								title="Add reaction"
								onClick={() => h.pickReaction(m.seq)}
							>
								☺<span aria-hidden="true">+</span>
							</button>
						)}
						{can.includes("e") && (
							<button
								type="button"
								class="icon"
								aria-label="Edit message"
								title="Edit (↑ in an empty message box)"
								onClick={() => h.startEdit(m.seq)}
							>
								✎
							</button>
						)}
						{can.includes("d") && (
							<button
								type="button"
								class="icon"
								aria-label="Delete message"
								title="Delete"
								onClick={() => h.remove(m.seq)}
							>
								<TrashIcon />
							</button>
						)}
						{can.includes("m") && (
							<button
								type="button"
								class="icon"
								aria-label={`Message ${who}`}
								title={`Message ${who}`}
								onClick={() => h.direct(who)}
							>
								✉
							</button>
						)}
					</div>
				)}
			</>
		);
	}
}
