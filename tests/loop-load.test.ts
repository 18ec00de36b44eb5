// lib/loop-load.ts: the event loop's load, which the search index's hand-over waits on, counts this thread only.
import { expect, test } from "bun:test";
import { loopLoad } from "../lib/loop-load.ts";

function spin(ms: number): void {
	const end = performance.now() + ms;
	while (performance.now() < end) {}
}

test("a busy event loop reads as busy, an idle one as idle, though another thread of the process spins", async () => {
	const load = loopLoad();
	spin(300);
	// Not near 1: on a shared machine the spinning thread itself waits for the CPU now and then.
	expect(load()).toBeGreaterThan(0.3);
	// A thread of the process busy the whole while (as the search thread is): not the loop's load.
	const worker = new Worker(
		URL.createObjectURL(
			new Blob([
				"self.onmessage = () => { const end = performance.now() + 400; while (performance.now() < end) {} postMessage('done'); };",
			]),
		),
	);
	const done = new Promise((resolve) => {
		worker.onmessage = resolve;
	});
	worker.postMessage("go");
	load();
	await done;
	expect(load()).toBeLessThan(0.25);
	worker.terminate();
});
