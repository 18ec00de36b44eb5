// The room's header under --auth accounts: its name, topic and members, and its settings for those who manage it.
import type { RoomView } from "./chat.ts";
import { LockIcon } from "./room-icons.tsx";
import { roomLabel } from "./rooms-model.ts";

export interface RoomHeaderProps {
	r: RoomView;
	manage: boolean;
	onMembers(): void;
	onSettings(): void;
}

export function RoomTitle({ r, manage, onMembers, onSettings }: RoomHeaderProps) {
	const info = r.info;
	// Once joined, count who the Members panel lists (everyone, plus whoever came online since): the room's info
	// is not sent again when someone joins an open room, so its count would go stale.
	const count =
		r.people.length > 0 ? new Set([...r.people, ...r.members]).size : (info?.members ?? r.members.length);
	return (
		<>
			<div class="room-title">
				<h2 id="room-title">
					{info?.kind === "private" && (
						<span class="lock" role="img" aria-label="private room">
							<LockIcon />{" "}
						</span>
					)}
					<bdi>{roomLabel(r.name, info)}</bdi>
				</h2>
				{info?.topic && (
					<p class="topic" dir="auto">
						{info.topic}
					</p>
				)}
			</div>
			{info?.archived !== undefined && <span class="tag">archived</span>}
			<button type="button" class="secondary members-count" onClick={onMembers}>
				{count === 1 ? "1 member" : `${count} members`}
				{r.members.length > 0 && <span class="online-count"> · {r.members.length} online</span>}
			</button>
			{manage && (
				<button type="button" class="secondary" onClick={onSettings}>
					Settings
				</button>
			)}
		</>
	);
}
