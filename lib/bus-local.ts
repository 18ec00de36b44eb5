// The single-process bus: a committed message goes straight to this process's sockets.
import type { Message } from "../protocol.ts";
import type { Bus, Deliver } from "./bus.ts";

export class LocalBus implements Bus {
	constructor(private readonly deliver: Deliver) {}

	publish(message: Message): void {
		this.deliver(message);
	}

	async close(): Promise<void> {}
}
