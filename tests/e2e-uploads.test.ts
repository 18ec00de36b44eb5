// Files in Chromium under --auth accounts: drop and paste a PNG, progress and cancel, the other person sees the image
// inline at its size; a file card; a file name with markup is text; axe on the upload states; screenshots.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { connectedAs, launch, screenshotPath, serve } from "./e2e-browser.ts";
import { BINARY, ROOT, type Spawned, tempDir } from "./helpers.ts";

const AXE = join(ROOT, "node_modules", "axe-core", "axe.min.js");
const PASSWORD = "correct horse battery";

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;

async function createUser(db: string, name: string): Promise<void> {
	const p = Bun.spawn([BINARY, "admin", "create-user", name, "--password-stdin", "--db", db], {
		stdin: new TextEncoder().encode(`${PASSWORD}\n`),
		stdout: "pipe",
		stderr: "pipe",
	});
	if ((await p.exited) !== 0) throw new Error(`create-user ${name}: ${await new Response(p.stderr).text()}`);
}

beforeAll(async () => {
	browser = await launch();
	dir = tempDir();
	const db = join(dir.path, "chat.db");
	for (const name of ["alice", "bob", "carol-light", "carol-dark"]) await createUser(db, name);
	server = await serve(db, 0, "--auth", "accounts", "--max-upload", "8MiB");
}, 180_000);

afterAll(async () => {
	server?.proc.kill("SIGKILL");
	dir?.[Symbol.dispose]();
	await browser?.close();
});

interface Signed {
	page: Page;
	problems: string[];
	close(): Promise<void>;
}

/** A person signed in through the account API (the cookie lands in the context), at the chat page. */
async function signedIn(
	name: string,
	options: BrowserContextOptions = { viewport: { width: 1280, height: 800 } },
): Promise<Signed> {
	const context = await browser.newContext(options);
	const answer = await context.request.post(`${server.url}/api/auth/signin`, {
		data: { name, password: PASSWORD },
		headers: { Origin: server.url },
	});
	expect(answer.status()).toBe(200);
	const page = await context.newPage();
	const problems: string[] = [];
	page.on("pageerror", (e) => problems.push(e.message));
	await page.goto(server.url);
	await connectedAs(page, name);
	await page.locator("#room-title", { hasText: "#general" }).waitFor();
	return { page, problems, close: () => context.close() };
}

/** Makes a PNG of `width`×`height` in the page (a real one, so the server reads its size). */
const makePng = (width: number, height: number, name: string) => ({ width, height, name });
declare global {
	interface Window {
		pwned?: number;
	}
}

/** Drops files made in the page onto the room, as a drag from the desktop would. */
async function drop(page: Page, files: { width: number; height: number; name: string }[]): Promise<void> {
	await page.evaluate(async (specs) => {
		const dt = new DataTransfer();
		for (const s of specs) {
			const canvas = document.createElement("canvas");
			canvas.width = s.width;
			canvas.height = s.height;
			const g = canvas.getContext("2d") as CanvasRenderingContext2D;
			g.fillStyle = "#2456c7";
			g.fillRect(0, 0, s.width, s.height);
			const blob = await new Promise<Blob>((resolve) =>
				canvas.toBlob((b) => resolve(b as Blob), "image/png"),
			);
			dt.items.add(new File([blob], s.name, { type: "image/png" }));
		}
		const target = document.querySelector("main.chat") as HTMLElement;
		const over = new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true });
		target.dispatchEvent(over);
		if (!over.defaultPrevented) throw new Error("the room does not take the drop");
		target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
	}, files);
}

/** Pastes a screenshot (a PNG on the clipboard) into the composer. */
async function pastePng(page: Page, width: number, height: number): Promise<void> {
	await page.evaluate(
		async ([w, h]) => {
			const canvas = document.createElement("canvas");
			canvas.width = w as number;
			canvas.height = h as number;
			(canvas.getContext("2d") as CanvasRenderingContext2D).fillRect(0, 0, w as number, h as number);
			const blob = await new Promise<Blob>((resolve) =>
				canvas.toBlob((b) => resolve(b as Blob), "image/png"),
			);
			const dt = new DataTransfer();
			dt.items.add(new File([blob], "image.png", { type: "image/png" }));
			const box = document.getElementById("text") as HTMLTextAreaElement;
			box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
		},
		[width, height],
	);
}

async function axe(page: Page): Promise<string[]> {
	if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
	const violations = (await page.evaluate(async () => {
		const run = (window as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe.run;
		return (await run()).violations;
	})) as { id: string; impact: string; nodes: { target: string[] }[] }[];
	return violations.map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

async function send(page: Page, text = ""): Promise<void> {
	await page.locator(".uploads .upload-state", { hasText: "Ready" }).first().waitFor();
	await page.locator(".uploads .upload.uploading").waitFor({ state: "detached" });
	const box = page.getByLabel(/^Message #/);
	await box.fill(text);
	await box.press("Enter");
	await page.locator(".uploads").waitFor({ state: "detached" });
}

describe("files in Chromium", () => {
	test("dropped and pasted PNGs reach the other person inline at their size; a name with markup is text", async () => {
		const alice = await signedIn("alice");
		const bob = await signedIn("bob");
		try {
			await drop(alice.page, [
				makePng(120, 80, "chart.png"),
				makePng(40, 30, "<img src=x onerror=window.pwned=1>.png"),
			]);
			expect(await alice.page.locator(".uploads .upload").count()).toBe(2);
			await send(alice.page, "two charts");
			const shown = bob.page.locator("#messages li.message", { hasText: "two charts" });
			await shown.waitFor();
			const imgs = shown.locator(".attachments img");
			expect(await imgs.count()).toBe(2);
			expect(
				await imgs.evaluateAll((list) =>
					list.map((i) => [i.getAttribute("width"), i.getAttribute("height")]),
				),
			).toEqual([
				["120", "80"],
				["40", "30"],
			]);
			// Loaded, as the other person (a member of the room) may read it.
			await bob.page.waitForFunction(() =>
				[...document.querySelectorAll<HTMLImageElement>("#messages .attachments img")].every(
					(i) => i.complete && i.naturalWidth > 0,
				),
			);
			expect(await imgs.nth(0).evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(120);
			// The name is text: the markup (made safe by the server as well) never became an element.
			expect(await imgs.nth(1).getAttribute("alt")).toContain("img src=x onerror=window.pwned=1");
			expect(await bob.page.evaluate(() => window.pwned)).toBeUndefined();
			expect(await bob.page.locator("#messages .attachments img[src='x']").count()).toBe(0);

			await pastePng(alice.page, 64, 48);
			await send(alice.page);
			const pasted = bob.page.locator("#messages li.message .attachments img[width='64'][height='48']");
			await pasted.waitFor();
			await bob.page.screenshot({ path: screenshotPath("image-message-1280x800-light.png") });
			expect(alice.problems.concat(bob.problems)).toEqual([]);
		} finally {
			await alice.close();
			await bob.close();
		}
	}, 120_000);

	test("a slow upload shows its progress; cancelling it sends nothing", async () => {
		const alice = await signedIn("alice");
		const bob = await signedIn("bob");
		try {
			// A slow link, so the upload is seen on its way.
			const cdp = await alice.page.context().newCDPSession(alice.page);
			await cdp.send("Network.enable");
			await cdp.send("Network.emulateNetworkConditions", {
				offline: false,
				latency: 20,
				downloadThroughput: -1,
				uploadThroughput: 200_000,
			});
			await alice.page.evaluate(() => {
				// 3 MB that do not compress, on a link of 200 kB/s: about 15 s on its way.
				const bytes = new Uint8Array(3_000_000);
				for (let i = 0; i < bytes.length; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
				const dt = new DataTransfer();
				dt.items.add(new File([bytes], "big.png", { type: "image/png" }));
				const target = document.querySelector("main.chat") as HTMLElement;
				target.dispatchEvent(
					new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }),
				);
				target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
			});
			const bar = alice.page.locator(".uploads progress");
			await bar.waitFor();
			await alice.page.waitForFunction(() => {
				const p = document.querySelector(".uploads progress") as HTMLProgressElement | null;
				return p !== null && p.value > 0;
			});
			await alice.page.getByRole("button", { name: "Cancel big.png" }).click();
			await alice.page.locator(".uploads").waitFor({ state: "detached" });
			await cdp.send("Network.emulateNetworkConditions", {
				offline: false,
				latency: 0,
				downloadThroughput: -1,
				uploadThroughput: -1,
			});
			// Nothing went: a message after it is the next thing bob sees.
			const box = alice.page.getByLabel(/^Message #/);
			await box.fill("after the cancel");
			await box.press("Enter");
			await bob.page.locator("#messages li.message .text", { hasText: "after the cancel" }).waitFor();
			const last = bob.page.locator("#messages li.message").last();
			expect(await last.locator(".attachments").count()).toBe(0);
			expect(await bob.page.locator("#messages li.message:has-text('big.png')").count()).toBe(0);
			expect(alice.problems.concat(bob.problems)).toEqual([]);
		} finally {
			await alice.close();
			await bob.close();
		}
	}, 120_000);

	for (const scheme of ["light", "dark"] as const) {
		test(`upload states, an image and a file card: axe finds nothing (${scheme}); screenshots at 1280×800 and 375×740`, async () => {
			const who = `carol-${scheme}`;
			const p = await signedIn(who, {
				viewport: { width: 1280, height: 800 },
				colorScheme: scheme,
				bypassCSP: true,
			});
			const page = p.page;
			const found: Record<string, string[]> = {};
			try {
				// On its way, on a slow link: the progress bar passes axe and is seen on a desk and a phone.
				const cdp = await page.context().newCDPSession(page);
				await cdp.send("Network.enable");
				const link = (uploadThroughput: number) =>
					cdp.send("Network.emulateNetworkConditions", {
						offline: false,
						latency: 0,
						downloadThroughput: -1,
						uploadThroughput,
					});
				await link(100_000);
				await page.evaluate(() => {
					const bytes = new Uint8Array(2_000_000);
					for (let i = 0; i < bytes.length; i += 65_536)
						crypto.getRandomValues(bytes.subarray(i, i + 65_536));
					const dt = new DataTransfer();
					dt.items.add(new File([bytes], "screen recording.webm", { type: "video/webm" }));
					const target = document.querySelector("main.chat") as HTMLElement;
					target.dispatchEvent(
						new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }),
					);
					target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
				});
				await page.waitForFunction(() => {
					const p = document.querySelector(".uploads progress") as HTMLProgressElement | null;
					return p !== null && p.value > 0;
				});
				found["upload in progress"] = await axe(page);
				await page.screenshot({ path: screenshotPath(`upload-progress-1280x800-${scheme}.png`) });
				await page.setViewportSize({ width: 375, height: 740 });
				await page.screenshot({ path: screenshotPath(`upload-progress-375x740-${scheme}.png`) });
				await page.setViewportSize({ width: 1280, height: 800 });
				await page.getByRole("button", { name: "Cancel screen recording.webm" }).click();
				await page.locator(".uploads").waitFor({ state: "detached" });
				await link(-1);
				// A file that is not an image: a card.
				await page.evaluate(() => {
					const dt = new DataTransfer();
					dt.items.add(new File(["id,total\n1,2\n"], "totals <2026>.csv", { type: "text/csv" }));
					const target = document.querySelector("main.chat") as HTMLElement;
					target.dispatchEvent(
						new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }),
					);
					target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
				});
				await drop(page, [makePng(320, 180, `photo-${scheme}.png`)]);
				await page.locator(".uploads .upload.done").nth(1).waitFor();
				found["uploads ready"] = await axe(page);
				await send(page, "the totals and a photo");
				const card = page.locator("#messages .file-card").last();
				await card.waitFor();
				expect(await card.locator(".file-name").textContent()).toBe("totals _2026_.csv");
				expect(await card.getAttribute("download")).toBe("totals _2026_.csv");
				await page.locator("#messages .attachments img").last().waitFor();
				found["file card and image"] = await axe(page);
				await page.screenshot({ path: screenshotPath(`files-1280x800-${scheme}.png`) });
				// A refusal shown in place: over --max-upload.
				await page.evaluate(() => {
					const dt = new DataTransfer();
					dt.items.add(new File([new Uint8Array(9 * 1024 * 1024)], "huge.bin"));
					const target = document.querySelector("main.chat") as HTMLElement;
					target.dispatchEvent(
						new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }),
					);
					target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
				});
				await page.locator(".uploads .upload.failed", { hasText: "huge.bin is too large" }).waitFor();
				found["upload refused"] = await axe(page);
				await page.setViewportSize({ width: 375, height: 740 });
				await page.screenshot({ path: screenshotPath(`files-375x740-${scheme}.png`) });
				expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
				found["files on a phone"] = await axe(page);
				for (const [screen, violations] of Object.entries(found))
					expect({ screen, violations }).toEqual({ screen, violations: [] });
				expect(p.problems).toEqual([]);
			} finally {
				await p.close();
			}
		}, 120_000);
	}
});
