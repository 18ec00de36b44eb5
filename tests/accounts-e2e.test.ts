// The account screens in Chromium (Debian's, driven by playwright-core) against hubbub from source
// under --auth accounts: first-run setup, an invite opened in a second browser context, chat, sign
// out and back in from the chat page's menu, wrong passwords and throttling, a deactivated or
// signed-out-everywhere page cut off at once; axe on every account screen, light and dark, at 375 px.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { launchChromium, screenshotPath } from "./e2e-browser.ts";
import { fromSource, ROOT, type Spawned, spawnServer, tempDir } from "./helpers.ts";

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
	dir = tempDir("hubbub-acct-e2e-");
	server = await spawnServer(
		fromSource("--db", join(dir.path, "chat.db"), "--auth", "accounts", "--trust-proxy", "127.0.0.1"),
	);
	browser = await launchChromium();
}, 120_000);

afterAll(async () => {
	await browser?.close();
	server?.proc.kill();
	await server?.proc.exited;
	dir?.[Symbol.dispose]();
});

/** axe-core's violations on the page as it is now. */
async function axe(page: Page): Promise<string[]> {
	await page.addScriptTag({ path: join(ROOT, "node_modules", "axe-core", "axe.min.js") });
	const violations = (await page.evaluate(async () => {
		const run = (window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe.run;
		return (await run()).violations;
	})) as { id: string; impact: string; nodes: { target: string[] }[] }[];
	return violations.map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** Opens a WebSocket from the page (with its cookie) and resolves with the name in `welcome`; keeps it as window.hubbubSocket. */
function connect(page: Page): Promise<string> {
	return page.evaluate(
		() =>
			new Promise<string>((resolve, reject) => {
				const ws = new WebSocket(`${location.origin.replace("http", "ws")}/ws`);
				(window as unknown as { hubbubSocket: WebSocket }).hubbubSocket = ws;
				ws.onmessage = (e) => resolve(JSON.parse(e.data).name);
				ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
			}),
	);
}

/** Resolves with the close code of the page's socket. */
function closedWith(page: Page): Promise<number> {
	return page.evaluate(
		() =>
			new Promise<number>((resolve) => {
				const ws = (window as unknown as { hubbubSocket: WebSocket }).hubbubSocket;
				if (ws.readyState === WebSocket.CLOSED) resolve(-1);
				ws.onclose = (e) => resolve(e.code);
			}),
	);
}

/**
 * axe finds nothing on the screen in light and dark mode, nor at a phone's 375 px (where nothing may
 * scroll sideways either); with `shot`, screenshots of each go to artifacts/screenshots/.
 */
async function audit(page: Page, screen: string, shot?: string): Promise<void> {
	const size = page.viewportSize() ?? { width: 1100, height: 760 };
	for (const [colorScheme, width] of [
		["light", size.width],
		["dark", size.width],
		["light", 375],
		["dark", 375],
	] as const) {
		await page.setViewportSize({ width, height: size.height });
		await page.emulateMedia({ colorScheme });
		expect({ screen, colorScheme, width, violations: await axe(page) }).toEqual({
			screen,
			colorScheme,
			width,
			violations: [],
		});
		if (width === 375)
			expect(
				await page.evaluate(() => document.documentElement.scrollWidth - innerWidth),
			).toBeLessThanOrEqual(0);
		if (shot)
			await page.screenshot({
				path: screenshotPath(`account-${shot}-${colorScheme}-${width}.png`),
				fullPage: true,
			});
	}
	await page.setViewportSize(size);
	await page.emulateMedia({ colorScheme: "light" });
}

/** A browser context of its own (a private window); axe is injected as a script, so the page's CSP lets it past. */
function context(options: BrowserContextOptions = {}) {
	return browser.newContext({ bypassCSP: true, viewport: { width: 1100, height: 760 }, ...options });
}

test("first-run setup, an invite in a second context, chat, sign out and in, wrong passwords, throttling, deactivation and sign out everywhere; axe on every screen", async () => {
	const problems: string[] = [];
	const watch = (page: Page) => page.on("pageerror", (e) => problems.push(e.message));
	const adminContext = await context();
	const admin = await adminContext.newPage();
	watch(admin);
	await admin.goto(server.url);
	// Nobody is signed in and no account exists: the chat address leads to the setup form.
	await admin.getByRole("heading", { name: "Set up this server" }).waitFor();
	expect(admin.url()).toBe(`${server.url}/account`);
	await audit(admin, "setup", "setup");
	await admin.getByLabel("Your name").fill("alice");
	await admin.getByLabel("Password (at least 8 characters)").fill("correct horse");
	await admin.getByRole("button", { name: "Create the admin account" }).click();
	// The first admin lands on the admin screen, to invite people.
	await admin.getByText("Signed in as alice (admin).").waitFor();
	await admin.getByRole("heading", { name: "Invite links" }).waitFor();
	expect(admin.url()).toBe(`${server.url}/account#admin`);

	await admin.getByRole("button", { name: "Make an invite link" }).click();
	const link = (await admin.locator(".secret").textContent()) as string;
	// The link is shown once: a button copies it.
	await adminContext.grantPermissions(["clipboard-read", "clipboard-write"]);
	await admin.getByRole("button", { name: "Copy" }).click();
	await admin.getByText("Copied").waitFor();
	expect(await admin.evaluate(() => navigator.clipboard.readText())).toBe(link);
	expect(link).toStartWith(`${server.url}/account#invite=`);
	await admin.getByRole("cell", { name: "nobody yet" }).waitFor();
	await audit(admin, "admin", "admin");

	// Bob opens the invite in a browser context of his own (a private window).
	const bobContext = await context();
	const bob = await bobContext.newPage();
	watch(bob);
	await bob.goto(link);
	await bob.getByRole("heading", { name: "Join this chat" }).waitFor();
	await audit(bob, "invite");
	await bob.getByLabel("Your name").fill("bob");
	await bob.getByLabel("Password (at least 8 characters)").fill("bob password");
	await bob.getByRole("button", { name: "Create my account" }).click();
	// A new member lands in the chat, as signing in does, not on the account screen.
	await bob.locator("#status", { hasText: "Connected as bob" }).waitFor();
	expect(bob.url()).toStartWith(`${server.url}/`);
	expect(bob.url()).not.toContain("/account");
	await bob.goto(`${server.url}/account`);
	await bob.getByText("Signed in as bob.").waitFor();
	await bob.getByRole("heading", { name: "Your account" }).waitFor();
	// A member has no admin screen.
	expect(await bob.getByRole("link", { name: "Admin" }).count()).toBe(0);
	await audit(bob, "account");
	await bob.getByRole("link", { name: "Sessions" }).click();
	await bob.getByRole("cell", { name: "this one" }).waitFor();
	await audit(bob, "sessions");
	await bob.goto(server.url);
	expect(bob.url()).toBe(`${server.url}/`);
	expect(await connect(bob)).toBe("bob");

	// The chat page needs no name under accounts: both are connected as themselves and talk.
	const bobChat = await bobContext.newPage();
	const aliceChat = await adminContext.newPage();
	for (const [page, name] of [
		[bobChat, "bob"],
		[aliceChat, "alice"],
	] as const) {
		watch(page);
		await page.goto(server.url);
		await page.locator("#status", { hasText: `Connected as ${name}` }).waitFor();
	}
	// Signed in, the chat page's header menu leads to the account screens; axe finds nothing on it, light or dark.
	await aliceChat.getByRole("button", { name: "Account" }).click();
	await aliceChat.getByRole("link", { name: "Admin" }).waitFor();
	await audit(aliceChat, "the chat page's account menu", "menu");
	await aliceChat.keyboard.press("Escape");
	await aliceChat.getByRole("link", { name: "Admin" }).waitFor({ state: "hidden" });
	await bobChat.getByLabel(/^Message #/).fill("hi alice, bob here");
	await bobChat.getByLabel(/^Message #/).press("Enter");
	await aliceChat.locator("#messages li.message .text", { hasText: "hi alice, bob here" }).waitFor();
	await admin.reload();
	await admin.getByRole("cell", { name: "bob", exact: true }).first().waitFor();
	expect(await admin.getByRole("cell", { name: "bob", exact: true }).count()).toBe(2); // accounts, and "used by"
	// A used-up invite has nothing left to revoke.
	await admin.getByRole("cell", { name: "used up" }).waitFor();
	expect(await admin.getByRole("button", { name: "Revoke" }).count()).toBe(0);

	// Bob signs out from the chat page's menu, and back in.
	const menuPage = await bobContext.newPage();
	watch(menuPage);
	await menuPage.goto(server.url);
	await menuPage.getByRole("button", { name: "Account" }).click();
	expect(await menuPage.getByRole("link", { name: "Admin" }).count()).toBe(0);
	await menuPage.getByRole("button", { name: "Sign out" }).click();
	await menuPage.getByRole("heading", { name: "Sign in" }).waitFor();
	expect(menuPage.url()).toBe(`${server.url}/account`);
	await audit(menuPage, "signin", "signin");
	await menuPage.getByLabel("Name").fill("bob");
	await menuPage.getByLabel("Password").fill("bob password");
	await menuPage.getByRole("button", { name: "Sign in" }).click();
	await menuPage.waitForURL(`${server.url}/`);
	await menuPage.locator("#status", { hasText: "Connected as bob" }).waitFor();
	expect(await connect(bob)).toBe("bob");

	// Deactivating bob cuts his open chat page off at once, and he cannot sign in again.
	const bobClosed = closedWith(bob);
	// Deactivating asks first: declined, nothing happens.
	admin.once("dialog", (d) => {
		expect(d.message()).toBe("Deactivate bob? They are signed out everywhere at once.");
		void d.dismiss();
	});
	await admin
		.getByRole("row")
		.filter({ has: admin.getByRole("cell", { name: "bob", exact: true }) })
		.first()
		.getByRole("button", { name: "Deactivate" })
		.click();
	expect(await connect(menuPage)).toBe("bob");
	admin.once("dialog", (d) => void d.accept());
	await admin
		.getByRole("row")
		.filter({ has: admin.getByRole("cell", { name: "bob", exact: true }) })
		.first()
		.getByRole("button", { name: "Deactivate" })
		.click();
	expect(await bobClosed).toBe(4001);
	// Told why, with no sign-in prompt that cannot work.
	await menuPage.locator("#status", { hasText: "Your account was deactivated by an admin." }).waitFor();
	expect(await menuPage.locator("#status a").count()).toBe(0);
	await admin.getByRole("cell", { name: "deactivated" }).waitFor();
	await bob.goto(server.url);
	await bob.getByRole("heading", { name: "Sign in" }).waitFor();
	await bob.getByLabel("Name").fill("bob");
	await bob.getByLabel("Password").fill("bob password");
	await bob.getByRole("button", { name: "Sign in" }).click();
	await bob.getByRole("alert").filter({ hasText: "this account is deactivated" }).waitFor();
	expect(bob.url()).toBe(`${server.url}/account`);

	// Someone guessing carol's password: wrong answers, then throttled.
	// From an address of its own (this server trusts the loopback proxy), so only the guesser is throttled.
	const guesser = await (
		await context({ extraHTTPHeaders: { "x-forwarded-for": "198.51.100.7" } })
	).newPage();
	watch(guesser);
	await guesser.goto(`${server.url}/account`);
	await guesser.getByRole("heading", { name: "Sign in" }).waitFor();
	await guesser.getByLabel("Name").fill("carol");
	await guesser.getByLabel("Password").fill("not her password");
	await guesser.getByRole("button", { name: "Sign in" }).click();
	await guesser.getByRole("alert").filter({ hasText: "wrong name or password" }).waitFor();
	for (let i = 0; i < 10; i++) {
		await guesser.getByRole("button", { name: "Sign in" }).click();
		await guesser.waitForFunction(
			() => !document.querySelector("button[type=submit]")?.hasAttribute("disabled"),
		);
	}
	await guesser.getByRole("alert").filter({ hasText: "too many wrong passwords" }).waitFor();

	// Alice's phone is signed in too; "Sign out everywhere" on the laptop ends the phone's socket.
	const phone = await (await context()).newPage();
	watch(phone);
	await phone.goto(`${server.url}/account`);
	await phone.getByLabel("Name").fill("alice");
	await phone.getByLabel("Password").fill("correct horse");
	await phone.getByRole("button", { name: "Sign in" }).click();
	await phone.waitForURL(`${server.url}/`);
	expect(await connect(phone)).toBe("alice");
	const phoneClosed = closedWith(phone);
	const cookies = [adminContext, bobContext, phone.context()];
	const sessionCookies = (await Promise.all(cookies.map((c) => c.cookies()))).flat().map((c) => c.value);
	await admin.getByRole("link", { name: "Sessions" }).click();
	await admin.getByRole("button", { name: "Sign out everywhere" }).click();
	expect(await phoneClosed).toBe(4001);
	await admin.getByRole("heading", { name: "Sign in" }).waitFor();
	expect(problems).toEqual([]);

	// Nothing secret in what the server wrote: passwords, the invite code, session cookies, password hashes.
	const logged = JSON.stringify(server.logs) + (await (await fetch(`${server.url}/metrics`)).text());
	const secrets = ["correct horse", "bob password", link.split("#invite=")[1] as string, ...sessionCookies];
	expect(sessionCookies.length).toBeGreaterThanOrEqual(3);
	for (const secret of secrets) expect(logged).not.toContain(secret);
	expect(logged).not.toContain("$argon2id$");
}, 240_000);
