// Cluster mode (--redis): fan-out between processes over Redis pub/sub, and names and room members kept in Redis.
import { RedisClient } from "bun";
import type { Message, ServerFrame } from "../protocol.ts";
import type { Bus, Deliver, DeliverEvent } from "./bus.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { nameKey } from "./names.ts";
import type { Presence } from "./presence.ts";

const CHANNEL = "hubbub:bus";
/** A process whose heartbeat key is older than this is dead; its members are removed. */
export const HEARTBEAT_TTL_MS = 5000;
const HEARTBEAT_EVERY_MS = 1500;
const REAP_EVERY_MS = 2000;

interface Envelope {
	/** The publishing process. */
	o: string;
	m?: Message;
	e?: { room: string; frame: ServerFrame };
}

const key = {
	proc: (id: string) => `hubbub:proc:${id}`,
	procs: "hubbub:procs",
	procRooms: (id: string) => `hubbub:proc:${id}:rooms`,
	procNames: (id: string) => `hubbub:proc:${id}:names`,
	name: (lower: string) => `hubbub:name:${lower}`,
	room: (room: string) => `hubbub:room:${room}`,
	reap: (id: string) => `hubbub:reap:${id}`,
};

export interface ClusterHooks {
	deliver: Deliver;
	deliverEvent: DeliverEvent;
	/** After a reconnect: read what was missed while Redis was away. */
	catchUp: () => void;
	/** This process's own names and memberships, to register again after a reconnect. */
	local: () => { names: string[]; rooms: [room: string, names: string[]][] };
}

/**
 * One process's link to the cluster. Each committed message is delivered
 * locally at once and published to Redis once; other processes hand it to
 * their sockets through their own topics. Names and members live in Redis
 * beside a heartbeat per process; a process that stops beating is reaped by
 * the others, who tell its rooms that its members left.
 *
 * Redis may vanish at any time: sends still commit and reach local members,
 * presence answers from local knowledge, and on reconnecting this process
 * registers itself again and catches up every room from the store.
 */
export class RedisCluster implements Bus, Presence {
	readonly id = crypto.randomUUID().slice(0, 12);
	private pub?: RedisClient;
	private sub?: RedisClient;
	private up = false;
	private everUp = false;
	private closed = false;
	private attempt = 0;
	private retry?: ReturnType<typeof setTimeout>;
	private readonly timers: ReturnType<typeof setInterval>[] = [];

	private hooks?: ClusterHooks;

	constructor(
		private readonly url: string,
		private readonly log: Logger,
		private readonly metrics: Metrics,
	) {}

	/**
	 * Starts connecting; resolves after the first attempt, whether or not Redis
	 * answered (then it keeps retrying), so a server can open its port already
	 * part of the cluster.
	 */
	async start(): Promise<void> {
		this.timers.push(setInterval(() => void this.heartbeat(), HEARTBEAT_EVERY_MS));
		this.timers.push(setInterval(() => void this.reap(), REAP_EVERY_MS));
		await this.connect();
	}

	/** Gives the cluster link its hub; from here on it delivers, and registers the hub's state on every (re)connect. */
	bind(hooks: ClusterHooks): void {
		this.hooks = hooks;
		if (this.up) void this.rejoin();
	}

	private async rejoin(): Promise<void> {
		await this.register();
		this.hooks?.catchUp();
	}

	health(): "ok" | "degraded" {
		return this.up ? "ok" : "degraded";
	}

	private async connect(): Promise<void> {
		if (this.closed) return;
		const pub = new RedisClient(this.url, {
			autoReconnect: false,
			enableOfflineQueue: false,
			connectionTimeout: 2000,
		});
		try {
			await pub.connect();
			const sub = await pub.duplicate();
			await sub.subscribe(CHANNEL, (text) => this.receive(text));
			const lost = () => this.lost(pub);
			pub.onclose = lost;
			sub.onclose = lost;
			this.pub = pub;
			this.sub = sub;
			this.up = true;
			if (this.everUp) this.metrics.redisReconnects.inc();
			this.everUp = true;
			this.attempt = 0;
			this.log.info("redis_connected", { process: this.id });
			if (this.hooks) await this.rejoin();
			else await this.heartbeat();
		} catch (e) {
			pub.close();
			this.log.warn("redis_unreachable", { error: (e as Error).message, retryInMs: this.backoff() });
			this.schedule();
		}
	}

	private backoff(): number {
		return Math.min(5000, 100 * 2 ** this.attempt);
	}

	private schedule(): void {
		if (this.closed) return;
		clearTimeout(this.retry);
		this.retry = setTimeout(() => void this.connect(), this.backoff());
		this.attempt++;
	}

	private lost(pub: RedisClient): void {
		if (this.pub !== pub) return;
		this.up = false;
		const sub = this.sub;
		this.pub = undefined;
		this.sub = undefined;
		sub?.close();
		pub.close();
		if (this.closed) return;
		this.log.warn("redis_lost", { process: this.id });
		this.schedule();
	}

	/** Runs a Redis command if connected; failures only make us degraded, never throw. */
	private async send<T>(command: string, args: string[]): Promise<T | undefined> {
		const pub = this.pub;
		if (!pub || !this.up) return undefined;
		try {
			return (await pub.send(command, args)) as T;
		} catch (e) {
			this.log.warn("redis_command_failed", { command, error: (e as Error).message });
			return undefined;
		}
	}

	// ---- bus

	publish(message: Message): void {
		this.hooks?.deliver(message);
		this.metrics.busPublished.inc();
		void this.send("PUBLISH", [CHANNEL, JSON.stringify({ o: this.id, m: message } satisfies Envelope)]);
	}

	publishEvent(room: string, frame: ServerFrame): void {
		void this.send("PUBLISH", [
			CHANNEL,
			JSON.stringify({ o: this.id, e: { room, frame } } satisfies Envelope),
		]);
	}

	private receive(text: string): void {
		let envelope: Envelope;
		try {
			envelope = JSON.parse(text) as Envelope;
		} catch {
			return;
		}
		if (envelope.o === this.id || !this.hooks) return;
		this.metrics.busReceived.inc();
		if (envelope.m) this.hooks.deliver(envelope.m);
		else if (envelope.e) this.hooks.deliverEvent(envelope.e.room, envelope.e.frame);
	}

	// ---- presence

	async claim(name: string): Promise<boolean> {
		const lower = nameKey(name);
		const set = await this.send<string | null>("SET", [key.name(lower), this.id, "NX"]);
		// Redis unreachable: this process's own check is all there is.
		if (set === undefined) return true;
		if (set === null) {
			const holder = await this.send<string | null>("GET", [key.name(lower)]);
			// Held by a live process other than this one: taken. A holder that stopped beating has let it go.
			if (holder && holder !== this.id && (await this.alive(holder))) {
				return false;
			}
			await this.send("SET", [key.name(lower), this.id]);
		}
		await this.send("SADD", [key.procNames(this.id), lower]);
		return true;
	}

	release(name: string): void {
		const lower = nameKey(name);
		void (async () => {
			if ((await this.send<string | null>("GET", [key.name(lower)])) === this.id)
				await this.send("DEL", [key.name(lower)]);
			await this.send("SREM", [key.procNames(this.id), lower]);
		})();
	}

	async enter(room: string, name: string): Promise<void> {
		await this.send("HSET", [key.room(room), nameKey(name), JSON.stringify({ n: name, p: this.id })]);
		await this.send("SADD", [key.procRooms(this.id), room]);
	}

	exit(room: string, name: string): void {
		void this.send("HDEL", [key.room(room), nameKey(name)]);
	}

	async members(room: string): Promise<string[]> {
		const all = await this.send<Record<string, string>>("HGETALL", [key.room(room)]);
		if (!all) return [];
		const names: string[] = [];
		for (const value of Object.values(all)) {
			try {
				const entry = JSON.parse(value) as { n: string; p: string };
				if (entry.p !== this.id) names.push(entry.n);
			} catch {
				// Not ours to read.
			}
		}
		return names;
	}

	// ---- liveness

	/** Whether a process's heartbeat is current; unknown (Redis away) counts as alive, so nobody is reaped by mistake. */
	private async alive(id: string): Promise<boolean> {
		const n = await this.send<number | boolean>("EXISTS", [key.proc(id)]);
		return n === undefined || Number(n) > 0;
	}

	private async heartbeat(): Promise<void> {
		await this.send("SET", [key.proc(this.id), "1", "PX", String(HEARTBEAT_TTL_MS)]);
	}

	/** Puts this process back in Redis: heartbeat, its names and its members. */
	private async register(): Promise<void> {
		await this.heartbeat();
		await this.send("SADD", [key.procs, this.id]);
		const { names, rooms } = this.hooks?.local() ?? { names: [], rooms: [] };
		for (const name of names) await this.send("SET", [key.name(nameKey(name)), this.id, "NX"]);
		if (names.length > 0) await this.send("SADD", [key.procNames(this.id), ...names.map((n) => nameKey(n))]);
		for (const [room, members] of rooms) for (const name of members) await this.enter(room, name);
	}

	/** Removes the members and names of processes whose heartbeat stopped, telling their rooms. */
	private async reap(): Promise<void> {
		const procs = await this.send<string[]>("SMEMBERS", [key.procs]);
		for (const id of procs ?? []) {
			if (id === this.id || (await this.alive(id))) continue;
			if ((await this.send<string | null>("SET", [key.reap(id), this.id, "NX", "PX", "30000"])) === null)
				continue;
			this.log.info("process_reaped", { process: id });
			for (const room of (await this.send<string[]>("SMEMBERS", [key.procRooms(id)])) ?? []) {
				const all = (await this.send<Record<string, string>>("HGETALL", [key.room(room)])) ?? {};
				for (const [lower, value] of Object.entries(all)) {
					let entry: { n: string; p: string };
					try {
						entry = JSON.parse(value);
					} catch {
						continue;
					}
					if (entry.p !== id) continue;
					await this.send("HDEL", [key.room(room), lower]);
					const gone: ServerFrame = { type: "presence", room, name: entry.n, online: false };
					this.hooks?.deliverEvent(room, gone);
					this.publishEvent(room, gone);
				}
			}
			for (const lower of (await this.send<string[]>("SMEMBERS", [key.procNames(id)])) ?? []) {
				if ((await this.send<string | null>("GET", [key.name(lower)])) === id)
					await this.send("DEL", [key.name(lower)]);
			}
			await this.send("DEL", [key.procRooms(id), key.procNames(id)]);
			await this.send("SREM", [key.procs, id]);
		}
	}

	async close(): Promise<void> {
		this.closed = true;
		clearTimeout(this.retry);
		for (const t of this.timers) clearInterval(t);
		// Leave at once rather than waiting to be reaped.
		await this.send("DEL", [key.proc(this.id)]);
		this.sub?.close();
		this.pub?.close();
		this.up = false;
	}
}
