// Files on their way to the server (POST /api/uploads, docs/PROTOCOL.md "Files"): progress, cancel, errors; per room, no DOM.
import type { FileRef } from "../protocol.ts";

export interface Upload {
	key: string;
	name: string;
	size: number;
	/** Bytes sent so far. */
	loaded: number;
	state: "uploading" | "done" | "failed";
	/** What went wrong, in a sentence for the person. */
	error?: string;
	/** The stored file, once done. */
	file?: FileRef;
}

/** What the page needs of XMLHttpRequest (a stand-in in unit tests). */
export interface Request {
	open(method: string, url: string): void;
	setRequestHeader(name: string, value: string): void;
	send(body: Blob): void;
	abort(): void;
	readonly status: number;
	readonly responseText: string;
	readonly upload: { onprogress: ((e: { loaded: number; total: number }) => void) | null };
	onload: (() => void) | null;
	onerror: (() => void) | null;
}

/** Files one message may carry (the protocol's LIMITS.files). */
export const FILES_PER_MESSAGE = 10;

/** Sizes as people read them: 900 B, 12.5 KB, 3.2 MB. */
export function humanSize(bytes: number): string {
	if (bytes < 1000) return `${bytes} B`;
	const units = ["KB", "MB", "GB", "TB"];
	let n = bytes;
	let unit = "B";
	for (const u of units) {
		if (n < 1000) break;
		n /= 1000;
		unit = u;
	}
	return `${n < 10 ? n.toFixed(1) : Math.round(n)} ${unit}`;
}

/** The server's refusal as a sentence: its own message when it gave one. */
function refusal(
	status: number,
	body: { code?: string; message?: string } | undefined,
	name: string,
): string {
	const said = body?.message ? `: ${body.message}` : "";
	if (status === 413) return `${name} is too large${said}.`;
	if (status === 507) return `The server has no room for ${name} right now${said}.`;
	if (status === 401) return "Sign in again to send files.";
	if (status === 429) return `Too many files at once: remove ${name} and add it again in a few seconds.`;
	if (status === 0) return `${name} could not be sent: the connection failed.`;
	return `${name} could not be sent${said || ` (error ${status})`}.`;
}

/** Uploads per room, each with its request, so it can be cancelled. */
export class Uploads {
	private readonly rooms = new Map<string, Upload[]>();
	private readonly requests = new Map<string, Request>();
	private count = 0;

	constructor(
		private readonly changed: () => void,
		private readonly request: () => Request = () => new XMLHttpRequest() as unknown as Request,
		private readonly base = "",
	) {}

	of(room: string): Upload[] {
		return this.rooms.get(room) ?? [];
	}

	/** Files ready to send with the room's next message. */
	ready(room: string): FileRef[] {
		return this.of(room).flatMap((u) => (u.state === "done" && u.file ? [u.file] : []));
	}

	/** Any upload of the room still going. */
	busy(room: string): boolean {
		return this.of(room).some((u) => u.state === "uploading");
	}

	/** Starts uploading files (from the button, a drop or a paste); returns a sentence when some were left out. */
	add(room: string, files: readonly File[]): string | undefined {
		const list = this.rooms.get(room) ?? [];
		const space = Math.max(0, FILES_PER_MESSAGE - list.filter((u) => u.state !== "failed").length);
		for (const file of files.slice(0, space)) list.push(this.start(file));
		this.rooms.set(room, list);
		this.changed();
		return files.length > space ? `A message carries at most ${FILES_PER_MESSAGE} files.` : undefined;
	}

	/** Stops an upload (or takes back a finished or failed one): nothing of it is sent. */
	cancel(room: string, key: string): void {
		this.requests.get(key)?.abort();
		this.requests.delete(key);
		this.rooms.set(
			room,
			this.of(room).filter((u) => u.key !== key),
		);
		this.changed();
	}

	/** The message went: the room starts afresh. */
	clear(room: string): void {
		for (const u of this.of(room)) this.requests.delete(u.key);
		this.rooms.delete(room);
		this.changed();
	}

	private start(file: File): Upload {
		// A pasted screenshot is named "image.png" by the browser; say when it came.
		const name = file.name || "pasted file";
		const upload: Upload = { key: `u${++this.count}`, name, size: file.size, loaded: 0, state: "uploading" };
		const xhr = this.request();
		this.requests.set(upload.key, xhr);
		const current = () => this.requests.get(upload.key) === xhr;
		xhr.upload.onprogress = (e) => {
			if (!current()) return;
			upload.loaded = e.loaded;
			this.changed();
		};
		xhr.onload = () => {
			if (!current()) return;
			this.requests.delete(upload.key);
			let body: (Partial<FileRef> & { ok?: boolean; code?: string; message?: string }) | undefined;
			try {
				body = JSON.parse(xhr.responseText);
			} catch {
				body = undefined;
			}
			if (xhr.status === 201 && body?.ok && typeof body.id === "string") {
				upload.state = "done";
				upload.loaded = upload.size;
				upload.file = {
					id: body.id,
					name: typeof body.name === "string" ? body.name : name,
					type: typeof body.type === "string" ? body.type : "application/octet-stream",
					size: typeof body.size === "number" ? body.size : file.size,
					...(body.width ? { width: body.width } : {}),
					...(body.height ? { height: body.height } : {}),
					...(body.inline ? { inline: true } : {}),
				};
			} else {
				upload.state = "failed";
				upload.error = refusal(xhr.status, body, name);
			}
			this.changed();
		};
		xhr.onerror = () => {
			if (!current()) return;
			this.requests.delete(upload.key);
			upload.state = "failed";
			upload.error = refusal(0, undefined, name);
			this.changed();
		};
		// Same origin: the session cookie goes with it, and the server checks the Origin header.
		xhr.open("POST", `${this.base}/api/uploads?name=${encodeURIComponent(name)}`);
		xhr.setRequestHeader("Content-Type", "application/octet-stream");
		xhr.send(file);
		return upload;
	}
}
