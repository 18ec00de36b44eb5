// Per-room delivery order: hands each committed message of one room to this process's sockets once, in seq order, reading what it missed from the store.
import type { Message } from "../protocol.ts";
import type { Page } from "./store.ts";

/** The one store read a feed needs: a page forward from a seq. */
export interface FeedStore {
	after(room: string, after: number, limit: number): Promise<Page>;
}

export interface FeedOptions {
	/** Messages per store read; a feed further behind reads page after page. */
	pageSize: number;
	/** First and longest wait before a failed read is tried again (doubling in between). */
	retryMinMs: number;
	retryMaxMs: number;
	/** Reads failing for this long, or this many messages held ahead of a gap, and the feed gives up (see onLost). */
	giveUpMs: number;
	maxAhead: number;
	/** A store read is starting (to count them). */
	onRead(room: string): void;
	/** A read failed or made no progress; the feed tries again after a backoff. */
	onError(room: string, error: Error, attempt: number): void;
	/**
	 * The feed gave up: it forgot its head and what it held, and emits nothing
	 * until the next `align`. Whoever got this room's messages has a gap now and
	 * must be told to resume (the hub closes their sockets with CLOSE.resume).
	 */
	onLost(room: string, reason: string): void;
}

export const FEED_DEFAULTS: Omit<FeedOptions, "onRead" | "onError" | "onLost"> = {
	pageSize: 1000,
	retryMinMs: 100,
	retryMaxMs: 5000,
	giveUpMs: 30_000,
	maxAhead: 10_000,
};

/** Messages a feed keeps after emitting them (see align). */
const RECENT = 256;

interface Waiter {
	seq: number;
	resolve: () => void;
	reject: (e: Error) => void;
}

/**
 * One room's ordering on one process. Messages come from the bus in any order,
 * repeated or not at all; the feed emits each committed message exactly once
 * and in seq order. A message ahead of a gap waits while the missing ones are
 * read from the store (they are committed by then), page by page however far
 * behind it is. It never skips: if the store stays unreachable past a bound it
 * gives up loudly through `onLost` instead.
 *
 * Until the first `align` the feed has no head and drops what arrives: nobody
 * here receives the room yet, and the aligning read covers those messages.
 */
export class RoomFeed {
	/** Seq of the last message emitted; undefined until a join's read tells where the room stands. */
	private headSeq?: number;
	/** Messages that arrived ahead of a gap, by seq. */
	private readonly ahead = new Map<number, Message>();
	/** Read at least up to here (a join saw it stored). */
	private target = 0;
	/** Read until the store has nothing more (after the bus was away). */
	private toEnd = false;
	private reading = false;
	private retry?: ReturnType<typeof setTimeout>;
	private attempt = 0;
	private failingSince?: number;
	private waiters: Waiter[] = [];
	/** The last messages emitted (at most 2 × RECENT), so a join whose read the stream overtook need not read again. */
	private recent: Message[] = [];
	/** Changes when the feed gives up, so a read started before is not applied after. */
	private generation = 0;
	private closed = false;

	constructor(
		readonly room: string,
		private readonly store: FeedStore,
		private readonly emit: (message: Message) => void,
		private readonly options: FeedOptions,
	) {}

	get head(): number | undefined {
		return this.headSeq;
	}

	/** A committed message from the bus. */
	deliver(message: Message): void {
		const head = this.headSeq;
		if (head === undefined || message.seq <= head || this.closed) return;
		if (message.seq === head + 1) {
			this.send(message);
			if (this.ahead.size > 0) this.drainAhead();
			return;
		}
		if (this.ahead.size >= this.options.maxAhead) {
			this.lose(`more than ${this.options.maxAhead} messages waiting for a gap to be filled`);
			return;
		}
		this.ahead.set(message.seq, message);
		this.kick();
	}

	/** Reads everything the store holds beyond the head: the bus may have lost messages while it was away. */
	catchUp(): void {
		if (this.headSeq === undefined) return;
		this.toEnd = true;
		this.kick();
	}

	/**
	 * Lines a new subscriber up with the stream: runs `read` (whose `top` is
	 * the room's last seq as it saw it), emits stored messages the feed has not
	 * delivered yet, and calls `then` in the same turn as the stream stands at
	 * `top` plus `caught` (the messages the stream emitted while `read` was under
	 * way, oldest first). A subscriber added in `then` with what `read` returned
	 * and `caught` gets every later message once, none skipped. Rejects when a
	 * read fails.
	 */
	async align<T, R>(
		read: () => Promise<{ top: number; value: T }>,
		then: (value: T, caught: Message[]) => R,
	): Promise<R> {
		for (;;) {
			const { top, value } = await read();
			if (this.closed) throw new Error(`room ${this.room} is no longer served`);
			if (this.headSeq === undefined) this.headSeq = top;
			if (this.headSeq > top) {
				// The stream went on while we read: hand over what it emitted meanwhile, or (too much) read again.
				const caught = this.emittedAfter(top);
				if (caught) return then(value, caught);
				continue;
			}
			if (this.headSeq < top) {
				// Stored but not yet delivered here (it comes through the bus): deliver it first,
				// so the subscriber's live messages start right after what `read` returned.
				await this.reach(top);
				continue;
			}
			return then(value, []);
		}
	}

	/** The emitted messages after `seq` up to the head, if the feed still holds all of them. */
	private emittedAfter(seq: number): Message[] | undefined {
		const first = this.recent[0];
		if (!first || first.seq > seq + 1) return undefined;
		return this.recent.slice(seq + 1 - first.seq);
	}

	/** Stops for good (the room is no longer served here): no more reads, no more emits. */
	close(): void {
		this.closed = true;
		this.stopRetry();
		this.rejectWaiters(new Error(`room ${this.room} is no longer served`));
		this.ahead.clear();
	}

	/** Resolves once everything up to `seq` is emitted; rejects if a read fails meanwhile (the feed keeps trying). */
	private reach(seq: number): Promise<void> {
		if ((this.headSeq ?? 0) >= seq) return Promise.resolve();
		this.target = Math.max(this.target, seq);
		// The caller's read just succeeded, so the store answers: no need to sit out a backoff.
		this.stopRetry();
		const done = new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
		this.kick();
		return done;
	}

	private behind(): boolean {
		const head = this.headSeq;
		if (head === undefined) return false;
		return this.ahead.size > 0 || head < this.target || this.toEnd;
	}

	private kick(): void {
		if (this.reading || this.retry || this.closed || !this.behind()) return;
		this.reading = true;
		this.read()
			.catch((e: unknown) => this.failed(e instanceof Error ? e : new Error(String(e))))
			.finally(() => {
				this.reading = false;
				this.kick();
			});
	}

	/** Reads page after page until nothing is missing; a failure ends it with a retry scheduled. */
	private async read(): Promise<void> {
		const generation = this.generation;
		while (this.behind() && !this.closed) {
			const from = this.headSeq as number;
			this.options.onRead(this.room);
			const page = await this.store.after(this.room, from, this.options.pageSize);
			if (this.generation !== generation || this.closed) return;
			const first = page.messages[0];
			if (first && first.seq > (this.headSeq as number) + 1) {
				// Seqs are gap-free and commit in order, so a hole the store shows is a removed prefix
				// (retention ran while this process was behind): nobody can deliver those any more.
				this.lose(
					`seqs ${(this.headSeq as number) + 1}-${first.seq - 1} were removed before they were delivered here`,
				);
				return;
			}
			for (const m of page.messages) if (m.seq === (this.headSeq as number) + 1) this.send(m);
			this.drainAhead();
			if (!page.more) this.toEnd = false;
			if (this.headSeq === from && this.behind()) {
				throw new Error(`the store holds no message after seq ${from} although a later one is known`);
			}
			this.attempt = 0;
			this.failingSince = undefined;
		}
	}

	private failed(error: Error): void {
		if (this.closed) return;
		this.attempt++;
		this.failingSince ??= Date.now();
		this.options.onError(this.room, error, this.attempt);
		this.rejectWaiters(error);
		if (Date.now() - this.failingSince >= this.options.giveUpMs) {
			this.lose(`the store could not be read for ${this.options.giveUpMs} ms: ${error.message}`);
			return;
		}
		const { retryMinMs, retryMaxMs } = this.options;
		const wait = Math.min(retryMaxMs, retryMinMs * 2 ** (this.attempt - 1));
		// Jitter: the rooms of a process (and the processes of a cluster) do not all retry at once.
		this.retry = setTimeout(
			() => {
				this.retry = undefined;
				this.kick();
			},
			wait * (0.5 + Math.random() / 2),
		);
	}

	private lose(reason: string): void {
		this.generation++;
		this.headSeq = undefined;
		this.recent = [];
		this.ahead.clear();
		this.target = 0;
		this.toEnd = false;
		this.attempt = 0;
		this.failingSince = undefined;
		this.stopRetry();
		this.rejectWaiters(new Error(`room ${this.room}: ${reason}`));
		this.options.onLost(this.room, reason);
	}

	private send(message: Message): void {
		this.headSeq = message.seq;
		this.recent.push(message);
		// Trimmed in steps, so keeping them costs O(1) a message.
		if (this.recent.length >= 2 * RECENT) this.recent = this.recent.slice(-RECENT);
		this.emit(message);
		if (this.waiters.length > 0) this.resolveWaiters();
	}

	private drainAhead(): void {
		if (this.ahead.size === 0) return;
		for (let next = this.ahead.get((this.headSeq as number) + 1); next; ) {
			this.ahead.delete(next.seq);
			this.send(next);
			next = this.ahead.get(next.seq + 1);
		}
		for (const seq of this.ahead.keys()) if (seq <= (this.headSeq as number)) this.ahead.delete(seq);
	}

	private resolveWaiters(): void {
		const head = this.headSeq as number;
		const still: Waiter[] = [];
		for (const w of this.waiters) {
			if (w.seq <= head) w.resolve();
			else still.push(w);
		}
		this.waiters = still;
	}

	private rejectWaiters(error: Error): void {
		const waiters = this.waiters;
		this.waiters = [];
		for (const w of waiters) w.reject(error);
	}

	private stopRetry(): void {
		if (this.retry) clearTimeout(this.retry);
		this.retry = undefined;
	}
}
