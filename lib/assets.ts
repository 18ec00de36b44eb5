// Serves the page's built files: compressed once (gzip and brotli), hashed files cached for a year, the HTML revalidated by ETag.
import { basename } from "node:path";
import { brotliCompressSync, constants } from "node:zlib";
import type { HTMLBundle } from "bun";
import { secured } from "./http.ts";

/** One file of the built page, at its URL path ("/" for the HTML). */
export interface BuiltFile {
	path: string;
	type: string;
	body: Uint8Array<ArrayBuffer>;
}

interface Prepared {
	type: string;
	etag: string;
	/** Hashed names never change content: cached for a year. The HTML is revalidated on every load. */
	immutable: boolean;
	identity: Uint8Array<ArrayBuffer>;
	gzip: Uint8Array<ArrayBuffer>;
	br: Uint8Array<ArrayBuffer>;
}

const IMMUTABLE = "public, max-age=31536000, immutable";
const REVALIDATE = "no-cache";

/**
 * The files of an HTML import. A compiled executable carries them built ahead
 * of time (`files`); run from source, the page is bundled here, once, the way
 * `bun build` does it for the executable (minified, split, hashed names).
 */
export async function pageFiles(page: HTMLBundle): Promise<BuiltFile[]> {
	if (page.files) {
		return Promise.all(
			page.files.map(async (f) => ({
				path: f.loader === "html" ? "/" : `/${basename(f.path)}`,
				type: f.headers["content-type"],
				body: new Uint8Array(await Bun.file(f.path).arrayBuffer()),
			})),
		);
	}
	const built = await Bun.build({
		entrypoints: [page.index],
		minify: true,
		splitting: true,
		publicPath: "/",
	});
	if (!built.success) throw new AggregateError(built.logs, "the page did not build");
	return Promise.all(
		built.outputs.map(async (o) => ({
			path: o.path.endsWith(".html") ? "/" : `/${basename(o.path)}`,
			type: o.type,
			body: new Uint8Array(await o.arrayBuffer()),
		})),
	);
}

function prepare(file: BuiltFile): Prepared {
	const text = /^(text\/|application\/(json|javascript)|image\/svg)/.test(file.type);
	return {
		type: file.type,
		etag: `"${Bun.hash(file.body).toString(36)}"`,
		immutable: file.path !== "/",
		identity: file.body,
		gzip: text ? Bun.gzipSync(file.body, { level: 9 }) : file.body,
		br: text
			? new Uint8Array(
					brotliCompressSync(file.body, {
						params: {
							[constants.BROTLI_PARAM_QUALITY]: 11,
							[constants.BROTLI_PARAM_SIZE_HINT]: file.body.length,
						},
					}),
				)
			: file.body,
	};
}

/** Which encoding to send for an Accept-Encoding header: brotli, then gzip, else none. */
export function pickEncoding(accept: string | null): "br" | "gzip" | "identity" {
	const offered = new Map<string, number>();
	for (const part of (accept ?? "").toLowerCase().split(",")) {
		const [name, ...params] = part.trim().split(";");
		if (!name) continue;
		const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
		offered.set(name, q ? Number(q.slice(2)) : 1);
	}
	const ok = (name: string) => (offered.get(name) ?? offered.get("*") ?? 0) > 0;
	if (ok("br")) return "br";
	if (ok("gzip")) return "gzip";
	return "identity";
}

/** The page's files, ready to send; each compressed once when made. */
export class Assets {
	private readonly files = new Map<string, Prepared>();

	constructor(files: BuiltFile[]) {
		for (const f of files) this.files.set(f.path, prepare(f));
	}

	/** Whether `path` ("/" for the HTML) is one of the files. */
	has(path: string): boolean {
		return this.files.has(path);
	}

	/** The response for a GET or HEAD of one of the page's files; undefined when `path` is not one. */
	respond(req: Request, path: string): Response | undefined {
		const file = this.files.get(path);
		if (!file || (req.method !== "GET" && req.method !== "HEAD")) return undefined;
		const headers: Record<string, string> = {
			"content-type": file.type,
			"cache-control": file.immutable ? IMMUTABLE : REVALIDATE,
			etag: file.etag,
			vary: "accept-encoding",
		};
		const match = req.headers.get("if-none-match");
		if (match?.split(",").some((tag) => tag.trim().replace(/^W\//, "") === file.etag)) {
			return new Response(null, { status: 304, headers });
		}
		const encoding = pickEncoding(req.headers.get("accept-encoding"));
		if (encoding !== "identity") headers["content-encoding"] = encoding;
		const body = encoding === "br" ? file.br : encoding === "gzip" ? file.gzip : file.identity;
		return new Response(req.method === "HEAD" ? null : body, { headers });
	}
}

/**
 * The page as the server serves it: built and compressed on first use (the
 * first page load), so a server that never serves the page, as in most tests,
 * never pays for it. Every response carries the security headers.
 */
export class PageAssets {
	private ready?: Promise<Assets>;
	private loaded?: Assets;

	constructor(private readonly page: HTMLBundle) {}

	private assets(): Promise<Assets> {
		if (!this.ready) {
			const ready = pageFiles(this.page).then((files) => new Assets(files));
			this.ready = ready;
			ready.then(
				(a) => {
					this.loaded = a;
				},
				// A failed build is tried again on the next request rather than remembered.
				() => {
					this.ready = undefined;
				},
			);
		}
		return this.ready;
	}

	/** The page's file at `path` for a GET or HEAD, or undefined when the page has no such file. */
	async serve(path: string, req: Request): Promise<Response | undefined> {
		const response = (await this.assets()).respond(req, path);
		return response && secured(response);
	}

	/** Whether `path` is one of the page's files ("/" always is). */
	has(path: string): boolean {
		return path === "/" || (this.loaded?.has(path) ?? false);
	}

	/** Nothing runs in the background; here for the server's shutdown. */
	stop(): void {}
}
