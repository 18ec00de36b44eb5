// How the page is served by the built executable: compressed, hashed files cached for a year, the HTML revalidated; and its size.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { launch, serve } from "./e2e-browser.ts";
import { type Spawned, tempDir } from "./helpers.ts";

let browser: Browser;
let server: Spawned;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
	browser = await launch();
	dir = tempDir();
	server = await serve(join(dir.path, "chat.db"));
}, 120_000);

afterAll(async () => {
	server?.proc.kill("SIGKILL");
	dir?.[Symbol.dispose]();
	await browser?.close();
});

/** The files the HTML names (its script and stylesheets). */
function referenced(html: string): string[] {
	return [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map(
		(m) => new URL(m[1] as string, "http://x/").pathname,
	);
}

describe("serving the page", () => {
	test("the HTML is compressed and revalidated by ETag; a matching ETag gets 304", async () => {
		const res = await fetch(`${server.url}/`, {
			headers: { "accept-encoding": "br, gzip" },
			decompress: false,
		});
		expect(res.status).toBe(200);
		expect(res.headers.get("content-encoding")).toBe("br");
		expect(res.headers.get("cache-control")).toBe("no-cache");
		expect(res.headers.get("vary")).toBe("accept-encoding");
		const etag = res.headers.get("etag") as string;
		expect(etag).toMatch(/^"[0-9a-z]+"$/);
		const again = await fetch(`${server.url}/`, { headers: { "if-none-match": etag } });
		expect(again.status).toBe(304);
		expect(await again.text()).toBe("");
	});

	test("hashed files: brotli or gzip as asked, cached for a year, immutable; same bytes once decompressed", async () => {
		const html = await (await fetch(`${server.url}/`)).text();
		const files = referenced(html);
		expect(files.some((f) => f.endsWith(".js"))).toBe(true);
		expect(files.some((f) => f.endsWith(".css"))).toBe(true);
		for (const path of files) {
			expect(path).toMatch(/-[0-9a-z]{8}\.(js|css)$/);
			const plain = await fetch(`${server.url}${path}`, { headers: { "accept-encoding": "identity" } });
			expect(plain.headers.get("content-encoding")).toBeNull();
			const body = new Uint8Array(await plain.arrayBuffer());
			for (const encoding of ["br", "gzip"]) {
				const res = await fetch(`${server.url}${path}`, {
					headers: { "accept-encoding": encoding },
					decompress: false,
				});
				expect(res.headers.get("content-encoding")).toBe(encoding);
				expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
				const packed = new Uint8Array(await res.arrayBuffer());
				expect(packed.length).toBeLessThan(body.length / 2);
				const unpacked =
					encoding === "gzip"
						? Bun.gunzipSync(packed)
						: new Uint8Array((await import("node:zlib")).brotliDecompressSync(packed));
				expect(Buffer.from(unpacked).equals(Buffer.from(body))).toBe(true);
			}
		}
		expect((await fetch(`${server.url}/chunk-doesnotexist.js`)).status).toBe(404);
	});

	test("what the page loads stays under 100 KiB gzip (the emoji data loads only on first use)", async () => {
		const html = await fetch(`${server.url}/`, { headers: { "accept-encoding": "gzip" }, decompress: false });
		let total = (await html.arrayBuffer()).byteLength;
		const text = await (await fetch(`${server.url}/`)).text();
		const sizes: string[] = [];
		for (const path of referenced(text)) {
			const res = await fetch(`${server.url}${path}`, {
				headers: { "accept-encoding": "gzip" },
				decompress: false,
			});
			const n = (await res.arrayBuffer()).byteLength;
			sizes.push(`${path} ${(n / 1024).toFixed(1)} KiB`);
			total += n;
		}
		console.log(`page size, gzip: ${(total / 1024).toFixed(1)} KiB (${sizes.join(", ")})`);
		expect(total).toBeLessThan(100 * 1024);
	});

	test("a second page load in the same browser fetches nothing but the HTML (and that as a 304)", async () => {
		const context = await browser.newContext();
		const page = await context.newPage();
		await page.goto(server.url);
		await page.getByLabel("Your name").waitFor();
		// Chromium's own account of what went over the wire: only a network response has "extra info".
		const cdp = await context.newCDPSession(page);
		await cdp.send("Network.enable");
		const urls = new Map<string, string>();
		const wire: { id: string; status: number }[] = [];
		const fromCache: string[] = [];
		cdp.on("Network.requestWillBeSent", (e) => urls.set(e.requestId, e.request.url));
		cdp.on("Network.responseReceivedExtraInfo", (e) => wire.push({ id: e.requestId, status: e.statusCode }));
		cdp.on("Network.requestServedFromCache", (e) => fromCache.push(e.requestId));
		await page.goto(server.url);
		await page.getByLabel("Your name").waitFor();
		await page.waitForLoadState("networkidle");
		const network = wire
			.map((r) => `${r.status} ${new URL(urls.get(r.id) ?? "http://x/?").pathname}`)
			.filter((line) => !line.endsWith("/ws"));
		expect(network).toEqual(["304 /"]);
		// The script and the styles came from the cache.
		const cached = fromCache.map((id) => urls.get(id) ?? "");
		expect(cached.some((u) => u.endsWith(".js")) && cached.some((u) => u.endsWith(".css"))).toBe(true);
		await context.close();
	});
});
