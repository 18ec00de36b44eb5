// Settings from command-line flags and the environment; a bad one is a ConfigError (exit status 2).
import { parseArgs } from "node:util";
import { LEVELS, type Level } from "./log.ts";

export interface Config {
	port: number;
	host: string;
	db: string;
	/** Allowed `Origin` values; empty means "same host as the request", `*` means any. */
	origins: string[];
	logLevel: Level;
}

export class ConfigError extends Error {
	override name = "ConfigError";
}

export const HELP = `hubbub: a small real-time chat server

Usage: hubbub [options]

Options:
  --port N          port to listen on (env PORT; default 3000; 0 picks a free one)
  --host ADDRESS    address to listen on (env HOST; default 0.0.0.0)
  --db PATH         SQLite database file (default ./hubbub.db; ":memory:" keeps nothing)
  --origin ORIGIN   allow WebSocket upgrades from this page origin (repeatable; "*" allows any;
                    default: only pages served from the same host)
  --log-level L     debug, info, warn or error (env LOG_LEVEL; default info)
  --help            print this help and exit
  --version         print the version and exit
`;

export type Parsed = { kind: "run"; config: Config } | { kind: "help" } | { kind: "version" };

function port(raw: string, from: string): number {
	if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) {
		throw new ConfigError(`${from} must be a port number from 0 to 65535, not ${JSON.stringify(raw)}`);
	}
	return Number(raw);
}

/** Reads flags first, then the environment, then defaults. Never exits; throws ConfigError. */
export function parseConfig(argv: string[], env: Record<string, string | undefined>): Parsed {
	let values: Record<string, string | boolean | string[] | undefined>;
	try {
		({ values } = parseArgs({
			args: argv,
			strict: true,
			allowPositionals: false,
			options: {
				port: { type: "string" },
				host: { type: "string" },
				db: { type: "string" },
				origin: { type: "string", multiple: true },
				"log-level": { type: "string" },
				help: { type: "boolean" },
				version: { type: "boolean" },
			},
		}));
	} catch (e) {
		throw new ConfigError((e as Error).message.split("\n")[0] ?? "invalid arguments");
	}
	if (values.help) return { kind: "help" };
	if (values.version) return { kind: "version" };

	const portFlag = values.port as string | undefined;
	const host = (values.host as string | undefined) ?? env.HOST ?? "0.0.0.0";
	const db = (values.db as string | undefined) ?? "hubbub.db";
	const logLevel = (values["log-level"] as string | undefined) ?? env.LOG_LEVEL ?? "info";
	if (host.trim() === "") throw new ConfigError("--host must not be empty");
	if (db.trim() === "") throw new ConfigError("--db must not be empty");
	if (!(LEVELS as readonly string[]).includes(logLevel)) {
		throw new ConfigError(`--log-level must be one of ${LEVELS.join(", ")}, not ${JSON.stringify(logLevel)}`);
	}
	const origins = ((values.origin as string[] | undefined) ?? []).map((o) => o.toLowerCase());
	for (const o of origins) {
		if (o !== "*" && !/^https?:\/\/[^/\s]+$/.test(o)) {
			throw new ConfigError(
				`--origin must look like https://chat.example.com or be "*", not ${JSON.stringify(o)}`,
			);
		}
	}
	return {
		kind: "run",
		config: {
			port: portFlag !== undefined ? port(portFlag, "--port") : env.PORT ? port(env.PORT, "PORT") : 3000,
			host,
			db,
			origins,
			logLevel: logLevel as Level,
		},
	};
}
