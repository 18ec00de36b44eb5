// The page in Chromium when things go wrong: the network drops, a room floods with joins and leaves, the server refuses the address.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, WebSocketRoute } from "playwright-core";
import { connectedAs, launch, person, say, serve, shownTexts } from "./e2e-browser.ts";
import { chatter, tempDir } from "./helpers.ts";

let browser: Browser;

beforeAll(async () => {
	browser = await launch();
}, 120_000);

afterAll(async () => {
	await browser?.close();
});

describe("the page's connection", () => {
	test("offline for 40 s: it says Offline within 15 s, and what was written meanwhile arrives once", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"));
		try {
			const alice = await person(browser, server.url, "alice");
			const bob = await chatter(`ws://127.0.0.1:${server.port}/ws`, "bob", "general");
			await alice.context.setOffline(true);
			const wentOffline = Date.now();
			await alice.page.locator("#status", { hasText: "Offline" }).waitFor({ timeout: 15_000 });
			await say(alice.page, "written offline, one");
			await say(alice.page, "written offline, two");
			await alice.page.locator("#messages li.pending").nth(1).waitFor();
			// The network stays away for 40 s in all; the page must keep saying so.
			await Bun.sleep(Math.max(0, 40_000 - (Date.now() - wentOffline)));
			expect(await alice.page.locator("#status").textContent()).toContain("Offline");
			await alice.context.setOffline(false);
			await connectedAs(alice.page, "alice", 120_000);
			await alice.page.locator("#messages li.pending").waitFor({ state: "detached", timeout: 30_000 });
			expect(await shownTexts(alice.page)).toEqual(["written offline, one", "written offline, two"]);
			await bob.expect("message", (m) => m.text === "written offline, two");
			bob.send({ type: "history", room: "general" });
			const stored = (await bob.expect("history")).messages.map((m) => m.text);
			expect(stored).toEqual(["written offline, one", "written offline, two"]);
			const heard = bob.frames.flatMap((f) => (f.type === "message" ? [f.text] : []));
			expect(heard).toEqual(["written offline, one", "written offline, two"]);
			expect(alice.problems).toEqual([]);
		} finally {
			server.proc.kill("SIGKILL");
		}
	}, 240_000);

	test("a server that refuses this address: the page shows the server's reason, or reconnects if it gives none", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"), 0, "--origin", "https://chat.example.com");
		try {
			const context = await browser.newContext();
			const page = await context.newPage();
			const check = await fetch(`${server.url}/api/upgrade-check?origin=${encodeURIComponent(server.url)}`);
			await page.goto(server.url);
			if (check.status === 404) {
				// A server without the check: the page falls back to its ordinary reconnecting.
				await page.locator("#status", { hasText: /Reconnecting in \d+ s/ }).waitFor();
			} else {
				const { message } = (await check.json()) as { message: string };
				expect(message).toContain("--origin");
				await page.locator("#status", { hasText: message }).waitFor();
			}
			await context.close();
		} finally {
			server.proc.kill("SIGKILL");
		}
	});

	test("the reason shown is the server's own sentence, and the page retries when it says", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"), 0, "--origin", "https://chat.example.com");
		try {
			const context = await browser.newContext();
			const page = await context.newPage();
			const message = "This address is not allowed by the server's --origin setting (https://chat.example.com).";
			let asked = 0;
			await page.route("**/api/upgrade-check**", (route) => {
				asked++;
				return route.fulfill({
					status: 403,
					json: { ok: false, code: "origin_not_allowed", message, retryAfter: 1 },
				});
			});
			await page.goto(server.url);
			await page.locator("#status", { hasText: message }).waitFor();
			expect(await page.locator("#status").textContent()).not.toContain("Reconnecting");
			// Retried after its retryAfter, and asked again.
			const deadline = Date.now() + 10_000;
			while (asked < 2 && Date.now() < deadline) await Bun.sleep(100);
			expect(asked).toBeGreaterThanOrEqual(2);
			await context.close();
		} finally {
			server.proc.kill("SIGKILL");
		}
	});
});

describe("a join/leave flood", () => {
	test("thousands of presence frames: clicks are handled within 200 ms throughout and the DOM stays bounded", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"));
		try {
			const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
			const page = await context.newPage();
			const problems: string[] = [];
			page.on("pageerror", (e) => problems.push(e.message));
			let socket: WebSocketRoute | undefined;
			// The real server behind, with the flood replayed into the page's socket as a flooding member would cause it.
			await page.routeWebSocket(/\/ws$/, (ws) => {
				ws.connectToServer();
				socket = ws;
			});
			await page.goto(server.url);
			await page.getByLabel("Your name").fill("alice");
			await page.getByRole("button", { name: "Start chatting" }).click();
			await connectedAs(page, "alice");
			await page.locator("#members li").first().waitFor();
			await page.evaluate(() => {
				const w = window as unknown as { delays: number[] };
				w.delays = [];
				// How long each click waited for the page: from the input to its handler.
				document.addEventListener("pointerdown", (e) => w.delays.push(performance.now() - e.timeStamp), true);
			});
			const box = await page.locator("#room-title").boundingBox();
			if (!box || !socket) throw new Error("no room title or socket");
			const route = socket;
			const names = 200;
			const rounds = 150;
			let done = false;
			const started = Date.now();
			const flood = (async () => {
				for (let round = 0; round < rounds; round++) {
					for (let i = 0; i < names; i++) {
						route.send(
							JSON.stringify({ type: "presence", room: "general", name: `flood${i}`, online: round % 2 === 0 }),
						);
					}
					await Bun.sleep(0);
				}
				done = true;
			})();
			let clicks = 0;
			while (!done) {
				await page.mouse.click(box.x + 5, box.y + 5);
				clicks++;
				await Bun.sleep(50);
			}
			await flood;
			// The last round took everyone out again: only alice is left.
			await page.locator("#members li").nth(1).waitFor({ state: "detached", timeout: 30_000 });
			await page.mouse.click(box.x + 5, box.y + 5);
			const delays = await page.evaluate(() => (window as unknown as { delays: number[] }).delays);
			console.log(
				`flood: ${names * rounds} presence frames in ${((Date.now() - started) / 1000).toFixed(1)} s, ${clicks} clicks, slowest handled after ${Math.max(...delays).toFixed(0)} ms`,
			);
			expect(delays.length).toBe(clicks + 1);
			expect(clicks).toBeGreaterThan(3);
			expect(Math.max(...delays)).toBeLessThan(200);
			expect(await page.locator("#messages li").count()).toBeLessThan(60);
			expect(await page.locator("#members li").allTextContents()).toEqual(["alice (you)"]);
			expect(problems).toEqual([]);
			await context.close();
		} finally {
			server.proc.kill("SIGKILL");
		}
	}, 180_000);
});
