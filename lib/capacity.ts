// How many WebSocket connections this process may hold: its open-file limit less a reserve for everything else.
import { readFileSync } from "node:fs";

/** The soft limit on open files (RLIMIT_NOFILE) as the kernel reports it, or undefined off Linux. */
export function openFileLimit(): number | undefined {
	try {
		const line = readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+|unlimited)/m);
		if (!line) return undefined;
		return line[1] === "unlimited" ? undefined : Number(line[1]);
	} catch {
		return undefined;
	}
}

/**
 * Descriptors kept out of the cap: the database and its -wal/-shm, the
 * listening sockets, PostgreSQL and Redis connections, logs, and the
 * /healthz and /metrics requests that must still be answered at the cap.
 */
export function reserveFor(limit: number): number {
	return Math.max(64, Math.ceil(limit * 0.05));
}

export type Capacity = { ok: true; cap: number; limit?: number } | { ok: false; message: string };

/** The connection cap: `requested` (--max-conns) if given, never above what the open-file limit allows. */
export function connectionCap(requested: number | undefined, limit = openFileLimit()): Capacity {
	if (limit === undefined) return { ok: true, cap: requested ?? Number.POSITIVE_INFINITY };
	const allowed = limit - reserveFor(limit);
	if (allowed < 1) {
		return {
			ok: false,
			message: `the open-file limit is ${limit}, too low to serve anyone (hubbub keeps ${reserveFor(limit)} for itself); raise it (ulimit -n, or LimitNOFILE= in the systemd unit)`,
		};
	}
	if (requested !== undefined && requested > allowed) {
		return {
			ok: false,
			message: `--max-conns ${requested} is more than the open-file limit (${limit}) allows: at most ${allowed} (hubbub keeps ${reserveFor(limit)} for itself); raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit) or lower --max-conns`,
		};
	}
	return { ok: true, cap: requested ?? allowed, limit };
}
