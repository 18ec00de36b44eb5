// Whether sends can succeed right now: free space on the database's disk, read once a second off the send path.
import { statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";

function formatBytes(n: number): string {
	for (const [unit, size] of [
		["GiB", 1024 ** 3],
		["MiB", 1024 ** 2],
		["KiB", 1024],
	] as const) {
		if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
	}
	return `${n} bytes`;
}

/** Watches the free space where the SQLite file lives; `problem` is a sentence while it is below the floor. */
export class DiskFloor {
	problem: string | undefined;
	private readonly timer: ReturnType<typeof setInterval> | undefined;
	private readonly folder: string;

	/** `dbPath` undefined (PostgreSQL, :memory:) or `floor` 0: nothing to watch. */
	constructor(
		dbPath: string | undefined,
		private readonly floor: number,
		private readonly onChange: (problem: string | undefined) => void = () => {},
	) {
		this.folder = dbPath ? dirname(resolve(dbPath)) : "";
		if (!dbPath || floor <= 0) return;
		this.check();
		this.timer = setInterval(() => this.check(), 1000);
		this.timer.unref?.();
	}

	/** Free bytes for an unprivileged writer on the database's disk. */
	free(): number | undefined {
		try {
			const s = statfsSync(this.folder);
			return Number(s.bavail) * Number(s.bsize);
		} catch {
			return undefined;
		}
	}

	check(): void {
		const free = this.free();
		const before = this.problem;
		this.problem =
			free !== undefined && free < this.floor
				? `the disk holding the database has ${formatBytes(free)} free, below the --min-free-disk floor of ${formatBytes(this.floor)}`
				: undefined;
		if (this.problem !== before) this.onChange(this.problem);
	}

	stop(): void {
		if (this.timer) clearInterval(this.timer);
	}
}
