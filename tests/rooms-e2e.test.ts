// Rooms, direct messages, edits, deletions, reactions and read positions in Chromium (Debian's, via playwright-core)
// against hubbub from source under --auth accounts, with alice, bob and carol each in a browser context of their own.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { invite, setupAdmin } from "./accounts-helpers.ts";
import { launchChromium, screenshotPath } from "./e2e-browser.ts";
import { fromSource, ROOT, type Spawned, spawnServer, tempDir } from "./helpers.ts";

const AXE = join(ROOT, "node_modules", "axe-core", "axe.min.js");
const DESK = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;
/** Session tokens by name. */
const tokens: Record<string, string> = {};
const problems: string[] = [];

beforeAll(async () => {
	dir = tempDir("hubbub-rooms-e2e-");
	server = await spawnServer(fromSource("--db", join(dir.path, "chat.db"), "--auth", "accounts"));
	const admin = await setupAdmin(server, "alice", "correct horse");
	tokens.alice = admin.token as string;
	tokens.bob = (await invite(server, admin, "bob", "bob password")).token as string;
	tokens.carol = (await invite(server, admin, "carol", "carol password")).token as string;
	browser = await launchChromium();
}, 120_000);

afterAll(async () => {
	await browser?.close();
	server?.proc.kill();
	await server?.proc.exited;
	dir?.[Symbol.dispose]();
});

interface Someone {
	name: string;
	context: BrowserContext;
	page: Page;
}

/** `name` signed in, in a browser context of their own, at the chat page (or `hash`). */
async function signedIn(
	name: string,
	options: { viewport?: typeof DESK; dark?: boolean; hash?: string } = {},
) {
	const context = await browser.newContext({
		viewport: options.viewport ?? DESK,
		colorScheme: options.dark ? "dark" : "light",
		// axe is injected as a script: the context lets that past the page's CSP.
		bypassCSP: true,
	});
	await context.addCookies([{ name: "hubbub_session", value: tokens[name] as string, url: server.url }]);
	const page = await context.newPage();
	page.on("pageerror", (e) => problems.push(`${name}: ${e.message}`));
	await page.goto(`${server.url}/${options.hash ?? ""}`);
	await connected(page, name);
	return { name, context, page } satisfies Someone;
}

async function connected(page: Page, name: string): Promise<void> {
	await page.locator("#status", { hasText: `Connected as ${name}` }).waitFor({ timeout: 30_000 });
}

/** axe-core's violations on the page as it is now. */
async function axe(page: Page): Promise<string[]> {
	if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
	const violations = (await page.evaluate(async () => {
		const run = (window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe.run;
		return (await run()).violations;
	})) as { id: string; impact: string; nodes: { target: string[] }[] }[];
	return violations.map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** axe in light and dark on what is shown now. */
async function axeBoth(page: Page): Promise<string[]> {
	const found: string[] = [];
	for (const colorScheme of ["light", "dark"] as const) {
		await page.emulateMedia({ colorScheme });
		for (const v of await axe(page)) found.push(`${colorScheme}: ${v}`);
	}
	await page.emulateMedia({ colorScheme: "light" });
	return found;
}

/** Screenshots at 1280×800 light and dark, and at 375×740 (drawer closed). */
async function screenshots(page: Page, name: string): Promise<void> {
	await page.setViewportSize(DESK);
	for (const colorScheme of ["light", "dark"] as const) {
		await page.emulateMedia({ colorScheme });
		await page.screenshot({ path: screenshotPath(`${name}-desk-${colorScheme}.png`) });
	}
	await page.emulateMedia({ colorScheme: "light" });
	await page.setViewportSize(PHONE);
	await page.screenshot({ path: screenshotPath(`${name}-phone.png`) });
	await page.setViewportSize(DESK);
}

async function say(page: Page, text: string): Promise<void> {
	await page.locator("#text").fill(text);
	await page.locator("#text").press("Enter");
	await page.locator("#messages li.message:not(.pending) .text", { hasText: text }).last().waitFor();
}

const roomButton = (page: Page, label: string | RegExp) =>
	page.locator("#rooms .room, #directs .room").filter({ hasText: label });
const message = (page: Page, text: string) =>
	page.locator("#messages li.message").filter({ has: page.locator(".text", { hasText: text }) });

describe("rooms in Chromium", () => {
	let alice: Someone;
	let bob: Someone;
	let carol: Someone;

	beforeAll(async () => {
		alice = await signedIn("alice");
		bob = await signedIn("bob");
		carol = await signedIn("carol");
	}, 120_000);

	test("a private room: alice creates it and adds bob; carol cannot see it, in her list or the directory", async () => {
		const { page } = alice;
		await page.getByRole("button", { name: "New room" }).click();
		await page.getByLabel("Name", { exact: true }).fill("Launch plans");
		await page.getByLabel("Topic (optional)").fill("Dates, names and the budget");
		await page.getByLabel(/Private:/).check();
		await page.getByRole("button", { name: "Create room" }).click();
		await page.locator("#room-title", { hasText: "Launch plans" }).waitFor();
		expect(await page.locator(".room-title .topic").textContent()).toBe("Dates, names and the budget");
		await say(page, "Only the two of us see this.");
		// Add bob from the members panel: his list gains the room at once.
		await page.getByLabel("Add someone").fill("bob");
		await page.getByRole("button", { name: "Add", exact: true }).click();
		await page.locator("#members li", { hasText: "bob" }).waitFor();
		await roomButton(bob.page, "Launch plans").waitFor();
		await roomButton(bob.page, "Launch plans").click();
		await message(bob.page, "Only the two of us see this.").waitFor();
		await say(bob.page, "Got it.");
		await message(page, "Got it.").waitFor();
		expect(await page.locator(".room-header .members-count").textContent()).toContain("2 members");
		// Its creator renames it and sets the topic (by keyboard: Escape closes the dialog the first time).
		await page.getByRole("button", { name: "Settings" }).click();
		await page.getByRole("dialog", { name: "Room settings" }).waitFor();
		await page.keyboard.press("Escape");
		await page.getByRole("dialog").waitFor({ state: "detached" });
		await page.getByRole("button", { name: "Settings" }).click();
		await page.getByLabel("Name", { exact: true }).fill("Launch plans 2027");
		await page.getByLabel("Topic", { exact: true }).fill("Dates and names");
		await page.getByLabel("Topic", { exact: true }).press("Enter");
		await page.getByRole("dialog").waitFor({ state: "detached" });
		await roomButton(bob.page, "Launch plans 2027").waitFor();
		await bob.page.locator(".room-title .topic", { hasText: "Dates and names" }).waitFor();

		// An open room next to it, for the directory.
		await page.getByRole("button", { name: "New room" }).click();
		await page.getByLabel("Name", { exact: true }).fill("Design reviews");
		await page.getByLabel("Topic (optional)").fill("Screens and flows, Fridays at 3");
		await page.getByRole("button", { name: "Create room" }).click();
		await page.locator("#room-title", { hasText: "Design reviews" }).waitFor();

		// Carol: not in her list, not in the directory, and its address tells her nothing.
		expect(await roomButton(carol.page, "Launch plans").count()).toBe(0);
		await carol.page.getByRole("button", { name: "Browse rooms" }).click();
		await carol.page.locator("#directory .directory-title", { hasText: "#Design reviews" }).waitFor();
		expect(await carol.page.locator("#directory .directory-title").allTextContents()).toEqual([
			"#Design reviews",
			"#general",
		]);
		expect(await axeBoth(carol.page)).toEqual([]);
		await screenshots(carol.page, "room-directory");
		await carol.page.getByLabel("Find a room by name").fill("launch");
		await carol.page.getByText("No open rooms match.").waitFor();
		await carol.page.getByLabel("Find a room by name").fill("design");
		await carol.page.getByRole("button", { name: "Join #Design reviews" }).click();
		await carol.page.locator("#room-title", { hasText: "Design reviews" }).waitFor();
		await page.locator("#members li", { hasText: "carol" }).waitFor();
		await roomButton(page, "Launch plans").click();
		// Addressed directly, the private room is "no room that you can see", like one that does not exist.
		await carol.page.goto(`${server.url}/#launch-plans`);
		await connected(carol.page, "carol");
		await carol.page.getByText("no room #launch-plans that you can see").waitFor();
		expect(await roomButton(carol.page, "Launch plans").count()).toBe(0);

		expect(await axeBoth(page)).toEqual([]);
		await screenshots(page, "private-room");
	}, 120_000);

	test("a direct message from a name in the members panel; bob sees it under Direct messages with a badge", async () => {
		const { page } = alice;
		await roomButton(page, "#general").click();
		await page.getByRole("button", { name: "Message bob" }).first().click();
		await page.locator("#room-title", { hasText: "bob" }).waitFor();
		await say(page, "psst, a surprise for carol");
		const dm = bob.page.locator("#directs .room", { hasText: "alice" });
		await dm.locator(".unread", { hasText: "1" }).waitFor();
		await dm.click();
		await message(bob.page, "psst, a surprise for carol").waitFor();
		await dm.locator(".unread").waitFor({ state: "detached" });
		expect(await roomButton(carol.page, "alice").count()).toBe(0);
		await say(bob.page, "my lips are sealed");
		await message(page, "my lips are sealed").waitFor();
		await screenshots(page, "direct-message");
		// On a phone the rooms and direct messages are a drawer.
		await page.setViewportSize(PHONE);
		await page.getByRole("button", { name: "Rooms and members" }).click();
		await page.locator("#directs .room", { hasText: "bob" }).waitFor();
		expect(await axeBoth(page)).toEqual([]);
		await page.screenshot({ path: screenshotPath("rooms-drawer-phone.png") });
		await page.keyboard.press("Escape");
		await page.setViewportSize(DESK);
	}, 120_000);

	test("after being offline: counts in the list, the unread line, and Jump to newest", async () => {
		await roomButton(bob.page, "Launch plans").click();
		await bob.page.locator("#room-title", { hasText: "Launch plans" }).waitFor();
		await bob.context.close();
		const { page } = alice;
		await roomButton(page, "#general").click();
		await say(page, "while you were out 1");
		await say(page, "while you were out 2, @bob take a look");
		await say(page, "while you were out 3");
		// Bob comes back on a new device (a fresh context): the server's counts are there at once.
		// Its address names the private room, so #general is not the one shown.
		bob = await signedIn("bob", { hash: "#launch-plans" });
		const general = roomButton(bob.page, "#general");
		await general.locator(".unread.mention", { hasText: "3" }).waitFor();
		expect(await general.getAttribute("aria-label")).toBe("#general, 3 unread, 1 mentioning you");
		await general.click();
		const rows = bob.page.locator("#messages > li.message, #messages > li.new-line");
		await bob.page.locator("#messages .new-line").waitFor();
		const order = await rows.evaluateAll((lis) =>
			lis.map((li) =>
				li.classList.contains("new-line") ? "LINE" : (li.querySelector(".text")?.textContent ?? ""),
			),
		);
		const line = order.indexOf("LINE");
		expect(order[line + 1]).toBe("while you were out 1");
		await general.locator(".unread").waitFor({ state: "detached" });
		// The read position went to the server: a third device shows no badge.
		const again = await signedIn("bob", { hash: "#launch-plans" });
		await roomButton(again.page, "#general").waitFor();
		expect(await roomButton(again.page, "#general").locator(".unread").count()).toBe(0);
		await again.context.close();

		// Scrolled up, new messages show a Jump to newest with their count.
		await bob.page.setViewportSize({ width: 1280, height: 420 });
		for (let i = 0; i < 12; i++) await say(page, `filler ${i}`);
		await message(bob.page, "filler 11").waitFor();
		await bob.page.locator("#messages").evaluate((el) => {
			el.scrollTop = 0;
			el.dispatchEvent(new Event("scroll"));
		});
		await say(page, "one more");
		await bob.page.getByRole("button", { name: "Jump to newest (1 new)" }).click();
		await bob.page.getByRole("button", { name: /Jump to newest/ }).waitFor({ state: "detached" });
		expect(problems).toEqual([]);
	}, 180_000);
	test("edit and delete with bob watching: live, and after his reload; reactions live; by keyboard", async () => {
		const { page } = alice;
		await roomButton(page, "#general").click();
		await roomButton(bob.page, "#general").click();
		await say(page, "the meeting is at 3 pm tomorow");
		await say(page, "the password is hunter2");
		await message(bob.page, "the password is hunter2").waitFor();

		// Delete by keyboard: from the list, arrow to the message, Tab to its Delete, confirm.
		await page.locator("#messages").focus();
		await page.keyboard.press("ArrowUp");
		await expect(page.evaluate(() => document.activeElement?.textContent ?? "")).resolves.toContain(
			"the password is hunter2",
		);
		for (let i = 0; i < 5; i++) {
			await page.keyboard.press("Tab");
			const label = await page.evaluate(() => document.activeElement?.getAttribute("aria-label"));
			if (label === "Delete message") break;
		}
		await page.keyboard.press("Enter");
		await page.getByRole("alertdialog").waitFor();
		await page.keyboard.press("Tab");
		await page.keyboard.press("Enter");
		await message(bob.page, "This message was deleted.").waitFor();
		await message(page, "This message was deleted.").waitFor();

		// Edit by keyboard: Up in the empty box edits the last own (not deleted) message.
		await page.locator("#text").focus();
		await page.keyboard.press("ArrowUp");
		const box = page.getByLabel("Edit your message");
		await box.waitFor();
		await box.fill("the meeting is at 3 pm tomorrow");
		await box.press("Enter");
		const edited = message(bob.page, "the meeting is at 3 pm tomorrow");
		await edited.locator(".edited").waitFor();
		expect(await edited.locator(".edited").getAttribute("title")).toStartWith("Edited ");

		// Reactions: bob adds one with the picker, alice toggles the same; both see the count live.
		await edited.hover();
		await edited.getByRole("button", { name: "Add reaction" }).click();
		const picker = bob.page.locator("emoji-picker");
		await picker.waitFor();
		await picker.locator("input").fill("thumbs up");
		await picker.locator('button.emoji[role="option"]').first().click({ timeout: 30_000 });
		const onAlice = message(page, "the meeting is at 3 pm tomorrow").locator(".reaction");
		await onAlice.first().waitFor();
		const emoji = ((await onAlice.first().textContent()) as string).split(" ")[0] as string;
		await onAlice.first().click();
		await edited.locator(".reaction.mine", { hasText: `${emoji} 2` }).waitFor();
		expect(await edited.locator(".reaction").first().getAttribute("title")).toBe(
			`you, alice reacted with ${emoji}`,
		);

		// After a reload nobody sees an old text.
		await bob.page.reload();
		await connected(bob.page, "bob");
		await roomButton(bob.page, "#general").click();
		await message(bob.page, "the meeting is at 3 pm tomorrow").waitFor();
		expect(await bob.page.locator("#messages").textContent()).not.toContain("tomorow");
		expect(await bob.page.locator("#messages").textContent()).not.toContain("hunter2");
		await message(bob.page, "This message was deleted.").waitFor();
		await message(bob.page, "the meeting is at 3 pm tomorrow")
			.locator(".reaction", { hasText: "2" })
			.waitFor();
		expect(await axeBoth(bob.page)).toEqual([]);
		await screenshots(bob.page, "edited-deleted-reacted");

		// Removed from the private room, bob loses it at once.
		await roomButton(page, "Launch plans").click();
		await page.getByRole("button", { name: "Remove bob from the room" }).click();
		await page.getByRole("alertdialog").getByRole("button", { name: "Remove" }).click();
		await roomButton(bob.page, "Launch plans").waitFor({ state: "detached" });
		await page.locator("#members li", { hasText: "bob" }).waitFor({ state: "detached" });
		expect(problems).toEqual([]);
	}, 180_000);
});
