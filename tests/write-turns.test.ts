// lib/write-turns.ts: a store's sends and its search thread take turns at the SQLite file, the sends first.
import { expect, test } from "bun:test";
import { newTurns, sendsWaiting, stepDone, stepEnded, stepTurn } from "../lib/write-turns.ts";

/** Resolves true if `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
	return Promise.race([p.then(() => true), Bun.sleep(ms).then(() => false)]);
}

test("a search step waits while sends wait, and starts once they have committed", async () => {
	const turns = newTurns();
	sendsWaiting(turns, true);
	const step = stepTurn(turns, 10_000);
	expect(await settlesWithin(step, 50)).toBe(false);
	sendsWaiting(turns, false);
	expect(await settlesWithin(step, 1000)).toBe(true);
	stepEnded(turns);
});

test("under a flood of sends a step still gets its turn after the longest wait", async () => {
	const turns = newTurns();
	sendsWaiting(turns, true);
	expect(await settlesWithin(stepTurn(turns, 30), 1000)).toBe(true);
	stepEnded(turns);
});

test("a commit waits for a step in progress, and not for one that has ended", async () => {
	const turns = newTurns();
	await stepTurn(turns, 10_000);
	sendsWaiting(turns, true);
	const commit = stepDone(turns, 10_000);
	expect(await settlesWithin(commit, 50)).toBe(false);
	stepEnded(turns);
	expect(await settlesWithin(commit, 1000)).toBe(true);
	expect(await settlesWithin(stepDone(turns, 10_000), 50)).toBe(true);
});
