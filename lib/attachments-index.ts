// Files in messages: which uploads a send may carry, who may download a file, and deleting files no message holds.
import type { FileRef } from "../protocol.ts";
import { mayRead, type Reader } from "./access.ts";
import type { AttachmentStore, Received } from "./attachments.ts";
import type { Logger } from "./log.ts";
import { type FileIndex, FORGET_STEP, UnknownFile } from "./store.ts";

export { UnknownFile };

/** How long an upload not yet sent keeps its file (the page uploads first, then sends). */
export const UNSENT_KEEP_MS = 86_400_000;
/** Rooms a download check looks at: a file in more rooms than this is checked against these. */
const ROOMS_CHECKED = 1000;

export interface MessageFilesOptions {
	log?: Logger;
	/** How long an un-sent upload keeps its file (UNSENT_KEEP_MS). */
	unsentKeepMs?: number;
	/**
	 * Whether a download's reader may read a room: lib/access.ts mayRead by
	 * default; server.ts may give an asynchronous check of the room store
	 * (an HTTP request has no connection that knows its rooms).
	 */
	mayRead?: (reader: Reader, room: string) => boolean | Promise<boolean>;
}

/**
 * The link between messages and stored files, over the store's file index
 * (both stores keep it: shared by every process of a cluster) and the folder
 * of bytes (`blobs`; undefined under --auth none, where there are no uploads).
 */
export class MessageFiles {
	private readonly log?: Logger;
	private readonly unsentKeepMs: number;
	private readonly mayRead: (reader: Reader, room: string) => boolean | Promise<boolean>;

	constructor(
		private readonly index: FileIndex,
		readonly blobs: AttachmentStore | undefined,
		options: MessageFilesOptions = {},
	) {
		this.log = options.log;
		this.unsentKeepMs = options.unsentKeepMs ?? UNSENT_KEEP_MS;
		this.mayRead = options.mayRead ?? mayRead;
	}

	/**
	 * Records `account`'s upload of `file` under `name` (cleaned) and puts its
	 * bytes in place, in one transaction of the store (so a deletion of the same
	 * bytes cannot slip between): it may send it now, and it counts against its quota.
	 */
	async record(account: string, file: Received, name: string): Promise<void> {
		const blobs = this.blobs;
		if (!blobs) throw new UnknownFile("this server takes no files: it runs without accounts (--auth none)");
		try {
			await this.index.recordUpload(
				{
					account,
					id: file.id,
					name,
					type: file.type,
					size: file.size,
					width: file.width,
					height: file.height,
					inline: file.inline,
					created: Date.now(),
				},
				() => blobs.place(file),
			);
		} finally {
			// Placed, it is gone from the temporary folder; otherwise it must not stay there.
			await blobs.discard(file);
		}
	}

	/**
	 * The files `account` may send, described as it uploaded them, in the
	 * order of `ids`; UnknownFile for an id it did not upload (or without an
	 * account: --auth none has no uploads).
	 */
	async resolve(account: string | undefined, ids: string[]): Promise<FileRef[]> {
		if (account === undefined || !this.blobs)
			throw new UnknownFile("this server takes no files: it runs without accounts (--auth none)");
		const rows = new Map((await this.index.uploads(account, ids)).map((r) => [r.id, r]));
		return ids.map((id) => {
			const row = rows.get(id);
			if (!row)
				throw new UnknownFile(
					`file ${id.slice(0, 12)}… is not one of your uploads (or it was deleted): upload it again`,
				);
			const file: FileRef = { id, name: row.name, type: row.type, size: row.size };
			if (row.width !== undefined && row.height !== undefined) {
				file.width = row.width;
				file.height = row.height;
			}
			if (row.inline) file.inline = true;
			return file;
		});
	}

	/**
	 * True when `reader` may download file `id`: it may read (lib/access.ts
	 * mayRead) a room holding a message with it, or it uploaded the file.
	 * Asked on every request, of the shared store, so every process agrees.
	 */
	async mayDownload(reader: Reader, id: string): Promise<boolean> {
		for (const room of await this.index.fileRooms(id, ROOMS_CHECKED))
			if (await this.mayRead(reader, room)) return true;
		const account = reader.account?.id;
		return account !== undefined && (await this.index.uploads(account, [id])).length > 0;
	}

	/**
	 * A message was deleted: its files leave it (its `files` and its links),
	 * and each file no other message holds, and that no un-sent upload of the
	 * last day refers to, is deleted with its upload rows. Call it after the
	 * deletion is committed; safe to call again.
	 */
	async releaseMessage(room: string, seq: number): Promise<void> {
		const ids = await this.index.releaseFiles(room, seq);
		if (ids.length > 0) await this.forget(ids);
	}

	/**
	 * Deletes files nothing holds any more: those of messages retention
	 * removed, and uploads never sent within a day. Resolves with how many.
	 */
	async sweep(): Promise<number> {
		// A deletion whose releaseMessage failed (the database was away) left links behind: they go first.
		await this.index.unlinkGone();
		let removed = 0;
		for (;;) {
			const n = await this.forget(undefined);
			removed += n;
			if (n < FORGET_STEP) return removed;
		}
	}

	/**
	 * Deletes stored bytes nothing refers to (no upload row, no message): left
	 * by a crash, by uploads from before hubbub recorded them, or by a
	 * database put back from a backup; and temporary files of uploads cut off
	 * by a crash. Each is decided again under the store's lock (forgetFiles),
	 * so an upload of the same bytes happening meanwhile keeps them.
	 */
	async sweepFolder(): Promise<number> {
		const blobs = this.blobs;
		if (!blobs) return 0;
		let removed = await blobs.removeStaleTemp(this.unsentKeepMs);
		for await (const ids of blobs.ids()) {
			for (let i = 0; i < ids.length; i += FORGET_STEP) {
				const chunk = ids.slice(i, i + FORGET_STEP);
				const known = await this.index.knownFiles(chunk);
				const unknown = chunk.filter((id) => !known.has(id));
				if (unknown.length > 0) removed += await this.forget(unknown);
			}
		}
		return removed;
	}

	/**
	 * Sweeps every `everyMs`, and the folder every `folderEvery`th round
	 * (failures logged; the next round tries again).
	 */
	startSweeping(everyMs = 600_000, folderEvery = 36): { stop(): void } {
		let round = 0;
		const timer = setInterval(() => {
			const folder = ++round % folderEvery === 0;
			(folder ? this.sweep().then(() => this.sweepFolder()) : this.sweep()).catch((e: unknown) =>
				this.log?.error("files_sweep_failed", { error: (e as Error).message }),
			);
		}, everyMs);
		timer.unref?.();
		return { stop: () => clearInterval(timer) };
	}

	/** Bytes `account` has stored (its uploads still kept), as its quota counts them. */
	uploadedBytes(account: string): Promise<number> {
		return this.index.uploadedBytes(account);
	}

	private async forget(ids: string[] | undefined): Promise<number> {
		const blobs = this.blobs;
		const gone = await this.index.forgetFiles(ids, Date.now() - this.unsentKeepMs, (id) =>
			blobs?.removeNow(id),
		);
		if (gone.length > 0) this.log?.info("files_deleted", { files: gone.length });
		return gone.length;
	}
}
