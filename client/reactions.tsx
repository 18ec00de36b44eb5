// A message's reactions: each emoji with its count, the person's own highlighted; a click adds or takes back theirs.
export interface ReactionsProps {
	reactions: { emoji: string; names: string[] }[];
	me: string | undefined;
	/** Archived rooms and deleted messages: shown, not changed. */
	disabled: boolean;
	onToggle(emoji: string): void;
}

export function Reactions({ reactions, me, disabled, onToggle }: ReactionsProps) {
	return (
		<ul class="reactions" aria-label="Reactions">
			{reactions.map((r) => {
				const mine = me !== undefined && r.names.includes(me);
				const who = r.names.map((n) => (n === me ? "you" : n)).join(", ");
				return (
					<li key={r.emoji}>
						<button
							type="button"
							class={mine ? "reaction mine" : "reaction"}
							aria-pressed={mine}
							aria-label={`${r.emoji} ${r.names.length}: ${who}`}
							title={`${who} reacted with ${r.emoji}`}
							disabled={disabled}
							onClick={() => onToggle(r.emoji)}
						>
							<span aria-hidden="true">{r.emoji}</span> <span aria-hidden="true">{r.names.length}</span>
						</button>
					</li>
				);
			})}
		</ul>
	);
}
