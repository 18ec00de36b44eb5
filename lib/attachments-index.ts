// Files in messages: which uploads a send may carry, who may download a file, and deleting files no message holds.
import type { FileRef } from "../protocol.ts";
import { mayRead, type Reader } from "./access.ts";
import type { AttachmentStore, StoredFile } from "./attachments.ts";
import type { Logger } from "./log.ts";
import { type FileIndex, FORGET_STEP } from "./store.ts";

/** A send named a file its account did not upload (or one since deleted); nothing was stored. */
export class UnknownFile extends Error {
	override name = "UnknownFile";
}

/** How long an upload not yet sent keeps its file (the page uploads first, then sends). */
export const UNSENT_KEEP_MS = 86_400_000;
/** Rooms a download check looks at: a file in more rooms than this is checked against these. */
const ROOMS_CHECKED = 1000;

/**
 * The link between messages and stored files, over the store's file index
 * (both stores keep it: shared by every process of a cluster) and the folder
 * of bytes (`blobs`; undefined under --auth none, where there are no uploads).
 */
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

	/** Records `account`'s upload of `file` under `name` (cleaned): it may send it now, and it counts against its quota. */
	record(account: string, file: StoredFile, name: string): Promise<void> {
		return this.index.recordUpload({
			account,
			id: file.id,
			name,
			type: file.type,
			size: file.size,
			width: file.width,
			height: file.height,
			inline: file.inline,
			created: Date.now(),
		});
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
		let removed = 0;
		for (;;) {
			const n = await this.forget(undefined);
			removed += n;
			if (n < FORGET_STEP) return removed;
		}
	}

	/** Sweeps every `everyMs` (failures logged; the next round tries again). */
	startSweeping(everyMs = 600_000): { stop(): void } {
		const timer = setInterval(() => {
			this.sweep().catch((e: unknown) =>
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
		const gone = await this.index.forgetFiles(ids, Date.now() - this.unsentKeepMs);
		for (const id of gone) await this.blobs?.remove(id);
		if (gone.length > 0) this.log?.info("files_deleted", { files: gone.length });
		return gone.length;
	}
}
