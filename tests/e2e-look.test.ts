// The page as people meet it, in Chromium: axe on every screen in light and dark mode, screenshots, the keyboard alone, a phone, the reader's place, emoji.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { connectedAs, launch, person, say, screenshotPath, serve, shownTexts } from "./e2e-browser.ts";
import { type Client, chatter, ROOT, type Spawned, tempDir } from "./helpers.ts";

const AXE = join(ROOT, "node_modules", "axe-core", "axe.min.js");

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;
let bob: Client;

beforeAll(async () => {
	browser = await launch();
	dir = tempDir();
	server = await serve(join(dir.path, "chat.db"), 0, "--rate", "send=1000/1000");
	bob = await chatter(`ws://127.0.0.1:${server.port}/ws`, "bob", "general");
	const texts = [
		"Morning! The **deploy** is done, see https://example.com/releases/42",
		"Two things:\n- the `queue` is drained\n- ~~the cache~~ is warm",
		"> is it safe to restart?\nyes",
		"🎉",
		"@alice can you check the dashboard?",
	];
	for (const [i, text] of texts.entries()) {
		bob.send({ type: "send", room: "general", id: `seed-${i}`, text });
		await bob.expect("message", (m) => m.id === `seed-${i}`);
	}
}, 120_000);

afterAll(async () => {
	bob?.close();
	server?.proc.kill("SIGKILL");
	dir?.[Symbol.dispose]();
	await browser?.close();
});

interface Violation {
	id: string;
	impact: string;
	nodes: { target: string[] }[];
}

/** axe-core's violations on the page as it is now. */
async function axe(page: Page): Promise<string[]> {
	if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
	const violations = (await page.evaluate(async () => {
		const run = (window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe.run;
		return (await run()).violations;
	})) as Violation[];
	return violations.map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

const viewports = {
	desk: { width: 1280, height: 800 },
	phone: { width: 375, height: 740 },
	keyboard: { width: 375, height: 430 },
};

describe("every screen, light and dark", () => {
	for (const scheme of ["light", "dark"] as const) {
		test(`axe finds nothing on any screen (${scheme}), and the screenshots are saved`, async () => {
			const options: BrowserContextOptions = {
				viewport: viewports.desk,
				colorScheme: scheme,
				bypassCSP: true,
			};
			const context = await browser.newContext(options);
			const page = await context.newPage();
			const found: Record<string, string[]> = {};
			await page.goto(server.url);
			await page.getByLabel("Your name").waitFor();
			found["name screen"] = await axe(page);
			await page.screenshot({ path: screenshotPath(`name-${scheme}.png`) });
			await page.getByLabel("Your name").fill(`alice-${scheme}`);
			await page.keyboard.press("Enter");
			await connectedAs(page, `alice-${scheme}`);
			await page.locator("#messages li.message").nth(4).waitFor();
			await say(page, `Thanks bob, looking now (${scheme})`);
			await page
				.locator("#messages li.message:not(.pending) .text", { hasText: `looking now (${scheme})` })
				.waitFor();
			found.chat = await axe(page);
			await page.screenshot({ path: screenshotPath(`chat-1280x800-${scheme}.png`) });
			await page.keyboard.press("Control+k");
			await page.getByLabel("Go to room").waitFor();
			found["room switcher"] = await axe(page);
			await page.keyboard.type("dev");
			await page.keyboard.press("Enter");
			await page.locator("#room-title", { hasText: "#dev" }).waitFor();
			await page.locator("#messages .start").waitFor();
			found["empty room"] = await axe(page);
			await page.screenshot({ path: screenshotPath(`empty-room-${scheme}.png`) });
			await page.setViewportSize(viewports.phone);
			await page.getByRole("button", { name: "Rooms and members" }).click();
			await page.locator("#drawer #rooms").waitFor();
			found["phone drawer"] = await axe(page);
			await page.screenshot({ path: screenshotPath(`drawer-375x740-${scheme}.png`) });
			await page.keyboard.press("Escape");
			await page.getByRole("button", { name: "#general", exact: true }).waitFor({ state: "hidden" });
			await page.keyboard.press("Alt+ArrowUp");
			await page.locator("#room-title", { hasText: "#general" }).waitFor();
			await page.screenshot({ path: screenshotPath(`chat-375x740-${scheme}.png`) });
			await page.setViewportSize(viewports.keyboard);
			// The keyboard opening shrinks the list: a reader at the bottom stays there.
			await page.waitForFunction(() => {
				const l = document.getElementById("messages") as HTMLElement;
				return l.scrollHeight - l.scrollTop - l.clientHeight < 2;
			});
			await page.screenshot({ path: screenshotPath(`chat-375x430-${scheme}.png`) });
			found["phone with keyboard"] = await axe(page);
			for (const [screen, violations] of Object.entries(found))
				expect({ screen, violations }).toEqual({ screen, violations: [] });
			await context.close();
		}, 120_000);
	}
});

describe("the keyboard alone", () => {
	test("name, write, switch rooms (Ctrl+K, Alt+↑/↓), leave: focus is always where the next key goes", async () => {
		const context = await browser.newContext({ viewport: viewports.desk });
		const page = await context.newPage();
		const focused = () => page.evaluate(() => document.activeElement?.id ?? "");
		await page.goto(server.url);
		await page.getByLabel("Your name").waitFor();
		expect(await focused()).toBe("hello-name");
		await page.keyboard.type("kim");
		await page.keyboard.press("Enter");
		await connectedAs(page, "kim");
		await page.waitForFunction(() => document.activeElement?.id === "text");
		await page.keyboard.type("hello from the keyboard");
		await page.keyboard.press("Enter");
		await page
			.locator("#messages li.message:not(.pending)", { hasText: "hello from the keyboard" })
			.waitFor();
		await page.keyboard.press("Control+k");
		expect(await focused()).toBe("switcher-input");
		await page.keyboard.type("ops");
		await page.keyboard.press("Enter");
		await page.locator("#room-title", { hasText: "#ops" }).waitFor();
		await page.waitForFunction(() => document.activeElement?.id === "text");
		await page.keyboard.press("Alt+ArrowUp");
		await page.locator("#room-title", { hasText: "#general" }).waitFor();
		await page.keyboard.press("Alt+ArrowDown");
		await page.locator("#room-title", { hasText: "#ops" }).waitFor();
		// Leaving by keyboard: the × is reachable, and focus comes back to the composer.
		await page.getByRole("button", { name: "Leave #ops" }).focus();
		await page.keyboard.press("Enter");
		await page.locator("#room-title", { hasText: "#general" }).waitFor();
		await page.waitForFunction(() => document.activeElement?.id === "text");
		await page.keyboard.type("back in general");
		await page.keyboard.press("Enter");
		await page.locator("#messages li.message:not(.pending)", { hasText: "back in general" }).waitFor();
		await context.close();
	});
});

describe("on a phone", () => {
	test("at 375×430 (keyboard open) the composer and the newest message are on screen; the rooms are a drawer", async () => {
		const { page, context } = await person(browser, server.url, "pat", { viewport: viewports.keyboard });
		await page.locator("#messages li.message").nth(4).waitFor();
		await say(page, "the newest message, whole");
		const newest = page.locator("#messages li.message", { hasText: "the newest message, whole" });
		await newest.waitFor();
		await page.waitForTimeout(300);
		const compose = await page.locator("#text").boundingBox();
		const list = await page.locator("#messages").boundingBox();
		const last = await newest.boundingBox();
		if (!compose || !list || !last) throw new Error("missing layout");
		expect(compose.y + compose.height).toBeLessThanOrEqual(430);
		expect(last.y + last.height).toBeLessThanOrEqual(list.y + list.height + 1);
		expect(list.height).toBeGreaterThan(150);
		expect(await page.locator("#rooms").isVisible()).toBe(false);
		await page.getByRole("button", { name: "Rooms and members" }).click();
		await page.locator("#rooms").waitFor();
		expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
		await context.close();
	});
});

describe("the reader's place", () => {
	test("kept when switching rooms and after a reload of the connection", async () => {
		const seeder = await chatter(`ws://127.0.0.1:${server.port}/ws`, "seeder", "history");
		for (let i = 1; i <= 80; i++) {
			seeder.send({ type: "send", room: "history", id: `h${i}`, text: `line ${i}` });
			await seeder
				.expect("message", (m) => m.id === `h${i}`, 15_000)
				.catch((e) => {
					throw new Error(`${e.message}: ${JSON.stringify(seeder.frames.slice(-3))}`);
				});
		}
		const { page, context } = await person(browser, `${server.url}/#history`, "reader", {
			viewport: { width: 1000, height: 600 },
		});
		await page.locator("#messages li.message .text", { hasText: /^line 80$/ }).waitFor();
		await page.locator("#messages").evaluate((l) => {
			l.scrollTop = l.scrollHeight / 2;
		});
		await page.waitForTimeout(200);
		const place = () => page.locator("#messages").evaluate((l) => l.scrollTop);
		const before = await place();
		await page.keyboard.press("Control+k");
		await page.keyboard.type("general");
		await page.keyboard.press("Enter");
		await page.locator("#room-title", { hasText: "#general" }).waitFor();
		await page.keyboard.press("Control+k");
		await page.keyboard.type("history");
		await page.keyboard.press("Enter");
		await page.locator("#room-title", { hasText: "#history" }).waitFor();
		expect(Math.abs((await place()) - before)).toBeLessThan(5);
		// Someone talks while the reader is up in the history: the reader stays where they were.
		seeder.send({ type: "send", room: "history", id: "h81", text: "line 81" });
		await page.locator("#messages li.message .text", { hasText: /^line 81$/ }).waitFor();
		expect(Math.abs((await place()) - before)).toBeLessThan(5);
		seeder.close();
		await context.close();
	});
});

describe("emoji", () => {
	test("the picker loads on first use with its data from this server, and puts the emoji in the box; :shortcodes: complete", async () => {
		const { page, context } = await person(browser, server.url, "emma");
		const elsewhere: string[] = [];
		page.on("request", (r) => {
			if (!r.url().startsWith(server.url) && !r.url().startsWith("ws:") && !r.url().startsWith("data:"))
				elsewhere.push(r.url());
		});
		expect(await page.locator("emoji-picker").count()).toBe(0);
		await page.getByRole("button", { name: "Insert emoji" }).click();
		const picker = page.locator("emoji-picker");
		await picker.waitFor();
		await picker.locator('button.emoji[role="menuitem"]').first().click({ timeout: 30_000 });
		// The picker looks the emoji up in its database before it says which was chosen.
		await page.waitForFunction(() => (document.getElementById("text") as HTMLTextAreaElement).value !== "");
		expect(await page.locator("#text").inputValue()).toBe("😀");
		expect(await picker.count()).toBe(0);
		await page.locator("#text").fill("");
		await page.locator("#text").pressSequentially("party :tada", { delay: 20 });
		await page.locator("#suggestions [role=option]", { hasText: ":tada:" }).waitFor();
		await page.keyboard.press("Enter");
		expect(await page.locator("#text").inputValue()).toBe("party 🎉 ");
		await page.keyboard.press("Enter");
		await page.locator("#messages li.message:not(.pending)", { hasText: "party 🎉" }).waitFor();
		expect((await shownTexts(page)).at(-1)).toBe("party 🎉");
		expect(elsewhere).toEqual([]);
		await context.close();
	});
});

describe("density and first paint", () => {
	test("at 1280×800 twice as many messages fit as the old page's 12; a remembered name never shows the name form", async () => {
		const room = "density";
		const talk = [
			await chatter(`ws://127.0.0.1:${server.port}/ws`, "dana", room),
			await chatter(`ws://127.0.0.1:${server.port}/ws`, "eli", room),
		];
		// A conversation: short messages, each person a few in a row.
		for (let i = 0; i < 60; i++) {
			const who = talk[Math.floor(i / 3) % 2] as Client;
			who.send({ type: "send", room, id: `d${i}`, text: `short message ${i}` });
			await who.expect("message", (m) => m.id === `d${i}`, 15_000);
		}
		const { page, context } = await person(browser, `${server.url}/#${room}`, "fay", {
			viewport: viewports.desk,
		});
		await page.locator("#messages li.message .text", { hasText: /^short message 59$/ }).waitFor();
		await page.waitForTimeout(300);
		const visible = await page.locator("#messages").evaluate((list) => {
			const box = list.getBoundingClientRect();
			return [...list.querySelectorAll("li.message .text")].filter((text) => {
				const r = text.getBoundingClientRect();
				return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
			}).length;
		});
		console.log(`messages fully on screen at 1280×800: ${visible}`);
		await page.screenshot({ path: screenshotPath("density-1280x800-light.png") });
		expect(visible).toBeGreaterThanOrEqual(24);
		// A reload with the name remembered: the name form must not flash.
		await page.addInitScript(() => {
			const w = window as unknown as { sawNameForm: boolean };
			w.sawNameForm = false;
			new MutationObserver(() => {
				if (document.getElementById("hello-name")) w.sawNameForm = true;
			}).observe(document, { childList: true, subtree: true });
		});
		await page.reload();
		await connectedAs(page, "fay");
		expect(await page.evaluate(() => (window as unknown as { sawNameForm: boolean }).sawNameForm)).toBe(
			false,
		);
		for (const c of talk) c.close();
		await context.close();
	}, 120_000);
});
