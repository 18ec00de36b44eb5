// The pretest step: with engines missing from PATH it names them and prints the exact command, installing nothing.
import { describe, expect, test } from "bun:test";
import { chmodSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { installCommand, missing } from "../scripts/ensure-engines.ts";
import { ROOT, tempDir } from "./helpers.ts";

const SCRIPT = join(ROOT, "scripts", "ensure-engines.ts");

/** Runs the script in report-only mode with PATH set to `dir` alone. */
function runWithPath(dir: string) {
	const r = Bun.spawnSync([process.execPath, SCRIPT, "--check"], {
		env: { ...process.env, PATH: dir },
		stdout: "pipe",
		stderr: "pipe",
	});
	return { code: r.exitCode, out: r.stderr.toString() + r.stdout.toString() };
}

describe("ensure-engines (npm pretest)", () => {
	test("with the engines gone from PATH it stops with the exact apt-get command", () => {
		using dir = tempDir();
		symlinkSync("/usr/bin/apt-get", join(dir.path, "apt-get"));
		const { code, out } = runWithPath(dir.path);
		expect(code).toBe(1);
		const sudo = process.getuid?.() === 0 ? "" : "sudo ";
		expect(out).toContain("redis-server (cluster tests): Debian package redis-server");
		expect(out).toContain(
			`${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends redis-server chromium openssl\n`,
		);
		// PostgreSQL's binaries are found outside PATH, where Debian puts them.
		expect(out).not.toContain("postgresql");
	});

	test("with every engine on PATH it says nothing and lets the tests run", () => {
		using dir = tempDir();
		for (const name of ["redis-server", "chromium", "openssl"]) {
			const file = join(dir.path, name);
			writeFileSync(file, "#!/bin/sh\n");
			chmodSync(file, 0o755);
		}
		expect(runWithPath(dir.path)).toEqual({ code: 0, out: "" });
	});

	test("what is missing, and the command for root and for everyone else", () => {
		const engines = [
			{ what: "a", pkg: "pa", found: () => true },
			{ what: "b", pkg: "pb", found: () => false },
			{ what: "c", pkg: "pc", found: () => false },
		];
		expect(missing(engines).map((e) => e.pkg)).toEqual(["pb", "pc"]);
		expect(installCommand(["pb", "pc"], true)).toBe(
			"apt-get update && apt-get install -y --no-install-recommends pb pc",
		);
		expect(installCommand(["pb"], false)).toBe(
			"sudo apt-get update && sudo apt-get install -y --no-install-recommends pb",
		);
	});
});
