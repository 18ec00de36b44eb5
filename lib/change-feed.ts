// Per-room change order: hands each edit, deletion and reaction of one room to this process's sockets once, in change order, reading what it missed from the store.
import type { ServerFrameOf } from "../protocol.ts";
import type { FeedOptions } from "./room-feed.ts";
import type { Page } from "./store.ts";

export type Update = ServerFrameOf<"update">;

/** The store reads a change feed needs. */
export interface ChangeStore {
	/** Messages whose last change is after `afterChange`, ordered by it, as they are now. */
	changes(room: string, afterChange: number, limit: number): Promise<Page>;
	/** The room's change counter. */
	lastChange(room: string): Promise<number>;
}

/** Updates a feed keeps after emitting them, so a join need not read again (see start/emittedAfter). */
const RECENT = 256;

/**
 * One room's change stream on one process, as RoomFeed is for its messages.
 * Updates come from the bus in any order, repeated or not at all; the feed
 * emits them in ascending change order and never past a hole: when an update
 * arrives ahead of one it has not seen, it reads the store's messages changed
 * after its head instead. A message changed again since shows only its
 * latest state there, under its latest number, so the numbers a reader sees
 * may skip, but the state never does: having received change N means holding
 * the current state of everything changed up to N. A store unreachable past
 * the bound makes it give up loudly through `onLost` (the hub then closes
 * the room's sockets so they resume).
 *
 * Until the first `start` the feed has no head and drops what arrives: nobody
 * here receives the room's updates yet.
 */
export class ChangeFeed {
	private headChange?: number;
	private readonly ahead = new Map<number, Update>();
	/** Read at least up to here (a join saw the counter there). */
	private target = 0;
	/** Read until the store has nothing more (the bus was away). */
	private toEnd = false;
	private reading = false;
	private retry?: ReturnType<typeof setTimeout>;
	private attempt = 0;
	private failingSince?: number;
	private waiters: { change: number; resolve: () => void; reject: (e: Error) => void }[] = [];
	/** The last updates emitted, and the highest change number emitted before them (or the head they started from). */
	private recent: Update[] = [];
	private recentFrom = 0;
	private generation = 0;
	private closed = false;

	constructor(
		readonly room: string,
		private readonly store: ChangeStore,
		private readonly emit: (update: Update) => void,
		private readonly options: FeedOptions,
	) {}

	get head(): number | undefined {
		return this.headChange;
	}

	/** An update from the bus (or from this process, once the store committed it). */
	deliver(update: Update): void {
		const head = this.headChange;
		if (head === undefined || update.change <= head || this.closed) return;
		if (update.change === head + 1) {
			this.send(update);
			this.drainAhead();
			return;
		}
		if (this.ahead.size >= this.options.maxAhead) {
			this.lose(`more than ${this.options.maxAhead} changes waiting for a gap to be filled`);
			return;
		}
		this.ahead.set(update.change, update);
		this.kick();
	}

	/** Reads every change the store has beyond the head: the bus may have lost some while it was away. */
	catchUp(): void {
		if (this.headChange === undefined) return;
		this.toEnd = true;
		this.kick();
	}

	/**
	 * For a join: reads the room's counter, makes sure everything up to it
	 * has been emitted here, and resolves with the head then: every change up
	 * to it is committed, so a reader that reads the messages after this
	 * resolves sees them all, and handed `emittedAfter(head)` in the turn it
	 * subscribes, misses nothing. (The head, not the counter read: another
	 * join may have moved the head past it meanwhile.)
	 */
	async start(): Promise<number> {
		const top = await this.store.lastChange(this.room);
		if (this.closed) throw new Error(`room ${this.room} is no longer served`);
		if (this.headChange === undefined) {
			this.headChange = top;
			this.recent = [];
			this.recentFrom = top;
		} else if (this.headChange < top) {
			await this.reach(top);
		}
		if (this.headChange === undefined) throw new Error(`room ${this.room}: its change feed gave up`);
		return this.headChange;
	}

	/** The updates emitted after change `from`, oldest first, if the feed still holds all of them. */
	emittedAfter(from: number): Update[] | undefined {
		if (this.headChange === undefined || from < this.recentFrom) return undefined;
		return this.recent.filter((u) => u.change > from);
	}

	/** Stops for good (the room is no longer served here). */
	close(): void {
		this.closed = true;
		this.stopRetry();
		this.rejectWaiters(new Error(`room ${this.room} is no longer served`));
		this.ahead.clear();
	}

	private reach(change: number): Promise<void> {
		if ((this.headChange ?? 0) >= change) return Promise.resolve();
		this.target = Math.max(this.target, change);
		this.stopRetry();
		const done = new Promise<void>((resolve, reject) => this.waiters.push({ change, resolve, reject }));
		this.kick();
		return done;
	}

	private behind(): boolean {
		const head = this.headChange;
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

	private async read(): Promise<void> {
		const generation = this.generation;
		while (this.behind() && !this.closed) {
			const from = this.headChange as number;
			// A counter value seen before this read started: the read reflects every change up to it.
			const seen = this.target;
			this.options.onRead(this.room);
			const page = await this.store.changes(this.room, from, this.options.pageSize);
			if (this.generation !== generation || this.closed) return;
			for (const m of page.messages) {
				const change = m.change ?? 0;
				if (change > (this.headChange as number))
					this.send({ type: "update", room: this.room, change, message: m });
			}
			this.drainAhead();
			if (!page.more) {
				this.toEnd = false;
				// Read to the end after the counter was seen at `seen`: every change up to it is accounted
				// for, also those whose messages retention removed since (nothing to send for them).
				if (seen > (this.headChange as number)) this.advance(seen);
			}
			if (this.headChange === from && this.behind()) {
				throw new Error(`the store holds no change after ${from} although a later one is known`);
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
		this.headChange = undefined;
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

	private send(update: Update): void {
		this.recent.push(update);
		if (this.recent.length >= 2 * RECENT) {
			const dropped = this.recent.length - RECENT;
			this.recentFrom = (this.recent[dropped - 1] as Update).change;
			this.recent = this.recent.slice(dropped);
		}
		this.emit(update);
		this.advance(update.change);
	}

	/** Moves the head (after emitting what brought it there) and wakes the joins waiting for it. */
	private advance(change: number): void {
		this.headChange = change;
		if (this.waiters.length === 0) return;
		const still = [];
		for (const w of this.waiters) {
			if (w.change <= change) w.resolve();
			else still.push(w);
		}
		this.waiters = still;
	}

	private drainAhead(): void {
		if (this.ahead.size === 0) return;
		for (let next = this.ahead.get((this.headChange as number) + 1); next; ) {
			this.ahead.delete(next.change);
			this.send(next);
			next = this.ahead.get(next.change + 1);
		}
		for (const change of this.ahead.keys())
			if (change <= (this.headChange as number)) this.ahead.delete(change);
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
