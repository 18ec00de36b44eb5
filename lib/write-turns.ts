// Who writes the SQLite file next, between a store's sends (main thread) and its search thread: the sends first.

/*
 * Both write the database and SQLite lets one write transaction in at a
 * time. The search thread's writes of it are short (the erasure queue's
 * deletions, the WAL's truncation; its index has a file of its own), but it
 * runs at the lowest priority: left to SQLite, a send that finds it writing
 * fails with SQLITE_BUSY and tries again 2, 4, 8 ms later. Instead they take
 * turns through two flags in shared memory: the search thread writes only
 * while no send waits (woken right after a commit, so it writes while the
 * next sends gather for 1 ms), and a commit that finds it writing waits
 * exactly until it is done. Another process on the file is still met by
 * SQLite's lock and the retries.
 */

const SENDS_WAITING = 0;
const STEP_RUNNING = 1;

/** The shared flags, made by the store and handed to its search thread. */
export function newTurns(): Int32Array {
	return new Int32Array(new SharedArrayBuffer(8));
}

/** Main thread: sends are gathering for a commit (true), or none waits any more (false). */
export function sendsWaiting(turns: Int32Array, waiting: boolean): void {
	Atomics.store(turns, SENDS_WAITING, waiting ? 1 : 0);
	if (!waiting) Atomics.notify(turns, SENDS_WAITING);
}

/** Main thread, before a commit (sends marked waiting): resolves when no search step holds the file, or after `maxMs`. */
export async function stepDone(turns: Int32Array, maxMs: number): Promise<void> {
	const deadline = Date.now() + maxMs;
	while (Atomics.load(turns, STEP_RUNNING) === 1) {
		const left = deadline - Date.now();
		if (left <= 0) return;
		const waiting = Atomics.waitAsync(turns, STEP_RUNNING, 1, left);
		if (waiting.async) await waiting.value;
	}
}

/**
 * Search thread, before a step: waits while sends wait (for at most
 * `maxWaitMs`, so the index never stops under a flood of sends), then marks
 * its step running. Call stepEnded after the step, whatever happens.
 */
export async function stepTurn(turns: Int32Array, maxWaitMs: number): Promise<void> {
	const deadline = Date.now() + maxWaitMs;
	for (;;) {
		while (Atomics.load(turns, SENDS_WAITING) === 1) {
			const left = deadline - Date.now();
			if (left <= 0) break;
			const waiting = Atomics.waitAsync(turns, SENDS_WAITING, 1, left);
			if (waiting.async) await waiting.value;
		}
		Atomics.store(turns, STEP_RUNNING, 1);
		// Both flags are set and read in this order on both sides: if a send came meanwhile, it goes first.
		if (Atomics.load(turns, SENDS_WAITING) === 0 || Date.now() >= deadline) return;
		stepEnded(turns);
	}
}

/** Search thread: its step is over (committed or rolled back). */
export function stepEnded(turns: Int32Array): void {
	Atomics.store(turns, STEP_RUNNING, 0);
	Atomics.notify(turns, STEP_RUNNING);
}
