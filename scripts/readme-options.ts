// Rewrites the README's options table from the option definitions in lib/config.ts (the ones --help prints).
// tests/operator-docs.test.ts fails when the README and the definitions disagree; run `npm run docs:options` then.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { optionsMarkdown } from "../lib/config.ts";

export const BEGIN = "<!-- options: generated from lib/config.ts by `npm run docs:options` -->";
export const END = "<!-- /options -->";

/** The README with its options table replaced by the generated one. */
export function withOptionsTable(readme: string): string {
	const start = readme.indexOf(BEGIN);
	const end = readme.indexOf(END);
	if (start < 0 || end < start) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
	return `${readme.slice(0, start + BEGIN.length)}\n\n${optionsMarkdown()}\n\n${readme.slice(end)}`;
}

if (import.meta.main) {
	const path = join(import.meta.dir, "..", "README.md");
	writeFileSync(path, withOptionsTable(readFileSync(path, "utf8")));
}
