// The message box: grows with its text, keeps a draft per room, counts as the server counts, completes @names and :shortcodes:.
import { Component, createRef } from "preact";
import { UploadList } from "./attachments.tsx";
import { charCount, MAX_TEXT } from "./format.ts";
import type { Upload } from "./uploads.ts";

export interface Suggestion {
	/** What replaces the typed word. */
	insert: string;
	label: string;
}

export interface ComposerProps {
	room: string;
	/** How the room is named ("#general", "bob"); the room id with # when absent. */
	label?: string;
	draft: string;
	error: string;
	disabled: boolean;
	onDraft(text: string): void;
	onSend(text: string): boolean;
	onTyping(): void;
	/** Suggestions for a word being typed ("@al", ":smi"), best first. */
	suggest(word: string): Suggestion[];
	onEmojiButton(): void;
	/** Up arrow in an empty box: edit the last message sent (true when there was one to edit). */
	onEditLast?(): boolean;
	/** Files (--auth accounts): those on their way with the next message, and what to do with new ones. */
	uploads?: Upload[];
	onFiles?(files: File[]): void;
	onCancelUpload?(key: string): void;
}

interface State {
	suggestions: Suggestion[];
	active: number;
}

/** The word before the caret when it starts with @ or : (a completion is wanted). */
function wordAt(text: string, caret: number): { start: number; word: string } | undefined {
	const before = text.slice(0, caret);
	const match = /(?:^|\s)([@:][\p{L}\p{N}_+-]*)$/u.exec(before);
	if (!match?.[1]) return undefined;
	const word = match[1];
	if (word.startsWith(":") && word.length < 3) return undefined;
	return { start: caret - word.length, word };
}

export class Composer extends Component<ComposerProps, State> {
	override state: State = { suggestions: [], active: 0 };
	private readonly box = createRef<HTMLTextAreaElement>();

	override componentDidUpdate(previous: ComposerProps): void {
		// The box is the source of truth while typing (every keystroke updates the draft at once); a new
		// draft from outside wins: another room's, or a refused message given back. A redraw for this
		// component's own state carries the props of the last draw, which may be older than the box.
		const box = this.box.current;
		const changed = previous.room !== this.props.room || previous.draft !== this.props.draft;
		if (box && changed && box.value !== this.props.draft) box.value = this.props.draft;
	}

	override componentDidMount(): void {
		if (this.box.current) this.box.current.value = this.props.draft;
	}

	private complete(s: Suggestion): void {
		const box = this.box.current;
		if (!box) return;
		const at = wordAt(box.value, box.selectionStart ?? box.value.length);
		if (!at) return;
		const end = at.start + at.word.length;
		box.value = `${box.value.slice(0, at.start)}${s.insert} ${box.value.slice(end)}`;
		box.selectionStart = box.selectionEnd = at.start + s.insert.length + 1;
		this.props.onDraft(box.value);
		this.setState({ suggestions: [] });
	}

	private submit(): void {
		const box = this.box.current;
		const files = this.props.uploads?.some((u) => u.state !== "failed") ?? false;
		if (!box || (box.value.trim() === "" && !files)) return;
		this.props.onDraft(box.value);
		if (this.props.onSend(box.value)) {
			box.value = "";
			this.setState({ suggestions: [] });
		}
	}

	private onInput = (): void => {
		const box = this.box.current;
		if (!box) return;
		this.props.onDraft(box.value);
		if (box.value.trim() !== "") this.props.onTyping();
		const at = wordAt(box.value, box.selectionStart ?? box.value.length);
		const suggestions = at ? this.props.suggest(at.word).slice(0, 6) : [];
		this.setState({ suggestions, active: 0 });
	};

	/** A pasted screenshot (or copied files) becomes an upload; pasted text stays text. */
	private onPaste = (e: ClipboardEvent): void => {
		const files = [...(e.clipboardData?.files ?? [])];
		if (files.length === 0 || !this.props.onFiles) return;
		e.preventDefault();
		this.props.onFiles(files);
	};

	private readonly picker = createRef<HTMLInputElement>();

	private onKeyDown = (e: KeyboardEvent): void => {
		const { suggestions, active } = this.state;
		if (suggestions.length > 0) {
			if (e.key === "ArrowDown" || e.key === "ArrowUp") {
				e.preventDefault();
				const step = e.key === "ArrowDown" ? 1 : -1;
				this.setState({ active: (active + step + suggestions.length) % suggestions.length });
				return;
			}
			if (e.key === "Enter" || e.key === "Tab") {
				e.preventDefault();
				this.complete(suggestions[active] as Suggestion);
				return;
			}
			if (e.key === "Escape") {
				e.stopPropagation();
				this.setState({ suggestions: [] });
				return;
			}
		}
		if (e.key === "ArrowUp" && this.box.current?.value === "" && this.props.onEditLast?.()) {
			e.preventDefault();
			return;
		}
		if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
			e.preventDefault();
			this.submit();
		}
	};

	override render() {
		const { room, draft, error, disabled } = this.props;
		const { suggestions, active } = this.state;
		const count = charCount(draft);
		const over = count - MAX_TEXT;
		const label = room ? `Message ${this.props.label ?? `#${room}`}` : "Message";
		return (
			<form
				id="compose"
				class="compose"
				onSubmit={(e) => {
					e.preventDefault();
					this.submit();
				}}
			>
				{suggestions.length > 0 && (
					<div id="suggestions" class="suggestions" role="listbox" aria-label="Suggestions">
						{suggestions.map((s, i) => (
							<div
								key={s.insert}
								id={`suggestion-${i}`}
								role="option"
								tabIndex={-1}
								aria-selected={i === active}
								onMouseDown={(e) => {
									e.preventDefault();
									this.complete(s);
								}}
							>
								{s.label}
							</div>
						))}
					</div>
				)}
				{this.props.uploads && (
					<UploadList uploads={this.props.uploads} onCancel={(key) => this.props.onCancelUpload?.(key)} />
				)}
				<label id="compose-label" for="text" class="visually-hidden">
					{label}
				</label>
				<div class="compose-row">
					<textarea
						id="text"
						ref={this.box}
						rows={1}
						dir="auto"
						placeholder={label}
						disabled={disabled}
						aria-describedby="compose-count compose-error"
						aria-activedescendant={suggestions.length > 0 ? `suggestion-${active}` : undefined}
						onInput={this.onInput}
						onKeyDown={this.onKeyDown}
						onPaste={this.onPaste}
						onBlur={() => this.setState({ suggestions: [] })}
					/>
					{this.props.onFiles && (
						<>
							<input
								ref={this.picker}
								type="file"
								multiple
								hidden
								tabIndex={-1}
								aria-hidden="true"
								onChange={(e) => {
									const input = e.currentTarget as HTMLInputElement;
									const files = [...(input.files ?? [])];
									input.value = "";
									if (files.length > 0) this.props.onFiles?.(files);
								}}
							/>
							<button
								type="button"
								class="icon attach"
								aria-label="Attach files"
								disabled={disabled}
								title="Attach files (or drop them here, or paste a screenshot)"
								onClick={() => this.picker.current?.click()}
							>
								<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
									<path
										d="M16.5 6.5 8.9 14.1a1.5 1.5 0 0 0 2.1 2.1l7.1-7.1a3.5 3.5 0 0 0-5-5L6 11.2a5.5 5.5 0 0 0 7.8 7.8l6.4-6.4"
										fill="none"
										stroke="currentColor"
										stroke-width="1.8"
										stroke-linecap="round"
									/>
								</svg>
							</button>
						</>
					)}
					<button
						type="button"
						class="icon"
						aria-label="Insert emoji"
						disabled={disabled}
						title="Insert emoji"
						onClick={() => this.props.onEmojiButton()}
					>
						☺
					</button>
					<button type="submit" disabled={disabled}>
						Send
					</button>
				</div>
				<p id="compose-count" class={over > 0 ? "count over" : "count"} aria-live="polite">
					{over > 0
						? `Too long by ${over.toLocaleString()} characters (${count.toLocaleString()} of ${MAX_TEXT.toLocaleString()}): shorten it to send.`
						: count > MAX_TEXT - 500
							? `${count.toLocaleString()} of ${MAX_TEXT.toLocaleString()} characters`
							: ""}
				</p>
				<p id="compose-error" class="error" role="alert">
					{error}
				</p>
			</form>
		);
	}
}
