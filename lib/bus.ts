// Where a room's committed messages go: the seam between one process and a cluster.
import type { Message } from "../protocol.ts";

/** Receives each message once per process, to hand to that process's sockets. */
export type Deliver = (message: Message) => void;

/**
 * Carries committed messages to every process that serves their room, this one included.
 *
 * Contract: a process's `deliver` sees each room's messages in ascending seq
 * order; it drops what it has already delivered, so an implementation may
 * repeat a message but must not reorder one room's messages.
 */
export interface Bus {
	publish(message: Message): void;
	close(): Promise<void>;
}
