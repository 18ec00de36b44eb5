// The page in Chromium when things go wrong: the network drops, a room floods with joins and leaves, the server refuses the address.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser } from "playwright-core";
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
			// Shown at once, whatever becomes of the socket (Chromium's emulation may leave an open one working).
			expect(await alice.page.locator("#messages li.message .text").allTextContents()).toEqual([
				"written offline, one",
				"written offline, two",
			]);
			// The network stays away for 40 s in all.
			await Bun.sleep(Math.max(0, 40_000 - (Date.now() - wentOffline)));
			await alice.context.setOffline(false);
			await connectedAs(alice.page, "alice", 120_000);
			await alice.page.waitForFunction(() => !document.querySelector("#messages li.pending"), null, {
				timeout: 30_000,
			});
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
			const message =
				"This address is not allowed by the server's --origin setting (https://chat.example.com).";
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
	test("100,000 presence frames: clicks are handled within 200 ms throughout and the DOM stays bounded", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"));
		try {
			const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
			// The page's own socket, kept where the test can reach it: the flood is delivered on it, inside the
			// page, as fast as the page takes it (as a burst from the network arrives), frame by frame.
			await context.addInitScript(() => {
				const Native = WebSocket;
				const w = window as unknown as { socket?: WebSocket; WebSocket: typeof WebSocket };
				w.WebSocket = class extends Native {
					constructor(url: string | URL, protocols?: string | string[]) {
						super(url, protocols);
						w.socket = this;
					}
				};
			});
			const page = await context.newPage();
			const problems: string[] = [];
			page.on("pageerror", (e) => problems.push(e.message));
			await page.goto(server.url);
			await page.getByLabel("Your name").fill("alice");
			await page.getByRole("button", { name: "Start chatting" }).click();
			await connectedAs(page, "alice");
			await page.locator("#members li").first().waitFor();
			const box = await page.locator("#room-title").boundingBox();
			if (!box) throw new Error("no room title");
			const names = 200;
			const rounds = 500;
			await page.evaluate(
				({ names, rounds }) => {
					const w = window as unknown as { socket: WebSocket; delays: number[]; flooded: number };
					w.delays = [];
					w.flooded = 0;
					(w as unknown as { longest: number }).longest = 0;
					new PerformanceObserver((list) => {
						for (const e of list.getEntries()) {
							const x = w as unknown as { longest: number };
							x.longest = Math.max(x.longest, e.duration);
						}
					}).observe({ type: "longtask" });
					// How long each click waited for the page: from the input to its handler.
					document.addEventListener(
						"pointerdown",
						(e) => w.delays.push(performance.now() - e.timeStamp),
						true,
					);
					const total = names * rounds;
					const channel = new MessageChannel();
					// One task per 25 frames, queued like network messages: input can come between them.
					channel.port1.onmessage = () => {
						for (let k = 0; k < 25 && w.flooded < total; k++, w.flooded++) {
							const i = w.flooded % names;
							const online = Math.floor(w.flooded / names) % 2 === 0;
							const data = JSON.stringify({ type: "presence", room: "general", name: `flood${i}`, online });
							w.socket.dispatchEvent(new MessageEvent("message", { data }));
						}
						if (w.flooded < total) channel.port2.postMessage(0);
					};
					channel.port2.postMessage(0);
				},
				{ names, rounds },
			);
			const started = Date.now();
			let clicks = 0;
			const flooded = () => page.evaluate(() => (window as unknown as { flooded: number }).flooded);
			while ((await flooded()) < names * rounds) {
				await page.mouse.click(box.x + 5, box.y + 5);
				clicks++;
				await Bun.sleep(50);
			}
			const seconds = (Date.now() - started) / 1000;
			// The last round took everyone out again: only alice is left.
			await page.locator("#members li").nth(1).waitFor({ state: "detached", timeout: 30_000 });
			await page.mouse.click(box.x + 5, box.y + 5);
			const { delays, longest } = await page.evaluate(() => {
				const w = window as unknown as { delays: number[]; longest: number };
				return { delays: w.delays, longest: w.longest };
			});
			console.log(
				`flood: ${names * rounds} presence frames in ${seconds.toFixed(1)} s, ${clicks} clicks meanwhile, slowest handled after ${Math.max(...delays).toFixed(0)} ms, longest task ${longest.toFixed(0)} ms`,
			);
			expect(delays.length).toBe(clicks + 1);
			expect(clicks).toBeGreaterThan(5);
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
