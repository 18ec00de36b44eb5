// Who is online across processes: the seam between one process's hub and a cluster's shared view of names and rooms.
import type { ServerFrame } from "../protocol.ts";

/** What a Presence needs from its process's hub. */
export interface PresenceHooks {
	/** Tells a room, here and on the other processes, that a member of a dead process left. */
	announce(room: string, frame: ServerFrame): void;
}

/**
 * Names and room membership beyond this process. The hub keeps its own
 * sockets' names and rooms; a Presence adds everyone else's.
 *
 * Contract: calls never throw; while the shared view is unreachable they
 * answer from what this process knows (claim says yes, members says none),
 * and once it is back it holds exactly this process's claims and entries, so
 * a release or an exit made meanwhile is not lost.
 */
export interface Presence {
	start(hooks: PresenceHooks): Promise<void>;
	/** Claims a name for this process; false when a live process elsewhere holds it. */
	claim(name: string): Promise<boolean>;
	release(name: string): void;
	/**
	 * Records that `name` (on this process) is in `room`; true when no process
	 * had it there before, so its arrival is news to the room.
	 */
	enter(room: string, name: string): Promise<boolean>;
	/**
	 * Records that `name` left `room` on this process; true when no process has
	 * it there any more (one person may be on several), so the room hears it left. Never rejects.
	 */
	exit(room: string, name: string): Promise<boolean>;
	/** Display names in `room` on other processes. */
	members(room: string): Promise<string[]>;
	close(): Promise<void>;
}

/** The single-process presence: nobody else exists. */
export const localPresence: Presence = {
	start: async () => {},
	claim: async () => true,
	release: () => {},
	enter: async () => true,
	exit: async () => true,
	members: async () => [],
	close: async () => {},
};
