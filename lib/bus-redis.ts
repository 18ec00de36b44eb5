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
 * never reached this process. The other way round, what this process could
 * not publish is published once the link is back: the newest message of each
 * room (the others read the ones before it from the store) and the last
 * presence of each member.
 */
export class RedisBus implements Bus {
	private handler?: BusHandler;
	/** Per room, the newest committed message that did not reach Redis. */
	private readonly unsent = new Map<string, Message>();
	/** Per room and member, the last presence frame that did not reach Redis. */
	private readonly unsentPresence = new Map<string, ServerFrame & { type: "presence" }>();
	/** Per room, the newest change (protocol 1.2 `update`) that did not reach Redis: the others read the ones before it from the store. */
	private readonly unsentUpdates = new Map<string, ServerFrame & { type: "update" }>();

	constructor(
		private readonly link: RedisLink,
		private readonly metrics: Metrics,
	) {
		link.onUp(() => {
			this.handler?.catchUp();
			this.resend();
		});
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
		this.sendMessage(message);
	}

	private sendMessage(message: Message): void {
		this.send(message.room, { o: this.link.id, m: message }, () => {
			const newest = this.unsent.get(message.room);
			if (!newest || newest.seq < message.seq) this.unsent.set(message.room, message);
		});
	}

	publishEvent(room: string, frame: ServerFrame): void {
		this.send(room, { o: this.link.id, e: frame }, () => {
			if (frame.type === "presence") this.unsentPresence.set(`${room}\n${frame.name}`, frame);
			if (frame.type === "update" && (this.unsentUpdates.get(room)?.change ?? 0) < frame.change)
				this.unsentUpdates.set(room, frame);
		});
	}

	/** Publishes to a room's channel; runs `failed` when Redis did not take it. */
	private send(room: string, envelope: Envelope, failed: () => void): void {
		this.link
			.send("PUBLISH", [this.channel(room), JSON.stringify(envelope)])
			.then((answer) => {
				if (answer === undefined) failed();
			})
			.catch(() => {});
	}

	/** Publishes again what did not reach Redis while it was away. */
	private resend(): void {
		const messages = [...this.unsent.values()];
		const presence = [...this.unsentPresence.values()];
		const updates = [...this.unsentUpdates.values()];
		this.unsent.clear();
		this.unsentPresence.clear();
		this.unsentUpdates.clear();
		for (const m of messages) this.sendMessage(m);
		for (const frame of [...presence, ...updates]) this.publishEvent(frame.room, frame);
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
