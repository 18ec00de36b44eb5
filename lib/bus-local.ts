// The single-process bus: a committed message goes straight to this process's sockets; there is nobody else.
import type { Message, ServerFrame } from "../protocol.ts";
import type { Bus, Deliver } from "./bus.ts";

export class LocalBus implements Bus {
	constructor(private readonly deliver: Deliver) {}

	publish(message: Message): void {
		this.deliver(message);
	}

	publishEvent(_room: string, _frame: ServerFrame): void {}

	health(): "ok" {
		return "ok";
	}

	async close(): Promise<void> {}
}
