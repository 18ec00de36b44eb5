// How busy the event loop is, for work that can wait (the search index's hand-over): it waits while
// sends keep the loop busy, so they come first.

/** The CPU time this thread (the event loop) has used, in ms; the process's where a thread's is unknown. */
function threadCpuMs(): number {
	const usage = typeof process.threadCpuUsage === "function" ? process.threadCpuUsage() : process.cpuUsage();
	return (usage.user + usage.system) / 1000;
}

/**
 * A meter of the event loop's load: each call returns the share (0–1) of
 * the wall time since the previous call that this thread spent on the CPU.
 * Read on the thread it measures.
 */
export function loopLoad(): () => number {
	let at = performance.now();
	let cpu = threadCpuMs();
	return () => {
		const now = performance.now();
		const used = threadCpuMs();
		const share = now > at ? (used - cpu) / (now - at) : 0;
		at = now;
		cpu = used;
		return share;
	};
}
