// Uploaded files: streamed to disk under a size bound, stored once by their sha256, typed from their bytes, served with safe headers.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, unlinkSync } from "node:fs";
import { open, readdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";

/** What is known of a stored file: all of it read from its bytes, none of it from the uploader. */
export interface StoredFile {
	/** Lower-case hex sha256 of the content: the file's name on disk and in URLs. */
	id: string;
	size: number;
	/** Sniffed type; `application/octet-stream` for anything not recognised. */
	type: string;
	/** Shown in the page (images and video); everything else is a download. */
	inline: boolean;
	width?: number;
	height?: number;
}

/** A file received into the temporary folder (`temp`), not yet where downloads find it. */
export interface Received extends StoredFile {
	temp: string;
}

/** The body is larger than the bound; nothing was kept. */
export class UploadTooLarge extends Error {
	override name = "UploadTooLarge";
	constructor(readonly limit: number) {
		super(`the file is larger than this server's limit of ${limit} bytes (--max-upload)`);
	}
}

/** The upload ended before the length it announced, or the connection dropped; nothing was kept. */
export class UploadInterrupted extends Error {
	override name = "UploadInterrupted";
}

/** The disk holding the files is full; nothing was kept. */
export class DiskFull extends Error {
	override name = "DiskFull";
	constructor(dir: string) {
		super(`the disk holding uploaded files (${dir}) is full; the file was not stored`);
	}
}

/** Bytes of a file's start read to learn its type and dimensions (a JPEG's size may come after its metadata). */
const HEAD_BYTES = 64 * 1024;
const ID = /^[0-9a-f]{64}$/;

/**
 * Files on one host's disk, in `dir`: `<dir>/<id[0..2]>/<id>`, written under
 * a temporary name in `<dir>/tmp/` and renamed into place once complete, so a
 * reader never sees half a file, a dropped upload leaves nothing, and
 * several processes (a cluster on one shared folder) may store the same file
 * at once: the rename is atomic and the content is the same.
 */
export class AttachmentStore {
	private readonly tmp: string;

	constructor(
		readonly dir: string,
		readonly maxBytes: number,
	) {
		this.tmp = join(dir, "tmp");
		mkdirSync(this.tmp, { recursive: true });
	}

	/**
	 * Streams `body` to a temporary file, hashing as it goes; never holds more
	 * than one chunk and the first 64 KiB in memory. Refuses past `maxBytes`
	 * (or a lower `limit`: a quota's rest) (UploadTooLarge), short of
	 * `declared` bytes (UploadInterrupted), or on a full disk (DiskFull); then
	 * the partial file is removed. `place` (or `discard`) the result.
	 */
	async receive(
		body: ReadableStream<Uint8Array>,
		declared?: number,
		limit = this.maxBytes,
	): Promise<Received> {
		const bound = Math.min(limit, this.maxBytes);
		if (declared !== undefined && declared > bound) throw new UploadTooLarge(bound);
		const temp = join(this.tmp, randomBytes(12).toString("hex"));
		const hasher = new Bun.CryptoHasher("sha256");
		const head = new Uint8Array(HEAD_BYTES);
		let headLength = 0;
		let size = 0;
		const file = await open(temp, "wx", 0o600);
		try {
			try {
				for await (const chunk of body) {
					size += chunk.byteLength;
					if (size > bound) throw new UploadTooLarge(bound);
					hasher.update(chunk);
					if (headLength < HEAD_BYTES) {
						const part = chunk.subarray(0, HEAD_BYTES - headLength);
						head.set(part, headLength);
						headLength += part.byteLength;
					}
					await file.write(chunk);
				}
			} catch (e) {
				if (e instanceof UploadTooLarge) throw e;
				if ((e as { code?: string }).code === "ENOSPC") throw new DiskFull(this.dir);
				throw new UploadInterrupted(`the upload was cut off: ${(e as Error).message}`);
			}
			if (declared !== undefined && size !== declared)
				throw new UploadInterrupted(`the upload ended after ${size} of ${declared} bytes`);
			await file.sync();
		} catch (e) {
			await file.close().catch(() => {});
			await unlink(temp).catch(() => {});
			throw e;
		}
		await file.close();
		return { id: hasher.digest("hex"), size, ...sniff(head.subarray(0, headLength)), temp };
	}

	/**
	 * Puts a received file where downloads find it (synchronous, so a store
	 * can run it inside the transaction that records it: see FileIndex.recordUpload).
	 * The same bytes stored before: that copy stays.
	 */
	place(received: Received): void {
		mkdirSync(join(this.dir, received.id.slice(0, 2)), { recursive: true });
		if (existsSync(this.path(received.id))) unlinkSync(received.temp);
		else renameSync(received.temp, this.path(received.id));
	}

	/** Drops a received file that will not be placed. */
	async discard(received: Received): Promise<void> {
		await unlink(received.temp).catch(() => {});
	}

	/** `receive` and `place` at once (no record of who uploaded it). */
	async put(body: ReadableStream<Uint8Array>, declared?: number, limit?: number): Promise<StoredFile> {
		const { temp, ...file } = await this.receive(body, declared, limit);
		this.place({ ...file, temp });
		return file;
	}

	/** The stored file `id`, described from its bytes; undefined when there is none (or `id` is not an id). */
	async describe(id: string): Promise<StoredFile | undefined> {
		if (!ID.test(id)) return undefined;
		const path = this.path(id);
		try {
			const size = (await stat(path)).size;
			const head = new Uint8Array(await Bun.file(path).slice(0, HEAD_BYTES).arrayBuffer());
			return { id, size, ...sniff(head) };
		} catch {
			return undefined;
		}
	}

	path(id: string): string {
		return join(this.dir, id.slice(0, 2), id);
	}

	/**
	 * Removes a stored file (one no message holds); a missing one is fine.
	 * Synchronous, so a store runs it inside the transaction that decided it
	 * (see FileIndex.forgetFiles).
	 */
	removeNow(id: string): void {
		if (!ID.test(id)) return;
		try {
			unlinkSync(this.path(id));
		} catch (e) {
			if ((e as { code?: string }).code !== "ENOENT") throw e;
		}
	}

	/** Ids of every stored file, a folder (1/256 of them) at a time. */
	async *ids(): AsyncGenerator<string[]> {
		const folders = await readdir(this.dir).catch(() => [] as string[]);
		for (const folder of folders) {
			if (!/^[0-9a-f]{2}$/.test(folder)) continue;
			const names = await readdir(join(this.dir, folder)).catch(() => [] as string[]);
			yield names.filter((n) => ID.test(n) && n.startsWith(folder));
		}
	}

	/** Removes temporary files older than `ms` (uploads cut off by a crash); resolves with how many. */
	async removeStaleTemp(ms: number): Promise<number> {
		let removed = 0;
		for (const name of await readdir(this.tmp).catch(() => [] as string[])) {
			const path = join(this.tmp, name);
			const info = await stat(path).catch(() => undefined);
			if (
				info &&
				Date.now() - info.mtimeMs > ms &&
				(await unlink(path).then(
					() => true,
					() => false,
				))
			)
				removed++;
		}
		return removed;
	}
}

type Sniffed = Omit<StoredFile, "id" | "size">;

const startsWith = (b: Uint8Array, sig: number[], at = 0) => sig.every((v, i) => b[at + i] === v);
const ascii = (b: Uint8Array, at: number, text: string) =>
	startsWith(
		b,
		[...text].map((c) => c.charCodeAt(0)),
		at,
	);

/**
 * The type of a file from its first bytes, and an image's width and height
 * from its header (PNG, JPEG, GIF, WebP). Only these images and MP4/WebM
 * video are `inline`; SVG, HTML and every other type are downloads
 * (`application/octet-stream`), whatever the uploader said.
 */
export function sniff(b: Uint8Array): Sniffed {
	const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
	const other: Sniffed = { type: "application/octet-stream", inline: false };
	if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) && b.length >= 24)
		return image("image/png", view.getUint32(16), view.getUint32(20));
	if (ascii(b, 0, "GIF87a") || ascii(b, 0, "GIF89a"))
		return b.length >= 10 ? image("image/gif", view.getUint16(6, true), view.getUint16(8, true)) : other;
	if (startsWith(b, [0xff, 0xd8, 0xff])) return jpeg(b, view) ?? { type: "image/jpeg", inline: true };
	if (ascii(b, 0, "RIFF") && ascii(b, 8, "WEBP") && b.length >= 30) return webp(b, view) ?? other;
	if (ascii(b, 4, "ftyp")) return { type: "video/mp4", inline: true };
	if (startsWith(b, [0x1a, 0x45, 0xdf, 0xa3])) return { type: "video/webm", inline: true };
	if (ascii(b, 0, "%PDF-")) return { type: "application/pdf", inline: false };
	return other;
}

function image(type: string, width: number, height: number): Sniffed {
	return width > 0 && height > 0 ? { type, inline: true, width, height } : { type, inline: true };
}

/** Walks the JPEG markers to the first start-of-frame, which holds the size. */
function jpeg(b: Uint8Array, view: DataView): Sniffed | undefined {
	let at = 2;
	while (at + 9 < b.length) {
		if (b[at] !== 0xff) return undefined;
		const marker = b[at + 1] as number;
		if (marker === 0xff) {
			at++;
			continue;
		}
		const length = view.getUint16(at + 2);
		const sof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
		if (sof) return image("image/jpeg", view.getUint16(at + 7), view.getUint16(at + 5));
		at += 2 + length;
	}
	return undefined;
}

function webp(b: Uint8Array, view: DataView): Sniffed | undefined {
	const u24 = (at: number) =>
		(b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16);
	if (ascii(b, 12, "VP8 "))
		return image("image/webp", view.getUint16(26, true) & 0x3fff, view.getUint16(28, true) & 0x3fff);
	if (ascii(b, 12, "VP8L")) {
		const [b0, b1, b2, b3] = [b[21], b[22], b[23], b[24]] as number[] as [number, number, number, number];
		return image(
			"image/webp",
			1 + (((b1 & 0x3f) << 8) | b0),
			1 + (((b3 & 0x0f) << 10) | (b2 << 2) | ((b1 & 0xc0) >> 6)),
		);
	}
	if (ascii(b, 12, "VP8X")) return image("image/webp", 1 + u24(24), 1 + u24(27));
	return undefined;
}

/**
 * A file name safe to show and to put in a header: Unicode-normalised, no
 * control, format (bidi overrides, zero-width) or path characters, no
 * leading dots, at most 120 characters; "file" when nothing is left.
 */
export function cleanName(name: string): string {
	const cleaned = name
		.normalize("NFC")
		.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, "")
		.replace(/[/\\:*?"<>|]/g, "_")
		.replace(/\s+/g, " ")
		.trim()
		.replace(/^[.\s]+/, "");
	const chars = [...cleaned].slice(0, 120).join("").trim();
	return chars === "" ? "file" : chars;
}

/**
 * Headers for a download: the sniffed type, `inline` only for images and
 * video, `attachment` (with the cleaned name, RFC 6266/5987) for the rest,
 * nosniff, and a CSP that runs nothing even if a browser renders it.
 */
export function downloadHeaders(file: StoredFile, name: string): Record<string, string> {
	const clean = cleanName(name);
	const fallback = clean.replace(/[^\x20-\x7e]/g, "_").replace(/[%;\\]/g, "_");
	const disposition = `${file.inline ? "inline" : "attachment"}; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(clean)}`;
	return {
		"content-type": file.type,
		"content-length": String(file.size),
		"content-disposition": disposition,
		"x-content-type-options": "nosniff",
		"content-security-policy": "default-src 'none'; sandbox",
		"cache-control": "private, max-age=31536000, immutable",
	};
}
