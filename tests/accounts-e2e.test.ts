// The account screens in Chromium (Debian's, driven by playwright-core) against hubbub from source
// under --auth accounts: first-run setup, an invite opened in a second browser context, wrong
// passwords and throttling, and a deactivated or signed-out-everywhere page cut off at once.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { fromSource, ROOT, type Spawned, spawnServer, tempDir } from "./helpers.ts";

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
	dir = tempDir("hubbub-acct-e2e-");
	server = await spawnServer(
		fromSource("--db", join(dir.path, "chat.db"), "--auth", "accounts", "--trust-proxy", "127.0.0.1"),
	);
	browser = await chromium.launch({
		executablePath: "/usr/bin/chromium",
		args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
	});
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

test("first-run setup, an invite in a second context, wrong passwords, throttling, deactivation and sign out everywhere", async () => {
	const problems: string[] = [];
	const admin = await (await browser.newContext()).newPage();
	admin.on("pageerror", (e) => problems.push(e.message));
	await admin.goto(server.url);
	// Nobody is signed in and no account exists: the chat address leads to the setup form.
	await admin.getByRole("heading", { name: "Set up this server" }).waitFor();
	expect(admin.url()).toBe(`${server.url}/account`);
	await admin.getByLabel("Your name").fill("alice");
	await admin.getByLabel("Password (at least 8 characters)").fill("correct horse");
	await admin.getByRole("button", { name: "Create the admin account" }).click();
	await admin.getByText("Signed in as alice (admin).").waitFor();

	await admin.getByRole("button", { name: "Make an invite link" }).click();
	const link = (await admin.locator(".secret").textContent()) as string;
	expect(link).toStartWith(`${server.url}/account#invite=`);

	// Bob opens the invite in a browser context of his own (a private window).
	const bobContext = await browser.newContext();
	const bob = await bobContext.newPage();
	bob.on("pageerror", (e) => problems.push(e.message));
	await bob.goto(link);
	await bob.getByRole("heading", { name: "Join this chat" }).waitFor();
	await bob.getByLabel("Your name").fill("bob");
	await bob.getByLabel("Password (at least 8 characters)").fill("bob password");
	await bob.getByRole("button", { name: "Create my account" }).click();
	await bob.getByText("Signed in as bob.").waitFor();
	await bob.goto(server.url);
	expect(bob.url()).toBe(`${server.url}/`);
	expect(await connect(bob)).toBe("bob");

	// The chat page needs no name under accounts: both are connected as themselves and talk.
	const bobChat = await bobContext.newPage();
	const aliceChat = await admin.context().newPage();
	for (const [page, name] of [
		[bobChat, "bob"],
		[aliceChat, "alice"],
	] as const) {
		page.on("pageerror", (e) => problems.push(e.message));
		await page.goto(server.url);
		await page.locator("#status", { hasText: `Connected as ${name}` }).waitFor();
	}
	// Signed in, the chat page's header leads to the account pages; axe finds nothing on it, light or dark.
	// (axe is injected as a script: its context lets that past the page's CSP, with alice's cookie.)
	const audited = await browser.newContext({
		bypassCSP: true,
		storageState: await admin.context().storageState(),
	});
	const look = await audited.newPage();
	await look.goto(server.url);
	await look.locator("#status", { hasText: "Connected as alice" }).waitFor();
	for (const colorScheme of ["light", "dark"] as const) {
		await look.emulateMedia({ colorScheme });
		expect(await axe(look)).toEqual([]);
	}
	await audited.close();
	const account = await bobContext.newPage();
	await account.goto(server.url);
	await account.getByRole("link", { name: "Account" }).click();
	await account.getByText("Signed in as bob.").waitFor();
	expect(account.url()).toBe(`${server.url}/account`);
	await account.close();
	await bobChat.getByLabel(/^Message #/).fill("hi alice, bob here");
	await bobChat.getByLabel(/^Message #/).press("Enter");
	await aliceChat.locator("#messages li.message .text", { hasText: "hi alice, bob here" }).waitFor();
	await admin.reload();
	await admin.getByRole("cell", { name: "bob", exact: true }).first().waitFor();
	expect(await admin.getByRole("cell", { name: "bob", exact: true }).count()).toBe(2); // accounts, and "used by"

	// Someone guessing bob's password: one wrong answer, then throttled.
	// From an address of its own (this server trusts the loopback proxy), so only the guesser is throttled.
	const guesser = await (
		await browser.newContext({ extraHTTPHeaders: { "x-forwarded-for": "198.51.100.7" } })
	).newPage();
	await guesser.goto(`${server.url}/account`);
	await guesser.getByRole("heading", { name: "Sign in" }).waitFor();
	await guesser.getByLabel("Name").fill("bob");
	await guesser.getByLabel("Password").fill("not his password");
	await guesser.getByRole("button", { name: "Sign in" }).click();
	await guesser.getByRole("alert").filter({ hasText: "wrong name or password" }).waitFor();
	for (let i = 0; i < 10; i++) {
		await guesser.getByRole("button", { name: "Sign in" }).click();
		await guesser.waitForFunction(
			() => !document.querySelector("button[type=submit]")?.hasAttribute("disabled"),
		);
	}
	await guesser.getByRole("alert").filter({ hasText: "too many wrong passwords" }).waitFor();

	// Deactivating bob cuts his open page off at once, and he cannot sign in again.
	const bobClosed = closedWith(bob);
	await admin
		.getByRole("row")
		.filter({ has: admin.getByRole("cell", { name: "bob", exact: true }) })
		.first()
		.getByRole("button", { name: "Deactivate" })
		.click();
	expect(await bobClosed).toBe(4001);
	await bob.goto(server.url);
	await bob.getByRole("heading", { name: "Sign in" }).waitFor();

	// Alice's phone is signed in too; "Sign out everywhere" on the laptop ends the phone's socket.
	const phone = await (await browser.newContext()).newPage();
	await phone.goto(`${server.url}/account`);
	await phone.getByLabel("Name").fill("alice");
	await phone.getByLabel("Password").fill("correct horse");
	await phone.getByRole("button", { name: "Sign in" }).click();
	await phone.waitForURL(`${server.url}/`);
	expect(await connect(phone)).toBe("alice");
	const phoneClosed = closedWith(phone);
	await admin.getByRole("button", { name: "Sign out everywhere" }).click();
	expect(await phoneClosed).toBe(4001);
	await admin.getByRole("heading", { name: "Sign in" }).waitFor();
	expect(problems).toEqual([]);
}, 120_000);
