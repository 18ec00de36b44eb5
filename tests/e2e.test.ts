// End to end: Debian's Chromium, driven by playwright-core, against the compiled binary on a free port with a temp database.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { launch, person, say, screenshotPath, serve, shownTexts } from "./e2e-browser.ts";
import { type Redis, startRedis } from "./engines.ts";
import { BINARY, chatter, type Spawned, tempDir, twoOnOnePort } from "./helpers.ts";

let browser: Browser;

beforeAll(async () => {
	browser = await launch();
}, 120_000);

afterAll(async () => {
	await browser?.close();
});

describe("the page in Chromium", () => {
	/** Two processes of the binary on one port and one SQLite file, joined by Redis. */
	async function serveTwo(dir: string): Promise<{ url: string; servers: Spawned[]; redis: Redis }> {
		const redis = await startRedis();
		const { url, servers } = await twoOnOnePort([BINARY], join(dir, "chat.db"), redis.url);
		return { url, servers, redis };
	}

	test.each([
		["one process", false],
		["two processes behind one port", true],
	])(
		"alice and bob see each other's messages, the member list and the typing indicator (%s)",
		async (_, two) => {
			using dir = tempDir();
			const setup = two ? await serveTwo(dir.path) : undefined;
			const single = two ? undefined : await serve(join(dir.path, "chat.db"));
			const server = { url: setup?.url ?? (single as Spawned).url };
			try {
				const alice = await person(browser, server.url, "alice");
				const bob = await person(browser, server.url, "bob");
				await alice.page.locator("#members li", { hasText: "bob" }).waitFor();
				expect(await bob.page.locator("#members li").allTextContents()).toEqual(["alice", "bob (you)"]);
				await say(alice.page, "hi bob, see https://example.com");
				await bob.page.locator("#messages .message .text", { hasText: "hi bob" }).waitFor();
				const link = bob.page.locator("#messages a");
				expect(await link.getAttribute("rel")).toBe("noopener noreferrer");
				const bobBox = bob.page.getByLabel(/^Message #/);
				await bobBox.pressSequentially("hello alice <b>!</b>", { delay: 10 });
				await alice.page.getByText("bob is typing…").waitFor();
				await bobBox.press("Enter");
				await alice.page.locator("#messages .message .text", { hasText: "hello alice <b>!</b>" }).waitFor();
				// A message from bob ends his "is typing".
				await alice.page.getByText("bob is typing…").waitFor({ state: "detached" });
				expect(await shownTexts(alice.page)).toEqual(await shownTexts(bob.page));
				expect(await alice.page.locator("#messages b").count()).toBe(0);
				await alice.page.screenshot({ path: screenshotPath(two ? "chat-two-processes.png" : "chat.png") });
				expect(alice.problems.concat(bob.problems)).toEqual([]);
			} finally {
				single?.proc.kill("SIGKILL");
				for (const p of setup?.servers ?? []) p.proc.kill("SIGKILL");
				await setup?.redis[Symbol.asyncDispose]();
			}
		},
	);

	test("the server is killed and restarted: both pages recover by themselves and every message shows once, in order", async () => {
		using dir = tempDir();
		const db = join(dir.path, "chat.db");
		const first = await serve(db);
		const port = first.port;
		let second: Spawned | undefined;
		try {
			const alice = await person(browser, first.url, "alice");
			const bob = await person(browser, first.url, "bob");
			await say(alice.page, "one");
			await say(bob.page, "two");
			await bob.page.locator("#messages .message .text", { hasText: "two" }).waitFor();
			await alice.page.locator("#messages .message:not(.pending) .text", { hasText: "two" }).waitFor();

			first.proc.kill("SIGKILL");
			await first.proc.exited;
			for (const p of [alice.page, bob.page]) {
				await p
					.locator("#status")
					.filter({ hasText: /Reconnecting in \d+ s/ })
					.waitFor();
			}
			await say(bob.page, "three, written during the outage");
			await bob.page.locator("#messages li.pending", { hasText: "three" }).waitFor();

			second = await serve(db, port);
			for (const [p, name] of [
				[alice.page, "alice"],
				[bob.page, "bob"],
			] as const) {
				await p
					.locator("#status")
					.filter({ hasText: `Connected as ${name}` })
					.waitFor({ timeout: 20_000 });
			}
			await bob.page.locator("#messages li.pending").waitFor({ state: "detached", timeout: 10_000 });
			await say(alice.page, "four");
			const expected = ["one", "two", "three, written during the outage", "four"];
			for (const p of [alice.page, bob.page]) {
				await p.locator("#messages .message:not(.pending) .text", { hasText: "four" }).waitFor();
				expect(await shownTexts(p)).toEqual(expected);
				const seqs = await p
					.locator("#messages li.message")
					.evaluateAll((lis) => lis.map((li) => (li as HTMLElement).dataset.seq));
				expect(seqs).toEqual(["1", "2", "3", "4"]);
			}
			expect(alice.problems.concat(bob.problems)).toEqual([]);
		} finally {
			first.proc.kill("SIGKILL");
			second?.proc.kill("SIGKILL");
		}
	}, 60_000);

	test("on a 375 px wide phone there is no horizontal scrolling, even with long words", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"));
		try {
			const phone = await person(browser, `${server.url}/#dev`, "carol", {
				viewport: { width: 375, height: 740 },
			});
			expect(await phone.page.locator("#room-title").textContent()).toBe("#dev");
			await say(phone.page, `a${"very".repeat(60)}longword https://example.com/${"path/".repeat(30)}`);
			await phone.page.locator("#messages .message:not(.pending)").waitFor();
			const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
			expect(width).toBeLessThanOrEqual(375);
			await phone.page.screenshot({ path: screenshotPath("phone.png") });
		} finally {
			server.proc.kill("SIGKILL");
		}
	});

	test("scrolling up loads older messages without moving what the reader sees", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"), 0, "--send-burst", "200");
		try {
			const seeder = await chatter(`ws://127.0.0.1:${server.port}/ws`, "seeder", "general");
			for (let i = 1; i <= 120; i++) {
				seeder.send({ type: "send", room: "general", id: `s${i}`, text: `message number ${i}` });
				if (i % 15 === 0) await seeder.expect("message", (m) => m.seq === i);
			}
			const { page } = await person(browser, server.url, "erin", { viewport: { width: 900, height: 600 } });
			await page.locator("#messages .message .text", { hasText: "message number 120" }).waitFor();
			expect(await page.locator("#messages .message").count()).toBe(50);
			const anchor = page.locator("#messages .message", { hasText: /message number 71$/ });
			// Scrolled to the top, the oldest shown (71) is at the top of the list; the older ones load above it.
			await page.locator("#messages").evaluate((list) => {
				list.scrollTop = 0;
			});
			await page.locator("#messages .message").nth(50).waitFor();
			expect(await page.locator("#messages .message").count()).toBe(100);
			const listTop = (await page.locator("#messages").boundingBox())?.y ?? 0;
			const at = ((await anchor.boundingBox())?.y ?? 0) - listTop;
			expect(at).toBeGreaterThanOrEqual(-5);
			expect(at).toBeLessThan(60);
			const texts = await page.locator("#messages .message .text").allTextContents();
			expect(texts[0]).toBe("message number 21");
			expect(texts.at(-1)).toBe("message number 120");
		} finally {
			server.proc.kill("SIGKILL");
		}
	});

	test("keyboard alone: join a room by name and talk in it; the URL follows the room", async () => {
		using dir = tempDir();
		const server = await serve(join(dir.path, "chat.db"));
		try {
			const { page } = await person(browser, server.url, "dana");
			await page.getByLabel("Join a room").focus();
			await page.keyboard.type("games");
			await page.keyboard.press("Enter");
			await page.locator("#room-title", { hasText: "#games" }).waitFor();
			expect(new URL(page.url()).hash).toBe("#games");
			await page.keyboard.type("typed without a mouse");
			await page.keyboard.press("Enter");
			await page
				.locator("#messages .message:not(.pending) .text", { hasText: "typed without a mouse" })
				.waitFor();
			await page.goto(`${server.url}/#general`);
			await page.locator("#room-title", { hasText: "#general" }).waitFor();
			expect(await page.locator("#rooms .room").allTextContents()).toEqual(["#general", "#games"]);
		} finally {
			server.proc.kill("SIGKILL");
		}
	});
});
