// The single-process bus: a committed message goes straight to this process's sockets; there is nobody else.
import type { Message, ServerFrame } from "../protocol.ts";
import type { Bus, BusHandler } from "./bus.ts";

export class LocalBus implements Bus {
	private handler?: BusHandler;

	async start(handler: BusHandler): Promise<void> {
		this.handler = handler;
	}

	publish(message: Message): void {
		this.handler?.deliver(message);
	}

	publishEvent(_room: string, _frame: ServerFrame): void {}

	watch(_room: string): void {}

	unwatch(_room: string): void {}

	health(): "ok" {
		return "ok";
	}

	async close(): Promise<void> {
		this.handler = undefined;
	}
}
