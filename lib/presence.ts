// Who is online across processes: the seam between one process's hub and a cluster's shared view of names and rooms.

/**
 * Names and room membership beyond this process. The hub keeps its own
 * sockets' names and rooms; a Presence adds everyone else's.
 *
 * Contract: calls never throw; while the shared view is unreachable they
 * answer from what this process knows (claim says yes, members says none).
 */
export interface Presence {
	/** Claims a name for this process; false when a live connection elsewhere holds it. */
	claim(name: string): Promise<boolean>;
	release(name: string): void;
	/** Records that `name` (on this process) is in `room`. */
	enter(room: string, name: string): Promise<void>;
	exit(room: string, name: string): void;
	/** Display names in `room` on other processes. */
	members(room: string): Promise<string[]>;
}

/** The single-process presence: nobody else exists. */
export const localPresence: Presence = {
	claim: async () => true,
	release: () => {},
	enter: async () => {},
	exit: () => {},
	members: async () => [],
};
