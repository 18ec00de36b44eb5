// `hubbub admin …`: account work for the person with shell access, against the same --db as the
// server (SQLite file or PostgreSQL URL). A lost admin password is recovered with reset-password.
import { AccountFailure, Accounts } from "./accounts.ts";
import { CommandError } from "./command-error.ts";

export const ADMIN_USAGE =
	"hubbub admin create-user NAME [--admin] [--password-stdin] | reset-password NAME | list-users  [--db PATH|URL] [--url URL]";

export const ADMIN_OPTIONS = {
	url: {
		type: "string",
		help: "the address people open, for the printed links (env HUBBUB_URL; default http://localhost:3000)",
	},
	admin: { type: "boolean", help: "create-user: make an admin" },
	"password-stdin": {
		type: "boolean",
		help: "create-user: read the password from standard input instead of printing a link to set it",
	},
} as const;

export interface AdminIo {
	out(line: string): void;
	err(line: string): void;
	env: Record<string, string | undefined>;
}

/**
 * `hubbub admin SUBCOMMAND [NAME]` (dispatched by lib/cli.ts). Refusals throw
 * CommandError: status 1 when the accounts say no (name taken, no such
 * account), 2 for a wrong command line or a database that cannot be opened.
 */
export async function adminCommand(
	args: string[],
	values: Record<string, string | boolean | undefined>,
	db: string,
	io: AdminIo,
	stdin: () => Promise<string> = () => Bun.stdin.text(),
): Promise<void> {
	const [command, name] = args;
	const needsName = command === "create-user" || command === "reset-password";
	if (!["create-user", "reset-password", "list-users"].includes(command as string))
		throw new CommandError(`unknown admin command ${JSON.stringify(command)}\nUsage: ${ADMIN_USAGE}`);
	if (needsName !== (name !== undefined))
		throw new CommandError(
			`${command} ${needsName ? "takes one NAME" : "takes no NAME"}\nUsage: ${ADMIN_USAGE}`,
		);
	const base = (String(values.url ?? "") || io.env.HUBBUB_URL || "http://localhost:3000").replace(/\/+$/, "");
	let accounts: Accounts;
	try {
		accounts = await Accounts.open(db);
	} catch (e) {
		throw new CommandError((e as Error).message);
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
			return;
		}
		if (command === "create-user") {
			const role = values.admin ? "admin" : "member";
			if (values["password-stdin"]) {
				const password = (await stdin()).replace(/\r?\n$/, "");
				const made = await accounts.createUser(name, password, role);
				io.out(`made ${made.role} ${made.name}`);
				return;
			}
			// No password on the command line (it would stay in the shell's history): a link to set one.
			const made = await accounts.createUser(name, crypto.randomUUID() + crypto.randomUUID(), role);
			const reset = await accounts.resetLink(made.name);
			io.out(`made ${made.role} ${made.name}; they set their password at this link (once, within 24 hours):`);
			io.out(`${base}/account#reset=${reset.code}`);
			return;
		}
		const reset = await accounts.resetLink(name);
		io.out(`a new password for ${reset.account.name} can be set once, within 24 hours, at:`);
		io.out(`${base}/account#reset=${reset.code}`);
	} catch (e) {
		if (e instanceof AccountFailure) throw new CommandError(e.message, 1);
		throw e;
	} finally {
		await accounts.close();
	}
}
