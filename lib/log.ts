// Structured logs: one JSON object per line on stdout, filtered by level.
export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];

export type Fields = Record<string, unknown>;

export interface Logger {
	debug(event: string, fields?: Fields): void;
	info(event: string, fields?: Fields): void;
	warn(event: string, fields?: Fields): void;
	error(event: string, fields?: Fields): void;
}

export function createLogger(
	min: Level,
	write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
	const floor = LEVELS.indexOf(min);
	const at =
		(level: Level) =>
		(event: string, fields?: Fields): void => {
			if (LEVELS.indexOf(level) < floor) return;
			write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
		};
	return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
