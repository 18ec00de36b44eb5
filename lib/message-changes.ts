// Who may edit, delete or react to a stored message (protocol 1.2, --auth accounts): the one place these rules live.
import type { ErrorCode, Message } from "../protocol.ts";
import type { Account } from "./accounts.ts";
import { nameKey } from "./names.ts";

/** What the rules need to know of the room (lib/rooms.ts provides it once rooms are in the store). */
export interface RoomFacts {
	kind?: "open" | "private" | "direct";
	/** The creator's account id. */
	creatorId?: string;
	/** Archived rooms are read-only. */
	archived?: boolean;
}

export type ChangeKind = "edit" | "delete" | "react";

/** An edit, delete or react refused: the `error` frame's code and sentence. */
export class ChangeRefused extends Error {
	override name = "ChangeRefused";
	constructor(
		readonly code: ErrorCode,
		message: string,
	) {
		super(message);
	}
}

/**
 * Why `account` may not do `kind` to `message` in a room with `facts`, or
 * undefined when it may. A message is the sender's when its `from` has the
 * account's name key: under --auth accounts a name belongs to one account
 * (names are unique by key and never reused, lib/accounts.ts).
 */
export function refusal(
	kind: ChangeKind,
	account: Account,
	message: Message,
	facts: RoomFacts = {},
): ChangeRefused | undefined {
	if (facts.archived)
		return new ChangeRefused("read_only", `#${message.room} is archived: it can be read, not changed`);
	const own = nameKey(message.from) === nameKey(account.name);
	if (kind === "edit") {
		if (message.deleted) return new ChangeRefused("forbidden", `message ${message.seq} was deleted`);
		if (!own) return new ChangeRefused("forbidden", "only its sender can edit a message");
		return undefined;
	}
	if (kind === "delete") {
		// Answered before the rights, so a retried delete hears that it is done (the store checks again, in its transaction).
		if (message.deleted) return new ChangeRefused("forbidden", `message ${message.seq} was already deleted`);
		const creator = facts.kind === "private" && facts.creatorId === account.id;
		if (own || account.role === "admin" || creator) return undefined;
		return new ChangeRefused(
			"forbidden",
			"only its sender, an admin or (in a private room) the room's creator can delete a message",
		);
	}
	if (message.deleted) return new ChangeRefused("forbidden", `message ${message.seq} was deleted`);
	return undefined;
}
