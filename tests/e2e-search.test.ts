// Search and the reader's place in Chromium: a result in another room opens in context and scrolls down to the live end
// whole; the search panel passes axe in light and dark and at 375 px; a reader up in the history keeps their place
// across a real server restart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { connectedAs, launch, person, screenshotPath, serve } from "./e2e-browser.ts";
import { type Client, chatter, ROOT, type Spawned, tempDir } from "./helpers.ts";

const AXE = join(ROOT, "node_modules", "axe-core", "axe.min.js");
const NEEDLE = "the ERR_SOCKET_TIMEOUT came back <b>again</b> <img src=x onerror=alert(1)>";

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;
let seeder: Client;

/** Sends texts to a room in batches of 20, waiting for each batch's last echo. */
async function fill(c: Client, room: string, texts: string[], prefix: string): Promise<void> {
	for (let i = 0; i < texts.length; i += 20) {
		const batch = texts.slice(i, i + 20);
		batch.forEach((text, j) => {
			c.send({ type: "send", room, id: `${prefix}${i + j}`, text });
		});
		await c.expect("message", (m) => m.id === `${prefix}${i + batch.length - 1}`, 15_000);
	}
}

beforeAll(async () => {
	browser = await launch();
	dir = tempDir();
	server = await serve(join(dir.path, "chat.db"), 0, "--rate", "send=1000/1000");
	seeder = await chatter(`ws://127.0.0.1:${server.port}/ws`, "bob", "ops");
	// #ops: 300 messages, the one to find at seq 60.
	const texts = Array.from({ length: 300 }, (_, i) => (i + 1 === 60 ? NEEDLE : `ops line ${i + 1}`));
	await fill(seeder, "ops", texts, "o");
}, 180_000);

afterAll(async () => {
	seeder?.close();
	server?.proc.kill("SIGKILL");
	dir?.[Symbol.dispose]();
	await browser?.close();
});

interface Violation {
	id: string;
	impact: string;
	nodes: { target: string[] }[];
}

async function axe(page: Page): Promise<string[]> {
	if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
	const violations = (await page.evaluate(async () => {
		const run = (window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe.run;
		return (await run()).violations;
	})) as Violation[];
	return violations.map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

const seqsShown = (page: Page) =>
	page
		.locator("#messages li.message:not(.pending)")
		.evaluateAll((lis) => lis.map((li) => Number((li as HTMLElement).dataset.seq)));

async function searchFor(page: Page, query: string): Promise<void> {
	await page.locator("#search-input").waitFor();
	await page.keyboard.press("Control+Shift+F");
	await page
		.locator("#search-input:focus")
		.waitFor({ timeout: 10_000 })
		.catch(async (e) => {
			const where = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 200));
			throw new Error(`${e.message}; focus is on ${where}`);
		});
	await page.keyboard.type(query);
	await page.keyboard.press("Enter");
	await page.locator("#search-status", { hasText: "newest first" }).waitFor();
}

describe("search in Chromium", () => {
	test("a message in another room: found with its words marked, opened highlighted among its neighbours, and scrolling down reaches the newest with nothing missing", async () => {
		const alice = await person(browser, server.url, "alice", { viewport: { width: 1280, height: 800 } });
		const page = alice.page;
		await searchFor(page, "SOCKET_TIMEOUT");
		const hit = page.locator(".search-results .hit").first();
		expect(await hit.locator(".hit-room").textContent()).toBe("#ops");
		// The markup in the message is text in the snippet, and only the match is marked.
		expect(await hit.locator(".snippet").textContent()).toBe(NEEDLE);
		expect(await hit.locator("mark").allTextContents()).toEqual(["SOCKET_TIMEOUT"]);
		expect(await page.locator("#search-panel img, #search-panel b").count()).toBe(0);

		await hit.click();
		await page.locator("#room-title", { hasText: "#ops" }).waitFor();
		const found = page.locator("#messages li.message.found");
		await found.waitFor();
		expect(await found.getAttribute("data-seq")).toBe("60");
		expect(await found.locator(".text").textContent()).toBe(NEEDLE);
		expect(await page.locator("#messages img, #messages .text b").count()).toBe(0);
		expect(await found.evaluate((li) => document.activeElement === li)).toBe(true);
		// In view, with its neighbours around it.
		const box = await found.boundingBox();
		const list = await page.locator("#messages").boundingBox();
		expect(box && list && box.y >= list.y && box.y + box.height <= list.y + list.height).toBe(true);
		const seqs = await seqsShown(page);
		expect(seqs).toContain(59);
		expect(seqs).toContain(61);

		// The room goes on meanwhile.
		await fill(seeder, "ops", ["live 301", "live 302", "live 303"], "live");
		// The reader scrolls down to the newest: every message once, in order, up to the live ones.
		for (let i = 0; i < 60; i++) {
			await page.locator("#messages").evaluate((l) => {
				l.scrollTop = l.scrollHeight;
			});
			if ((await page.locator("#messages li.newer").count()) === 0) break;
			await page.waitForTimeout(250);
		}
		await page.locator("#messages li.message .text", { hasText: "live 303" }).waitFor();
		const all = await seqsShown(page);
		expect(all.at(-1)).toBe(303);
		expect(all).toEqual(Array.from({ length: all.length }, (_, i) => (all[0] as number) + i));
		// And live messages keep coming at the end, not held back.
		seeder.send({ type: "send", room: "ops", id: "after-all", text: "live 304" });
		await page.locator("#messages li.message:not(.pending) .text", { hasText: "live 304" }).waitFor();
		expect((await seqsShown(page)).at(-1)).toBe(304);
		expect(alice.problems).toEqual([]);
		await alice.context.close();
	}, 120_000);

	for (const scheme of ["light", "dark"] as const) {
		test(`the search panel: axe finds nothing (${scheme}), on a desk and on a phone, by keyboard alone; screenshots saved`, async () => {
			const viewport = { width: 1280, height: 800 };
			const p = await person(browser, server.url, `kb-${scheme}`, {
				viewport,
				colorScheme: scheme,
				bypassCSP: true,
			});
			const page = p.page;
			const found: Record<string, string[]> = {};
			await searchFor(page, "ops line");
			await page.locator(".search-results .hit").nth(5).waitFor();
			found["search results"] = await axe(page);
			await page.screenshot({ path: screenshotPath(`search-1280x800-${scheme}.png`) });
			// Keyboard alone: Tab from the field goes through the filters to the results; ↓ goes there at once.
			await page.locator("#search-input").focus();
			let reached = false;
			for (let i = 0; i < 25 && !reached; i++) {
				await page.keyboard.press("Tab");
				reached = await page.evaluate(() => document.activeElement?.classList.contains("hit") ?? false);
			}
			expect(reached).toBe(true);
			await page.locator("#search-input").focus();
			await page.keyboard.press("ArrowDown");
			await page.keyboard.press("ArrowDown");
			expect(
				await page.evaluate(() => document.activeElement?.closest("li")?.previousElementSibling !== null),
			).toBe(true);
			await page.keyboard.press("Enter");
			await page.locator("#messages li.message.found").waitFor();
			expect(await page.locator("#search-panel").count()).toBe(0);
			found["result opened"] = await axe(page);
			// Escape after reopening closes the panel and puts the person back in the composer.
			await page.keyboard.press("Control+Shift+F");
			await page.locator("#search-input:focus").waitFor();
			await page.keyboard.press("Escape");
			// The panel may never have been drawn (the keys came within one frame): wait for the focus itself.
			await page.locator("#text:focus").waitFor();
			expect(await page.locator("#search-panel").count()).toBe(0);
			expect(await page.locator("#search-input").inputValue()).toBe("ops line");

			await page.setViewportSize({ width: 375, height: 740 });
			// "/" is a slash in the composer, and opens the search anywhere else.
			await page.keyboard.press("/");
			expect(await page.locator("#search-panel").count()).toBe(0);
			await page.locator("#messages").focus();
			await page.keyboard.press("/");
			await page.locator("#search-input:focus").waitFor();
			await page.locator(".search-results .hit").first().waitFor();
			const panel = await page.locator("#search-panel").boundingBox();
			expect(panel?.width).toBe(375);
			expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
			found["search on a phone"] = await axe(page);
			await page.screenshot({ path: screenshotPath(`search-375x740-${scheme}.png`) });
			await page.getByRole("button", { name: "Close search" }).click();
			for (const [screen, violations] of Object.entries(found))
				expect({ screen, violations }).toEqual({ screen, violations: [] });
			expect(p.problems).toEqual([]);
			await p.context.close();
		}, 120_000);
	}
});

describe("the reader's place across a real reconnect", () => {
	test("a person reading old history stays at the same message when the server restarts", async () => {
		using own = tempDir();
		const db = join(own.path, "chat.db");
		const first = await serve(db, 0, "--rate", "send=1000/1000");
		let second: Spawned | undefined;
		const writer = await chatter(`ws://127.0.0.1:${first.port}/ws`, "writer", "history");
		try {
			await fill(
				writer,
				"history",
				Array.from({ length: 200 }, (_, i) => `history line ${i + 1}`),
				"h",
			);
			writer.close();
			const { page, context, problems } = await person(browser, `${first.url}/#history`, "reader", {
				viewport: { width: 1000, height: 600 },
			});
			await page.locator("#messages li.message .text", { hasText: /^history line 200$/ }).waitFor();
			// Up into the history: older messages load, and the reader stops somewhere in the middle.
			for (let i = 0; i < 20 && (await page.locator("#messages li.message").count()) < 100; i++) {
				await page.locator("#messages").evaluate((l) => {
					l.scrollTop = 0;
				});
				await page.waitForTimeout(200);
			}
			await page.locator("#messages").evaluate((l) => {
				l.scrollTop = l.scrollHeight / 3;
			});
			await page.waitForTimeout(300);
			const place = () =>
				page.locator("#messages").evaluate((l) => {
					for (const row of l.querySelectorAll<HTMLElement>("li.message[data-seq]"))
						if (row.offsetTop + row.offsetHeight > l.scrollTop)
							return { seq: row.dataset.seq, offset: row.offsetTop - l.scrollTop };
					return undefined;
				});
			const before = await place();
			expect(before?.seq).toBeDefined();

			first.proc.kill("SIGKILL");
			await first.proc.exited;
			await page.locator("#status", { hasText: /Reconnecting/ }).waitFor();
			second = await serve(db, first.port, "--rate", "send=1000/1000");
			// Someone talks as the server comes back: that goes at the end, not under the reader.
			const late = await chatter(`ws://127.0.0.1:${second.port}/ws`, "writer", "history");
			late.send({ type: "send", room: "history", id: "late", text: "history line 201" });
			await late.expect("message", (m) => m.id === "late");
			await connectedAs(page, "reader");
			await page.locator("#messages li.message .text", { hasText: /^history line 201$/ }).waitFor();
			const after = await place();
			expect(after?.seq).toBe(before?.seq);
			expect(Math.abs((after?.offset ?? 999) - (before?.offset ?? 0))).toBeLessThan(5);
			late.close();
			expect(problems).toEqual([]);
			await context.close();
		} finally {
			first.proc.kill("SIGKILL");
			second?.proc.kill("SIGKILL");
		}
	}, 120_000);
});
