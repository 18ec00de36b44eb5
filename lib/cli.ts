// Subcommands run on the host that holds the database (`hubbub backup …`), never over HTTP: one table, one dispatcher.
import { parseArgs } from "node:util";
import { ADMIN_OPTIONS, ADMIN_USAGE, adminCommand } from "./admin-cli.ts";
import { backupSqlite, pgDumpAdvice, pruneCopies } from "./backup.ts";
import { CommandError } from "./command-error.ts";
import { exportHistory, FORMATS, type Format, importHistory, openArchive } from "./export.ts";
import { renewEpoch, restoreSqlite } from "./restore.ts";
import { isPostgresUrl } from "./store.ts";

/** What a command prints: `out` for results, `err` for refusals and advice. */
export interface Io {
	out(line: string): void;
	err(line: string): void;
	env: Record<string, string | undefined>;
}

type Values = Record<string, string | boolean | undefined>;

interface Command {
	usage: string;
	help: string;
	options: Record<string, { type: "string" | "boolean"; help: string }>;
	/** Positional arguments: at least `min`, at most `max`. */
	args: [min: number, max: number];
	run(args: string[], values: Values, db: string, io: Io): Promise<void>;
}

const DB_OPTION = {
	type: "string",
	help: "SQLite file or postgres:// URL (env DATABASE_URL; default hubbub.db)",
} as const;

/**
 * Every subcommand, once: dispatch, argument checks and `hubbub --help` come
 * from this table. A new one (e.g. `admin`) is one more entry.
 */
export const COMMANDS: Record<string, Command> = {
	admin: {
		usage: ADMIN_USAGE,
		help: "accounts (--auth accounts): make an account, print a one-time password-reset link (a lost admin password), or list the accounts",
		options: { db: DB_OPTION, ...ADMIN_OPTIONS },
		args: [1, 2],
		run: (args, values, db, io) => adminCommand(args, values, db, io),
	},
	backup: {
		usage: "hubbub backup FILE|DIR [--db PATH] [--keep N]",
		help: "copy a live SQLite database consistently (safe while the server runs and takes writes); a DIR gets a timestamped file",
		options: {
			db: DB_OPTION,
			keep: { type: "string", help: "then keep only the newest N copies named like this one in its folder" },
		},
		args: [1, 1],
		async run([dest], values, db, io) {
			const keep = values.keep === undefined ? undefined : count(String(values.keep), "--keep");
			if (isPostgresUrl(db)) {
				// Refusing (not exiting 0) keeps a scheduled job from passing while nothing is backed up.
				throw new CommandError(pgDumpAdvice(db, dest as string));
			}
			const copy = backupSqlite(db, dest as string);
			io.out(
				`backup ${copy.file}: ${formatBytes(copy.bytes)}, ${copy.messages} messages, ${(copy.ms / 1000).toFixed(1)} s`,
			);
			if (keep !== undefined) {
				for (const removed of pruneCopies(copy.file, keep)) io.out(`removed older copy ${removed}`);
			}
		},
	},
	restore: {
		usage: "hubbub restore FILE [--db PATH]",
		help: "check a backup, migrate it if older, and put it in place of --db with a new epoch (stop the server first)",
		options: { db: DB_OPTION },
		args: [1, 1],
		async run([file], _values, db, io) {
			if (isPostgresUrl(db)) throw new CommandError(pgDumpAdvice(db, file as string, "restore"));
			const r = await restoreSqlite(file as string, db);
			io.out(
				`restored ${r.from} as ${r.to}: schema ${r.schema}, ${r.messages} messages, new epoch ${r.epoch} (every page starts its rooms afresh)`,
			);
			if (r.sessionsEnded > 0) io.out(`${r.sessionsEnded} sign-in sessions ended: everyone signs in again`);
			if (r.previous) io.out(`the database it replaced is kept as ${r.previous}`);
		},
	},
	"new-epoch": {
		usage: "hubbub new-epoch [--db PATH|URL]",
		help: "give the database a new epoch after restoring it by other means (pg_restore, a copied file); stop every server first",
		options: { db: DB_OPTION },
		args: [0, 0],
		async run(_args, _values, db, io) {
			const { before, after } = await renewEpoch(db);
			io.out(`epoch ${before} → ${after}: every page starts its rooms afresh`);
		},
	},
	export: {
		usage: "hubbub export [--db PATH|URL] [--room ROOM] [--format jsonl|markdown] [--out FILE]",
		help: "write the history of one room or all rooms, oldest first, as JSON Lines (for import) or readable Markdown",
		options: {
			db: DB_OPTION,
			room: { type: "string", help: "only this room (default: every room)" },
			format: { type: "string", help: "jsonl (default) or markdown" },
			out: { type: "string", help: "write to FILE (default: standard output)" },
		},
		args: [0, 0],
		async run(_args, values, db, io) {
			const format = (values.format ?? "jsonl") as Format;
			if (!FORMATS.includes(format)) throw new CommandError(`--format must be one of ${FORMATS.join(", ")}`);
			const archive = await openArchive(db, { create: false });
			try {
				const n = await exportHistory(archive, {
					room: values.room as string | undefined,
					format,
					out: values.out as string | undefined,
				});
				io.err(`exported ${n} messages`);
			} finally {
				await archive.close();
			}
		},
	},
	import: {
		usage: "hubbub import FILE|- [--db PATH|URL] [--merge]",
		help: "load a JSON Lines export, keeping seqs and ids; running it again changes nothing; all or nothing",
		options: {
			db: DB_OPTION,
			merge: {
				type: "boolean",
				help: "append to rooms that already hold other messages (with new seqs) instead of refusing",
			},
		},
		args: [1, 1],
		async run([file], values, db, io) {
			const archive = await openArchive(db, { create: true });
			try {
				const r = await importHistory(archive, file as string, { merge: values.merge === true });
				io.out(
					`imported ${r.inserted} messages into ${r.rooms} rooms (${r.skipped} already there${r.merged ? `, ${r.merged} appended with new seqs` : ""})`,
				);
			} finally {
				await archive.close();
			}
		},
	},
};

function count(raw: string, what: string): number {
	const n = Number(raw);
	if (!/^\d+$/.test(raw) || n < 1) throw new CommandError(`${what} must be a whole number of at least 1`);
	return n;
}

export function formatBytes(n: number): string {
	if (n < 1024) return `${n} B`;
	if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
	return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function isCommand(word: string | undefined): boolean {
	return word !== undefined && Object.hasOwn(COMMANDS, word);
}

export const COMMANDS_HELP = `Commands (run on the host with the database):\n${Object.values(COMMANDS)
	.map((c) => `  ${c.usage}\n      ${c.help}`)
	.join("\n")}\n`;

/** Runs `argv` (command first) and returns the exit status; never exits itself. */
export async function runCommand(argv: string[], io: Io): Promise<number> {
	const [name, ...rest] = argv;
	const command = COMMANDS[name as string];
	if (!command) {
		io.err(`hubbub: unknown command ${JSON.stringify(name)}\n${COMMANDS_HELP}`);
		return 2;
	}
	try {
		let parsed: { values: Values; positionals: string[] };
		try {
			parsed = parseArgs({
				args: rest,
				strict: true,
				allowPositionals: true,
				options: {
					...Object.fromEntries(Object.entries(command.options).map(([k, o]) => [k, { type: o.type }])),
					help: { type: "boolean" },
				},
			}) as { values: Values; positionals: string[] };
		} catch (e) {
			throw new CommandError(`${(e as Error).message.split("\n")[0]}\nUsage: ${command.usage}`);
		}
		if (parsed.values.help) {
			const options = Object.entries(command.options)
				.map(([k, o]) => `  --${k.padEnd(10)} ${o.help}`)
				.join("\n");
			io.out(`Usage: ${command.usage}\n${command.help}\n${options}`);
			return 0;
		}
		const [min, max] = command.args;
		if (parsed.positionals.length < min || parsed.positionals.length > max) {
			throw new CommandError(
				`expected ${min === max ? min : `${min}–${max}`} argument(s)\nUsage: ${command.usage}`,
			);
		}
		const db = (parsed.values.db as string | undefined) || io.env.DATABASE_URL || "hubbub.db";
		await command.run(parsed.positionals, parsed.values, db, io);
		return 0;
	} catch (e) {
		if (e instanceof CommandError) {
			io.err(`hubbub ${name}: ${e.message}`);
			return e.status;
		}
		io.err(`hubbub ${name}: failed: ${(e as Error).message}`);
		return 1;
	}
}
