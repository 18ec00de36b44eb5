// The cluster bus (--redis): each room's frames travel on that room's Redis channel, to the processes serving the room.
import type { Message, ServerFrame } from "../protocol.ts";
import type { Bus, BusHandler } from "./bus.ts";
import type { Metrics } from "./metrics.ts";
import type { RedisLink } from "./redis-link.ts";

interface Envelope {
	/** The publishing process. */
	o: string;
	m?: Message;
	e?: ServerFrame;
}

/**
 * Each committed message is delivered here at once and published once to
 * its room's channel; a process subscribes to a room's channel only while it
 * serves the room, so what it reads grows with its own rooms, not with the
 * cluster. After a reconnect, and when a room's subscription becomes live,
 * the hub is asked to catch up from the store: what was published meanwhile
 * never reached this process.
 */
export class RedisBus implements Bus {
	private handler?: BusHandler;

	constructor(
		private readonly link: RedisLink,
		private readonly metrics: Metrics,
	) {
		link.onUp(() => this.handler?.catchUp());
	}

	private channel(room: string): string {
		return this.link.roomChannel(room);
	}

	async start(handler: BusHandler): Promise<void> {
		this.handler = handler;
		await this.link.start();
	}

	publish(message: Message): void {
		this.handler?.deliver(message);
		this.metrics.busPublished.inc();
		this.link.publish(
			this.channel(message.room),
			JSON.stringify({ o: this.link.id, m: message } satisfies Envelope),
		);
	}

	publishEvent(room: string, frame: ServerFrame): void {
		this.link.publish(this.channel(room), JSON.stringify({ o: this.link.id, e: frame } satisfies Envelope));
	}

	watch(room: string): void {
		this.link.listen(
			this.channel(room),
			(text) => this.receive(room, text),
			() => this.handler?.catchUp(room),
		);
	}

	unwatch(room: string): void {
		this.link.unlisten(this.channel(room));
	}

	private receive(room: string, text: string): void {
		let envelope: Envelope;
		try {
			envelope = JSON.parse(text) as Envelope;
		} catch {
			return;
		}
		if (envelope.o === this.link.id || !this.handler) return;
		if (envelope.m?.room === room) this.handler.deliver(envelope.m);
		else if (envelope.e) this.handler.deliverEvent(room, envelope.e);
	}

	health(): "ok" | "degraded" {
		return this.link.health();
	}

	async close(): Promise<void> {
		this.handler = undefined;
		await this.link.close();
	}
}
