// Shared by the Chromium tests: Debian's Chromium through playwright-core, the built binary, and a person at the page.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
	type Browser,
	type BrowserContext,
	type BrowserContextOptions,
	chromium,
	type Page,
} from "playwright-core";
import { BINARY, buildBinary, ROOT, type Spawned, spawnServer } from "./helpers.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const SCREENSHOTS = join(ROOT, "artifacts", "screenshots");

/** Builds the binary and starts Chromium. */
export async function launch(): Promise<Browser> {
	await buildBinary();
	return launchChromium();
}

/** Starts Debian's Chromium (Playwright gives every launch a fresh, empty profile), for tests of a server run from source. */
export function launchChromium(): Promise<Browser> {
	return chromium.launch({
		executablePath: CHROMIUM,
		args: [
			"--no-sandbox",
			"--disable-gpu",
			"--disable-background-networking",
			"--disable-component-update",
			"--disable-sync",
			"--no-first-run",
		],
	});
}

/** The binary on a free port (or `port`) with the database at `dbPath`. */
export function serve(dbPath: string, port = 0, ...flags: string[]): Promise<Spawned> {
	return spawnServer([BINARY, "--port", String(port), "--host", "127.0.0.1", "--db", dbPath, ...flags]);
}

export interface Person {
	page: Page;
	context: BrowserContext;
	/** Uncaught errors on the page. */
	problems: string[];
}

/** A person in their own browser context who has picked a name. */
export async function person(
	browser: Browser,
	url: string,
	name: string,
	options: BrowserContextOptions = { viewport: { width: 1100, height: 760 } },
): Promise<Person> {
	const context = await browser.newContext(options);
	const page = await context.newPage();
	const problems: string[] = [];
	page.on("pageerror", (e) => problems.push(e.message));
	await page.goto(url);
	await page.getByLabel("Your name").fill(name);
	await page.getByRole("button", { name: "Start chatting" }).click();
	await connectedAs(page, name);
	return { page, context, problems };
}

export async function connectedAs(page: Page, name: string, timeout = 30_000): Promise<void> {
	await page
		.locator("#status")
		.filter({ hasText: `Connected as ${name}` })
		.waitFor({ timeout });
}

export async function say(page: Page, text: string): Promise<void> {
	await page.getByLabel(/^Message #/).fill(text);
	await page.getByLabel(/^Message #/).press("Enter");
}

/** Confirmed (not pending) message texts, in page order. */
export const shownTexts = (page: Page) =>
	page.locator("#messages li.message:not(.pending) .text").allTextContents();

export function screenshotPath(name: string): string {
	mkdirSync(SCREENSHOTS, { recursive: true });
	return join(SCREENSHOTS, name);
}
