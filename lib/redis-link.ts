// One process's connection to Redis, shared by the bus and presence: a command connection, a subscriber connection, the reconnect loop and the heartbeat.
import { RedisClient } from "bun";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** A process whose heartbeat key is older than this is dead; its members are removed. */
export const HEARTBEAT_TTL_MS = 5000;
const HEARTBEAT_EVERY_MS = 1500;
/** A command unanswered this long means the connection is gone, whatever TCP says. */
const COMMAND_TIMEOUT_MS = 3000;

/** The bus's other processes use another store: joining would mix two deployments. */
export class ForeignStoreError extends Error {
	override name = "ForeignStoreError";
}

class Unanswered extends Error {
	override name = "Unanswered";
}

export interface LinkOptions {
	url: string;
	/** Namespace of every key and channel of this deployment, e.g. `hubbub:3k9x0q2a`. */
	prefix: string;
	/** This process's store, as `id/epoch`: every process on one prefix must have the same. */
	store: string;
	log: Logger;
	metrics: Metrics;
	/** How long a command may go unanswered before the connection counts as lost (default 3 s). */
	commandTimeoutMs?: number;
	/** First and longest wait between connection attempts. */
	backoffMs?: { min: number; max: number };
}

interface Listening {
	onMessage: (text: string) => void;
	/** Runs once the subscription is live (not after a reconnect: `onUp` covers those). */
	onLive?: () => void;
}

const CONNECTION = { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: 2000 } as const;

/**
 * Registers this process under the prefix, in one step, unless a live process
 * there uses another store; then returns that store's name instead.
 * KEYS[1] the set of process ids; ARGV prefix, own id, own store, heartbeat ms.
 */
const JOIN = `
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
	if id ~= ARGV[2] then
		local other = redis.call('GET', ARGV[1] .. ':proc:' .. id)
		if other and other ~= ARGV[3] then return other end
	end
end
redis.call('SET', ARGV[1] .. ':proc:' .. ARGV[2], ARGV[3], 'PX', ARGV[4])
redis.call('SADD', KEYS[1], ARGV[2])
return false`;

/**
 * Redis may vanish at any time. Commands then answer `undefined` at once
 * (never throw, never queue), `health()` says degraded, and the link retries
 * with backoff; once back, it subscribes again to every channel still wanted
 * and runs the `onUp` listeners (the bus catches up, presence registers again).
 * No connection outlives a failed attempt or `close()`.
 */
export class RedisLink {
	readonly id = crypto.randomUUID().slice(0, 12);
	readonly prefix: string;
	private pub?: RedisClient;
	private sub?: RedisClient;
	/** Clients of an attempt in progress, so `close()` can end them too. */
	private connecting: RedisClient[] = [];
	/** Channels subscribed on the current `sub`. */
	private live = new Set<string>();
	/** Waiting for a channel's subscription to be live, by channel. */
	private readonly waiting = new Map<string, (() => void)[]>();
	/** Redis pub/sub ignores the database number; channel names carry it, so two databases never share one. */
	private readonly db: string;
	private readonly wanted = new Map<string, Listening>();
	/** Per channel: the subscribe/unsubscribe in flight, so they apply in call order. */
	private readonly syncing = new Map<string, Promise<void>>();
	private readonly upListeners: (() => void | Promise<void>)[] = [];
	private up = false;
	private everUp = false;
	private closed = false;
	private started?: Promise<void>;
	private attempt = 0;
	private retry?: ReturnType<typeof setTimeout>;
	private beat?: ReturnType<typeof setInterval>;
	/** Called when Redis is reachable but another store's processes hold the prefix, after start-up. */
	onForeignStore?: (e: ForeignStoreError) => void;

	constructor(private readonly options: LinkOptions) {
		this.prefix = options.prefix;
		this.db = new URL(options.url).pathname.replace(/^\//, "") || "0";
	}

	/** A key or channel in this deployment's namespace. */
	key(...parts: string[]): string {
		return [this.prefix, ...parts].join(":");
	}

	/**
	 * Makes the first attempt; resolves after it whether or not Redis answered
	 * (then it keeps retrying), so a server can open its port already part of
	 * the cluster. Rejects with ForeignStoreError when the prefix belongs to
	 * another store's processes. Calling it again returns the same attempt.
	 */
	start(): Promise<void> {
		this.started ??= (async () => {
			this.beat = setInterval(() => {
				this.heartbeat().catch(() => {});
			}, HEARTBEAT_EVERY_MS);
			try {
				await this.connect(true);
			} catch (e) {
				await this.close();
				throw e;
			}
		})();
		return this.started;
	}

	/** A room's channel: its committed messages, presence and typing. */
	roomChannel(room: string): string {
		return this.key(`db${this.db}`, "room", room);
	}

	/**
	 * Resolves once `channel`'s subscription is live, at once when it is not
	 * wanted or Redis is away, and after `timeoutMs` at the latest: a read
	 * made after it misses nothing published to the channel later.
	 */
	whenLive(channel: string, timeoutMs = 2000): Promise<void> {
		if (!this.up || !this.wanted.has(channel) || this.live.has(channel)) return Promise.resolve();
		return new Promise((resolve) => {
			const timer = setTimeout(resolve, timeoutMs);
			const list = this.waiting.get(channel) ?? [];
			list.push(() => {
				clearTimeout(timer);
				resolve();
			});
			this.waiting.set(channel, list);
		});
	}

	/** Releases whoever waits for `channels` (all of them without), live or given up on. */
	private wake(channels?: Iterable<string>): void {
		for (const channel of channels ?? [...this.waiting.keys()]) {
			for (const resolve of this.waiting.get(channel) ?? []) resolve();
			this.waiting.delete(channel);
		}
	}

	/** Runs after every (re)connect, and when this process finds it was taken for dead. */
	onUp(listener: () => void | Promise<void>): void {
		this.upListeners.push(listener);
	}

	health(): "ok" | "degraded" {
		return this.up ? "ok" : "degraded";
	}

	/** Runs a command if connected; undefined when Redis is away or the command failed. */
	async send<T>(command: string, args: string[]): Promise<T | undefined> {
		const pub = this.pub;
		if (!pub || !this.up) return undefined;
		try {
			// A Redis that stops answering (frozen, or cut off without a reset) must not hold a hello or a join for ever.
			return (await this.within(pub.send(command, args))) as T;
		} catch (e) {
			this.options.log.warn("redis_command_failed", { command, error: (e as Error).message });
			// Unanswered: the connection is gone, whatever TCP says.
			if (e instanceof Unanswered) this.lost(pub);
			return undefined;
		}
	}

	/** Runs a Lua script (EVAL: Redis caches it by its hash). */
	script<T>(lua: string, keys: string[], args: string[]): Promise<T | undefined> {
		return this.send<T>("EVAL", [lua, String(keys.length), ...keys, ...args]);
	}

	/** Wants `channel`'s messages from now on (and again after every reconnect). */
	listen(channel: string, onMessage: (text: string) => void, onLive?: () => void): void {
		this.wanted.set(channel, { onMessage, onLive });
		this.sync(channel);
	}

	unlisten(channel: string): void {
		this.wanted.delete(channel);
		this.sync(channel);
	}

	/** Channels subscribed right now (for tests and metrics). */
	get listening(): number {
		return this.live.size;
	}

	private readonly dispatch = (text: string, channel: string): void => {
		this.options.metrics.busReceived.inc();
		this.options.metrics.busReceivedBytes.inc(Buffer.byteLength(text));
		this.wanted.get(channel)?.onMessage(text);
	};

	/** Brings one channel's subscription in line with `wanted`, after whatever is in flight for it. */
	private sync(channel: string): void {
		const next = (this.syncing.get(channel) ?? Promise.resolve()).then(() => this.syncNow(channel));
		this.syncing.set(channel, next);
		next
			.catch((e) => {
				// A subscriber that refuses a command is not to be trusted: start over.
				this.options.log.warn("redis_subscribe_failed", { channel, error: (e as Error).message });
				if (this.pub) this.lost(this.pub);
			})
			.finally(() => {
				if (this.syncing.get(channel) === next) this.syncing.delete(channel);
			});
	}

	private async syncNow(channel: string): Promise<void> {
		const sub = this.sub;
		if (!sub || !this.up) return;
		const want = this.wanted.get(channel);
		const live = this.live;
		if (want && !live.has(channel)) {
			await sub.subscribe(channel, this.dispatch);
			if (this.sub !== sub) return;
			live.add(channel);
			this.wake([channel]);
			want.onLive?.();
		} else if (!want && live.has(channel)) {
			live.delete(channel);
			await sub.unsubscribe(channel);
		}
	}

	private async connect(first = false): Promise<void> {
		if (this.closed) return;
		const pub = new RedisClient(this.options.url, CONNECTION);
		const sub = new RedisClient(this.options.url, CONNECTION);
		this.connecting = [pub, sub];
		try {
			await pub.connect();
			const other = await this.within(
				pub.send("EVAL", [
					JOIN,
					"1",
					this.key("procs"),
					this.prefix,
					this.id,
					this.options.store,
					String(HEARTBEAT_TTL_MS),
				]),
			);
			if (other) throw this.foreign(String(other));
			await sub.connect();
			const channels = [...this.wanted.keys()];
			if (channels.length > 0) await this.within(sub.subscribe(channels, this.dispatch));
			if (this.closed) throw new Error("closed while connecting");
			this.connecting = [];
			const lost = () => this.lost(pub);
			pub.onclose = lost;
			sub.onclose = lost;
			this.pub = pub;
			this.sub = sub;
			this.live = new Set(channels);
			this.up = true;
			this.wake(channels);
			if (this.everUp) this.options.metrics.redisReconnects.inc();
			this.everUp = true;
			this.attempt = 0;
			this.options.log.info("redis_connected", { process: this.id, prefix: this.prefix });
			// Wanted or dropped while connecting.
			for (const channel of new Set([...this.wanted.keys(), ...channels])) this.sync(channel);
			await this.runUpListeners();
		} catch (e) {
			this.connecting = [];
			pub.close();
			sub.close();
			if (this.closed) return;
			if (e instanceof ForeignStoreError) {
				this.options.log.error("redis_foreign_store", { error: e.message });
				if (first) throw e;
				this.onForeignStore?.(e);
			} else {
				this.options.log.warn("redis_unreachable", {
					error: (e as Error).message,
					retryInMs: this.backoff(),
				});
			}
			this.schedule();
		}
	}

	/** `work`, or a rejection once it has taken longer than a command may. */
	private async within<T>(work: Promise<T>): Promise<T> {
		let timer: ReturnType<typeof setTimeout> | undefined;
		const ms = this.options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS;
		const timeout = new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Unanswered(`no answer within ${ms} ms`)), ms);
		});
		try {
			return await Promise.race([work, timeout]);
		} finally {
			clearTimeout(timer);
		}
	}

	private foreign(other: string): ForeignStoreError {
		return new ForeignStoreError(
			`the processes on Redis prefix "${this.prefix}" serve another database, or another epoch of it ` +
				`(theirs is ${other}, this one is ${this.options.store}): give each deployment its own --redis-prefix, ` +
				"or point this process at their database",
		);
	}

	private async runUpListeners(): Promise<void> {
		for (const listener of this.upListeners) {
			try {
				await listener();
			} catch (e) {
				this.options.log.warn("redis_rejoin_failed", { error: (e as Error).message });
			}
		}
	}

	private backoff(): number {
		const { min, max } = this.options.backoffMs ?? { min: 100, max: 5000 };
		return Math.min(max, min * 2 ** this.attempt);
	}

	private schedule(): void {
		if (this.closed) return;
		clearTimeout(this.retry);
		this.retry = setTimeout(() => {
			this.connect().catch(() => {});
		}, this.backoff());
		this.attempt++;
	}

	private lost(pub: RedisClient): void {
		if (this.pub !== pub) return;
		this.up = false;
		const sub = this.sub;
		this.pub = undefined;
		this.sub = undefined;
		this.live = new Set();
		this.wake();
		sub?.close();
		pub.close();
		if (this.closed) return;
		this.options.log.warn("redis_lost", { process: this.id });
		this.schedule();
	}

	/**
	 * Renews this process's heartbeat. If it had expired (the process stalled,
	 * and others may have reaped its names and members), registers again.
	 */
	private async heartbeat(): Promise<void> {
		const before = await this.send<string | null>("SET", [
			this.key("proc", this.id),
			this.options.store,
			"PX",
			String(HEARTBEAT_TTL_MS),
			"GET",
		]);
		if (before !== null) return;
		this.options.log.warn("redis_heartbeat_expired", { process: this.id });
		await this.send("SADD", [this.key("procs"), this.id]);
		await this.runUpListeners();
	}

	/** Leaves at once (the others reap this process's names and members), and closes every connection. */
	async close(): Promise<void> {
		if (this.closed) return;
		this.closed = true;
		clearTimeout(this.retry);
		clearInterval(this.beat);
		await this.send("DEL", [this.key("proc", this.id)]);
		for (const client of this.connecting) client.close();
		this.connecting = [];
		this.up = false;
		this.wake();
		this.sub?.close();
		this.pub?.close();
		this.pub = undefined;
		this.sub = undefined;
	}
}
