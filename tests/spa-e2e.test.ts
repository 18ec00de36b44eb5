// The chat and the account screens are one single-page app (client/main.ts): in Chromium against
// hubbub from source under --auth accounts, going from one to the other loads no new document, the
// chat keeps its socket, and the account screens' code is fetched only when they are first shown.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./e2e-browser.ts";
import { fromSource, type Spawned, spawnServer, tempDir } from "./helpers.ts";

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
	dir = tempDir("hubbub-spa-e2e-");
	server = await spawnServer(fromSource("--db", join(dir.path, "chat.db"), "--auth", "accounts"));
	browser = await launchChromium();
}, 120_000);

afterAll(async () => {
	await browser?.close();
	server?.proc.kill();
	await server?.proc.exited;
	dir?.[Symbol.dispose]();
});

/** The documents this tab has loaded (1 while no navigation reloaded it) and whether the marker set in it survives. */
function sameDocument(page: Page): Promise<{ documents: number; marker: unknown }> {
	return page.evaluate(() => ({
		documents: performance.getEntriesByType("navigation").length,
		marker: (window as unknown as { spaMarker?: string }).spaMarker,
	}));
}

/** The script files this document has fetched so far. */
function scripts(page: Page): Promise<string[]> {
	return page.evaluate(() =>
		performance
			.getEntriesByType("resource")
			.map((r) => new URL(r.name).pathname)
			.filter((p) => p.endsWith(".js")),
	);
}

/** Which of these scripts carry the account screens' code (the admin screen's words). */
async function accountCode(paths: string[]): Promise<string[]> {
	const carrying: string[] = [];
	for (const path of paths)
		if ((await (await fetch(server.url + path)).text()).includes("Make an invite link")) carrying.push(path);
	return carrying;
}

test("from the chat, the account menu's screens open and the chat comes back without a page load; their code loads only then", async () => {
	const problems: string[] = [];
	const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
	const page = await context.newPage();
	page.on("pageerror", (e) => problems.push(e.message));
	const sockets: string[] = [];
	page.on("websocket", (ws) => sockets.push(ws.url()));

	// First run: the setup screen, then the chat from its "Open the chat" link, in the same document.
	await page.goto(server.url);
	await page.getByRole("heading", { name: "Set up this server" }).waitFor();
	await page.getByLabel("Your name").fill("alice");
	await page.getByLabel("Password (at least 8 characters)").fill("correct horse");
	await page.getByRole("button", { name: "Create the admin account" }).click();
	await page.getByRole("heading", { name: "Invite links" }).waitFor();
	await page.evaluate(() => {
		(window as unknown as { spaMarker: string }).spaMarker = "setup";
	});
	await page.getByRole("link", { name: "Open the chat" }).first().click();
	await page.locator("#status", { hasText: "Connected as alice" }).waitFor();
	// The chat's address names its room once the room is open.
	await page.waitForURL((u) => u.pathname === "/" && u.hash.length > 1);
	expect(await sameDocument(page)).toEqual({ documents: 1, marker: "setup" });

	// A fresh load of the chat: only the chat's code.
	await page.goto(server.url);
	await page.locator("#status", { hasText: "Connected as alice" }).waitFor();
	const chatScripts = await scripts(page);
	expect(chatScripts.length).toBe(1);
	expect(await accountCode(chatScripts)).toEqual([]);
	sockets.length = 0;
	await page.evaluate(() => {
		(window as unknown as { spaMarker: string }).spaMarker = "chat";
	});

	// The menu's "Your account": the account screen, in place, its code fetched now.
	await page.getByRole("button", { name: "Account" }).click();
	await page.getByRole("link", { name: "Your account" }).click();
	await page.getByRole("heading", { name: "Your account" }).waitFor();
	expect(page.url()).toBe(`${server.url}/account#account`);
	expect(await page.locator("#app").isHidden()).toBe(true);
	const withAccount = await scripts(page);
	expect(withAccount.length).toBe(2);
	expect(withAccount).toEqual(expect.arrayContaining(chatScripts));
	expect(await accountCode(withAccount)).toEqual(withAccount.filter((p) => !chatScripts.includes(p)));

	// "Open the chat" brings the same chat back: same document, same socket, the menu closed.
	await page.getByRole("link", { name: "Open the chat" }).first().click();
	await page.locator("#status", { hasText: "Connected as alice" }).waitFor();
	// The chat's address names its room once the room is open.
	await page.waitForURL((u) => u.pathname === "/" && u.hash.length > 1);
	expect(await page.getByRole("link", { name: "Your account" }).isVisible()).toBe(false);
	// The browser's back and forward buttons move between the two screens too.
	await page.goBack();
	await page.getByRole("heading", { name: "Your account" }).waitFor();
	await page.goForward();
	await page.locator("#status", { hasText: "Connected as alice" }).waitFor();
	expect(await page.locator("#account").isHidden()).toBe(true);
	expect(await sameDocument(page)).toEqual({ documents: 1, marker: "chat" });
	// The chat's one socket stayed open: no new one was made.
	expect(sockets).toEqual([]);
	expect(await scripts(page)).toEqual(withAccount);
	expect(problems).toEqual([]);
	await context.close();
}, 120_000);
