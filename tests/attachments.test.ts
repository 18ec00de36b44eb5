// Uploads and downloads over real HTTP: limits before reading, streaming without memory growth, nothing left by
// a dropped upload, one copy per content, types from the bytes, and headers that never let a file run as a page.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { type Browser, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { startServer } from "./helpers.ts";
import { until } from "./until.ts";

/** A PNG header (signature + IHDR) of the given size, then filler: enough for the sniffer. */
function png(width: number, height: number, filler = 100): Uint8Array<ArrayBuffer> {
	const b = new Uint8Array(33 + filler);
	b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
	const v = new DataView(b.buffer);
	v.setUint32(16, width);
	v.setUint32(20, height);
	for (let i = 33; i < b.length; i++) b[i] = i % 251;
	return b;
}

async function upload(b: Browser, name: string, body: BodyInit, headers: Record<string, string> = {}) {
	const r = await fetch(`${b.base}/api/uploads?name=${encodeURIComponent(name)}`, {
		method: "POST",
		headers: { origin: b.base, ...(b.cookie ? { cookie: b.cookie } : {}), ...headers },
		body,
	});
	return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}

/** Stored files (not the temporary folder). */
function storedFiles(dir: string): string[] {
	if (!existsSync(dir)) return [];
	return readdirSync(dir)
		.filter((d) => d !== "tmp")
		.flatMap((d) => readdirSync(join(dir, d)));
}

describe("uploads", () => {
	test("--auth none takes no uploads (403), and serves no files", async () => {
		await using s = startServer();
		const r = await fetch(`${s.url}/api/uploads?name=a.txt`, {
			method: "POST",
			headers: { origin: s.url },
			body: "hi",
		});
		expect(r.status).toBe(403);
		expect(await r.json()).toMatchObject({ code: "uploads_need_accounts" });
		expect((await fetch(`${s.url}/api/files/${"a".repeat(64)}`)).status).toBe(404);
		const get = await fetch(`${s.url}/api/uploads`);
		expect(get.status).toBe(405);
		expect(get.headers.get("allow")).toBe("POST");
	});

	test("an image is typed and measured from its bytes, stored once, and served inline with its size", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bytes = png(640, 480);
		const first = await upload(alice, "holiday.png", bytes, { "content-type": "text/html" });
		expect(first.status).toBe(201);
		expect(first.body).toMatchObject({
			type: "image/png",
			inline: true,
			width: 640,
			height: 480,
			size: bytes.length,
		});
		const again = await upload(alice, "copy.png", bytes);
		expect(again.body.id).toBe(first.body.id);
		expect(storedFiles(`${s.dbPath}.files`)).toEqual([first.body.id as string]);
		const got = await fetch(`${s.url}${first.body.url}`, { headers: { cookie: alice.cookie as string } });
		expect(got.status).toBe(200);
		expect(got.headers.get("content-type")).toBe("image/png");
		expect(got.headers.get("x-content-type-options")).toBe("nosniff");
		expect(got.headers.get("content-disposition")).toStartWith("inline;");
		expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
	});

	test("SVG and HTML are never inline, and a hostile file name cannot break out of the header or the page", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const svg =
			'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)"><script>alert(1)</script></svg>';
		const evil = '"><img src=x onerror=alert(1)>\r\nSet-Cookie: x=1;.svg';
		const up = await upload(alice, evil, svg, { "content-type": "image/svg+xml" });
		expect(up.status).toBe(201);
		expect(up.body).toMatchObject({ type: "application/octet-stream", inline: false });
		expect(up.body.name).not.toMatch(/[<>"\r\n]/);
		const got = await fetch(`${s.url}${up.body.url}`, { headers: { cookie: alice.cookie as string } });
		expect(got.headers.get("content-type")).toBe("application/octet-stream");
		expect(got.headers.get("content-disposition")).toStartWith("attachment;");
		expect(got.headers.get("content-disposition")).not.toMatch(/[<>\r\n]/);
		expect(got.headers.get("set-cookie")).toBeNull();
		expect(got.headers.get("content-security-policy")).toContain("sandbox");
		const html = await upload(alice, "page.html", "<!doctype html><script>alert(1)</script>");
		expect(html.body).toMatchObject({ type: "application/octet-stream", inline: false });
	});

	test("only a signed-in person from this server's page may upload; only a signed-in one may download", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const stored = await upload(alice, "a.png", png(2, 2));
		const anonymous = { ...alice, cookie: undefined } as Browser;
		expect((await upload(anonymous, "b.png", png(3, 3))).status).toBe(401);
		expect((await upload(alice, "c.png", png(4, 4), { origin: "http://evil.example" })).status).toBe(403);
		expect((await fetch(`${s.url}${stored.body.url}`)).status).toBe(401);
		expect(storedFiles(`${s.dbPath}.files`)).toEqual([stored.body.id as string]);
	});

	test("a 200 MiB upload is refused with 413: at once when its length says so, and cut off when streamed, without memory growth", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const { port } = new URL(s.url);
		// Declared: answered from the headers alone, before any body byte is sent.
		const answer = await new Promise<string>((resolve, reject) => {
			const socket = connect(Number(port), "127.0.0.1", () => {
				socket.write(
					`POST /api/uploads?name=big.bin HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${s.url}\r\nCookie: ${alice.cookie}\r\nContent-Length: ${200 * 1024 ** 2}\r\n\r\n`,
				);
			});
			let text = "";
			socket.on("data", (d) => {
				text += d.toString();
				if (text.includes("\r\n\r\n")) {
					socket.destroy();
					resolve(text);
				}
			});
			socket.on("error", reject);
		});
		expect(answer).toStartWith("HTTP/1.1 413");
		// Streamed (chunked, no length): read and cut off at --max-upload, memory flat meanwhile.
		Bun.gc(true);
		const before = process.memoryUsage().rss;
		let peak = before;
		const chunk = new Uint8Array(1024 * 1024).fill(7);
		let sent = 0;
		const body = new ReadableStream<Uint8Array>({
			pull(c) {
				peak = Math.max(peak, process.memoryUsage().rss);
				if (sent >= 200) return c.close();
				sent++;
				c.enqueue(chunk);
			},
		});
		const r = await upload(alice, "big.bin", body).catch((e: Error) => ({ status: 0, error: e.message }));
		if (r.status !== 0) expect(r.status).toBe(413);
		// Cut off near --max-upload (25 MiB), not at the end nor at Bun's own 128 MiB body bound.
		expect(sent).toBeLessThan(64);
		expect(peak - before).toBeLessThan(100 * 1024 ** 2);
		await until(() => readdirSync(join(`${s.dbPath}.files`, "tmp")).length === 0);
		expect(storedFiles(`${s.dbPath}.files`)).toEqual([]);
	}, 60_000);

	test("a connection dropped mid-upload leaves no file behind", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const { port } = new URL(s.url);
		const socket = connect(Number(port), "127.0.0.1");
		await new Promise((resolve) => socket.on("connect", resolve));
		socket.write(
			`POST /api/uploads?name=half.bin HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${s.url}\r\nCookie: ${alice.cookie}\r\nContent-Length: ${1024 ** 2}\r\n\r\n`,
		);
		socket.write(new Uint8Array(300 * 1024).fill(1));
		const tmp = join(`${s.dbPath}.files`, "tmp");
		await until(() => readdirSync(tmp).length === 1);
		socket.destroy();
		await until(() => readdirSync(tmp).length === 0);
		expect(storedFiles(`${s.dbPath}.files`)).toEqual([]);
		// The server is fine: the next upload is stored.
		expect((await upload(alice, "ok.png", png(1, 1))).status).toBe(201);
	});
});
