// Structured logs: one JSON object per line on stdout, filtered by level. A log that cannot be
// written (reader gone: EPIPE; disk full) is counted, never fatal: chat matters more than its log.
export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];

export type Fields = Record<string, unknown>;

export interface Logger {
	debug(event: string, fields?: Fields): void;
	info(event: string, fields?: Fields): void;
	warn(event: string, fields?: Fields): void;
	error(event: string, fields?: Fields): void;
}

let stdoutGuarded = false;

/** Writes to stdout; a failure, thrown or reported later as an 'error' event, calls `failed` instead of ending the process. */
export function stdoutWriter(failed: () => void): (line: string) => void {
	if (!stdoutGuarded) {
		stdoutGuarded = true;
		// Without a listener an asynchronous EPIPE on stdout is an uncaught error.
		process.stdout.on("error", () => {});
	}
	return (line) => {
		try {
			process.stdout.write(line, (e) => {
				if (e) failed();
			});
		} catch {
			failed();
		}
	};
}

/** `failed` is told of every line that could not be written (hubbub counts them in /metrics). */
export function createLogger(
	min: Level,
	write?: (line: string) => void,
	failed: () => void = () => {},
): Logger {
	const out = write ?? stdoutWriter(failed);
	const floor = LEVELS.indexOf(min);
	const at =
		(level: Level) =>
		(event: string, fields?: Fields): void => {
			if (LEVELS.indexOf(level) < floor) return;
			try {
				out(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
			} catch {
				failed();
			}
		};
	return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
