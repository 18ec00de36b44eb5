// `hubbub admin …`: account work for the person with shell access, against the same --db as the
// server (SQLite file or PostgreSQL URL). A lost admin password is recovered with reset-password.
import { parseArgs } from "node:util";
import { AccountFailure, Accounts } from "./accounts.ts";

export const ADMIN_HELP = `Usage: hubbub admin COMMAND [options]

Commands:
  create-user NAME [--admin] [--password-stdin]
                            make an account (an admin with --admin); prints a one-time link to set
                            its password, or reads the password from standard input
  reset-password NAME       print a one-time link (valid 24 hours) that sets a new password
  list-users                list the accounts: name, role, state, created

Options:
  --db PATH|URL             the server's database (env DATABASE_URL; default hubbub.db)
  --url URL                 the address people open, for the printed links (env HUBBUB_URL;
                            default http://localhost:3000)
`;

export interface AdminIo {
	out(line: string): void;
	err(line: string): void;
	stdin(): Promise<string>;
}

const processIo: AdminIo = {
	out: (line) => process.stdout.write(`${line}\n`),
	err: (line) => process.stderr.write(`${line}\n`),
	stdin: () => Bun.stdin.text(),
};

/** Runs one admin command; resolves with the exit status (0 done, 1 refused, 2 usage or database). */
export async function runAdmin(
	argv: string[],
	env: Record<string, string | undefined>,
	io: AdminIo = processIo,
): Promise<number> {
	let parsed: ReturnType<typeof parse>;
	const parse = () =>
		parseArgs({
			args: argv,
			allowPositionals: true,
			strict: true,
			options: {
				db: { type: "string" },
				url: { type: "string" },
				admin: { type: "boolean" },
				"password-stdin": { type: "boolean" },
				help: { type: "boolean" },
			},
		});
	try {
		parsed = parse();
	} catch (e) {
		io.err(`hubbub admin: ${(e as Error).message.split("\n")[0]}\n${ADMIN_HELP}`);
		return 2;
	}
	const { values, positionals } = parsed;
	const [command, name, ...extra] = positionals;
	if (values.help || !command) {
		(values.help ? io.out : io.err)(ADMIN_HELP);
		return values.help ? 0 : 2;
	}
	const needsName = command === "create-user" || command === "reset-password";
	if (!["create-user", "reset-password", "list-users"].includes(command)) {
		io.err(`hubbub admin: unknown command ${JSON.stringify(command)}\n${ADMIN_HELP}`);
		return 2;
	}
	if ((needsName && !name) || (needsName ? extra.length > 0 : name !== undefined)) {
		io.err(`hubbub admin: ${command} ${needsName ? "takes one NAME" : "takes no NAME"}\n${ADMIN_HELP}`);
		return 2;
	}
	const db = values.db ?? (env.DATABASE_URL || "hubbub.db");
	const base = (values.url ?? (env.HUBBUB_URL || "http://localhost:3000")).replace(/\/+$/, "");
	let accounts: Accounts;
	try {
		accounts = await Accounts.open(db);
	} catch (e) {
		io.err(`hubbub admin: ${(e as Error).message}`);
		return 2;
	}
	try {
		if (command === "list-users") {
			const list = await accounts.list();
			if (list.length === 0) io.out("no accounts yet");
			for (const a of list) {
				const kind = a.bot ? "bot" : a.role;
				io.out(
					`${a.name}\t${kind}\t${a.active ? "active" : "deactivated"}\t${new Date(a.created).toISOString()}`,
				);
			}
			return 0;
		}
		if (command === "create-user") {
			const role = values.admin ? "admin" : "member";
			if (values["password-stdin"]) {
				const password = (await io.stdin()).replace(/\r?\n$/, "");
				const made = await accounts.createUser(name, password, role);
				io.out(`made ${made.role} ${made.name}`);
				return 0;
			}
			// No password on the command line (it would stay in the shell's history): a link to set one.
			const made = await accounts.createUser(name, crypto.randomUUID() + crypto.randomUUID(), role);
			const reset = await accounts.resetLink(made.name);
			io.out(`made ${made.role} ${made.name}; they set their password at this link (once, within 24 hours):`);
			io.out(`${base}/account#reset=${reset.code}`);
			return 0;
		}
		const reset = await accounts.resetLink(name);
		io.out(`a new password for ${reset.account.name} can be set once, within 24 hours, at:`);
		io.out(`${base}/account#reset=${reset.code}`);
		return 0;
	} catch (e) {
		if (e instanceof AccountFailure) {
			io.err(`hubbub admin: ${e.message}`);
			return 1;
		}
		io.err(`hubbub admin: ${(e as Error).message}`);
		return 2;
	} finally {
		await accounts.close();
	}
}
