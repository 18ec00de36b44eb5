// Where a room's frames go beyond this process: the seam between one process and a cluster.
import type { Message, ServerFrame } from "../protocol.ts";

/** Receives each committed message once per process, to hand to that process's sockets. */
export type Deliver = (message: Message) => void;
/** Receives a transient room frame (presence, typing) from another process. */
export type DeliverEvent = (room: string, frame: ServerFrame) => void;

/**
 * Carries committed messages to every process that serves their room, this one included,
 * and transient room frames to the other processes.
 *
 * Contract: a process's `deliver` sees each room's messages in ascending seq
 * order or learns of a gap by a later message; it drops what it has already
 * delivered and reads what it missed from the store, so an implementation may
 * lose or repeat messages (while the cluster is partitioned) but never invents one.
 */
export interface Bus {
	publish(message: Message): void;
	publishEvent(room: string, frame: ServerFrame): void;
	/** "ok", or "degraded" while other processes cannot be reached. */
	health(): "ok" | "degraded";
	close(): Promise<void>;
}
