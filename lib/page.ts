// The chat page with our headers: Bun serves an HTML import only as a bare route, so a private
// server on an abstract Unix socket builds it and this copies each file once into memory.
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HTMLBundle, Server } from "bun";
import { secured } from "./http.ts";

interface Asset {
	body: Uint8Array<ArrayBuffer>;
	headers: [string, string][];
	etag: string | null;
}

/** Local references in HTML, CSS and JavaScript: `"/chunk-x.js"`, `url(./font.woff2)`. */
const REFERENCE = /["'(]\.?(\/[\w.-]+\.[a-z0-9]+)["')]/gi;

export class PageFiles {
	private readonly inner: Server<undefined>;
	private readonly socket: string;
	private readonly files = new Map<string, Asset>();
	/** Resolves once "/" and every file it references (and they reference) is in memory. */
	readonly ready: Promise<void>;

	constructor(page: HTMLBundle) {
		const name = `hubbub-page-${process.pid}-${crypto.randomUUID()}`;
		this.socket = process.platform === "linux" ? `\0${name}` : join(tmpdir(), `${name}.sock`);
		this.inner = Bun.serve({
			unix: this.socket,
			development: false,
			routes: { "/": page },
			fetch: () => new Response("not found\n", { status: 404 }),
		});
		this.ready = this.load();
		// Awaited by every request that needs it; a failure is reported there.
		this.ready.catch(() => {});
	}

	private async load(): Promise<void> {
		const queue = ["/"];
		while (queue.length > 0) {
			const path = queue.shift() as string;
			if (this.files.has(path)) continue;
			const r = await fetch(`http://page${path}`, { unix: this.socket });
			if (!r.ok) {
				if (path === "/") throw new Error(`the page did not build: HTTP ${r.status}`);
				continue;
			}
			const body = new Uint8Array(await r.arrayBuffer());
			const headers = [...r.headers].filter(([k]) => k !== "date" && k !== "content-length");
			this.files.set(path, { body, headers, etag: r.headers.get("etag") });
			const type = r.headers.get("content-type") ?? "";
			if (/html|css|javascript/.test(type)) {
				for (const m of new TextDecoder().decode(body).matchAll(REFERENCE)) queue.push(m[1] as string);
			}
		}
		// Everything is in memory: the private server has done its work.
		this.inner.stop(true);
	}

	/** The file at `path` with the security headers, or undefined when the page has no such file. */
	async serve(path: string, req: Request): Promise<Response | undefined> {
		await this.ready;
		const file = this.files.get(path);
		if (!file) return undefined;
		if (file.etag && req.headers.get("if-none-match") === file.etag) {
			return secured(new Response(null, { status: 304, headers: { etag: file.etag } }));
		}
		return secured(new Response(req.method === "HEAD" ? null : file.body, { headers: file.headers }));
	}

	has(path: string): boolean {
		return this.files.has(path);
	}

	stop(): void {
		this.inner.stop(true);
	}
}
