// The members panel under --auth accounts: everyone in the room (online marked), a way to write to each, and for its managers adding and removing.
import type { RoomView } from "./chat.ts";
import { colourOf, initials } from "./format.ts";

export interface MembersProps {
	r: RoomView;
	me: string | undefined;
	/** The creator or an admin of a private room: may add and remove. */
	manage: boolean;
	error: string;
	onDirect(name: string): void;
	onAdd(name: string): void;
	onRemove(name: string): void;
}

const collator = new Intl.Collator(undefined, { sensitivity: "base" });

export function MembersPanel({ r, me, manage, error, onDirect, onAdd, onRemove }: MembersProps) {
	const online = new Set(r.members);
	// Everyone, online first; who is online but not (yet) in the list of people still shows.
	const everyone = [...new Set([...r.people, ...r.members])].sort(
		(a, b) => Number(online.has(b)) - Number(online.has(a)) || collator.compare(a, b),
	);
	const count = Math.max(r.info?.members ?? 0, everyone.length);
	const direct = r.info?.kind === "direct";
	return (
		<>
			<h2>
				Members <span id="member-count">{count}</span>
			</h2>
			<p class="hint">{online.size} online</p>
			<ul id="members">
				{everyone.map((name) => (
					<li key={name} class={online.has(name) ? "online" : "away"}>
						<span
							class={`avatar small c${colourOf(name)}`}
							data-initials={initials(name)}
							aria-hidden="true"
						/>
						<bdi>{name === me ? `${name} (you)` : name}</bdi>
						<span class="visually-hidden">{online.has(name) ? ", online" : ", away"}</span>
						<span class="dot" aria-hidden="true" />
						{name !== me && !direct && (
							<button
								type="button"
								class="icon small"
								aria-label={`Message ${name}`}
								title={`Message ${name}`}
								onClick={() => onDirect(name)}
							>
								✉
							</button>
						)}
						{manage && name !== me && (
							<button
								type="button"
								class="icon small"
								aria-label={`Remove ${name} from the room`}
								title={`Remove ${name}`}
								onClick={() => onRemove(name)}
							>
								×
							</button>
						)}
					</li>
				))}
			</ul>
			{manage && (
				<form
					class="add-member"
					onSubmit={(e) => {
						e.preventDefault();
						const input = (e.currentTarget as HTMLFormElement).elements.namedItem("name") as HTMLInputElement;
						const name = input.value.trim().replace(/^@/, "");
						if (name === "") return;
						input.value = "";
						onAdd(name);
					}}
				>
					<label for="add-member">Add someone</label>
					<div class="row">
						<input id="add-member" name="name" autocomplete="off" placeholder="name" />
						<button type="submit" class="small">
							Add
						</button>
					</div>
				</form>
			)}
			<p class="error" role="alert">
				{error}
			</p>
		</>
	);
}
