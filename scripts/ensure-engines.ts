// Runs before `npm test` (and in .ci/run): finds the engines the tests drive for real and installs the
// missing Debian packages when it can (root with apt-get); otherwise stops at once with the exact command.
// `--check` only reports: it never installs.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface Engine {
	/** What the tests need it for, for the message. */
	what: string;
	/** The Debian package that provides it. */
	pkg: string;
	found(): boolean;
}

const PG_ROOT = "/usr/lib/postgresql";

/** PostgreSQL's server binaries live outside PATH on Debian, under /usr/lib/postgresql/<version>/bin. */
function postgresFound(): boolean {
	if (Bun.which("initdb")) return true;
	if (!existsSync(PG_ROOT)) return false;
	return readdirSync(PG_ROOT).some((v) => existsSync(join(PG_ROOT, v, "bin", "initdb")));
}

export const ENGINES: Engine[] = [
	{
		what: "redis-server (cluster tests)",
		pkg: "redis-server",
		found: () => Bun.which("redis-server") !== null,
	},
	{ what: "PostgreSQL server binaries (store and cluster tests)", pkg: "postgresql", found: postgresFound },
	{ what: "chromium (end-to-end page tests)", pkg: "chromium", found: () => Bun.which("chromium") !== null },
	{
		what: "openssl (TLS tests make a certificate)",
		pkg: "openssl",
		found: () => Bun.which("openssl") !== null,
	},
];

export function missing(engines: Engine[] = ENGINES): Engine[] {
	return engines.filter((e) => !e.found());
}

/** The one command that installs `pkgs` on Debian, as this user would type it. */
export function installCommand(pkgs: string[], root: boolean): string {
	const sudo = root ? "" : "sudo ";
	return `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${pkgs.join(" ")}`;
}

function install(pkgs: string[]): boolean {
	const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
	const run = (cmd: string[]) =>
		Bun.spawnSync(cmd, { env, stdout: "inherit", stderr: "inherit" }).exitCode === 0;
	return (
		run(["apt-get", "update", "-qq"]) &&
		run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...pkgs])
	);
}

function main(): number {
	const checkOnly = process.argv.includes("--check");
	let absent = missing();
	if (absent.length === 0) return 0;
	const pkgs = absent.map((e) => e.pkg);
	const root = process.getuid?.() === 0;
	const apt = Bun.which("apt-get") !== null;
	if (root && apt && !checkOnly) {
		console.error(`The tests need ${pkgs.join(", ")}; installing with apt-get…`);
		if (install(pkgs)) {
			absent = missing();
			if (absent.length === 0) return 0;
		}
	}
	console.error(
		[
			"The tests drive real engines, and these are missing:",
			...absent.map((e) => `  - ${e.what}: Debian package ${e.pkg}`),
			apt
				? "Install them with:"
				: "This is not a Debian-like system (no apt-get); install the same packages with its package manager, or on Debian:",
			`  ${installCommand(
				absent.map((e) => e.pkg),
				root,
			)}`,
			"then run `npm test` again.",
		].join("\n"),
	);
	return 1;
}

if (import.meta.main) process.exit(main());
