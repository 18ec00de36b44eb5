// Where a room's frames go beyond this process: the seam between one process and a cluster.
import type { Message, ServerFrame } from "../protocol.ts";

/** What a bus hands to its process's hub. */
export interface BusHandler {
	/** A committed message, for this process's sockets in its room. */
	deliver(message: Message): void;
	/** A transient room frame (presence, typing) from another process. */
	deliverEvent(room: string, frame: ServerFrame): void;
	/**
	 * Messages may have been missed (the bus was away, or `room`'s
	 * subscription just became live): read what the store has beyond what was
	 * delivered, for `room` or, without one, for every room served here.
	 */
	catchUp(room?: string): void;
}

/**
 * Carries committed messages to every process that serves their room, this one included,
 * and transient room frames to the other processes that serve it.
 *
 * Contract: a process's `deliver` sees each room's messages in ascending seq
 * order or learns of a gap by a later message or a `catchUp`; it drops what it
 * has already delivered and reads what it missed from the store, so an
 * implementation may lose or repeat messages (while the cluster is
 * partitioned) but never invents one. A process receives a room's traffic
 * only between `watch` and `unwatch` of that room.
 */
export interface Bus {
	/** Starts handing incoming traffic to `handler`; resolves after the first attempt to reach the others. */
	start(handler: BusHandler): Promise<void>;
	/** A committed message, to every process serving its room, this one included. */
	publish(message: Message): void;
	/** A presence or typing frame, to the other processes serving `room`. */
	publishEvent(room: string, frame: ServerFrame): void;
	/** The room gained its first local member or pending join. */
	watch(room: string): void;
	/** The room's last local member or pending join is gone. */
	unwatch(room: string): void;
	/** "ok", or "degraded" while other processes cannot be reached. */
	health(): "ok" | "degraded";
	close(): Promise<void>;
}
