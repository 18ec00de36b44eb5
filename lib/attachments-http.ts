// The upload and download routes (POST /api/uploads, GET /api/files/:id): who may, how much, and the answers.
import { isAbsolute, join } from "node:path";
import type { Account } from "./accounts.ts";
import { cleanName, DiskFull, downloadHeaders, UploadInterrupted, UploadTooLarge } from "./attachments.ts";
import type { MessageFiles } from "./attachments-index.ts";
import type { Config } from "./config.ts";
import { secured } from "./http.ts";
import type { Logger } from "./log.ts";
import { checkOrigin } from "./origin.ts";
import { UpgradeRate } from "./rate-limit.ts";
import { isPostgresUrl, StoreError } from "./store.ts";

/**
 * Where uploaded files live: --upload-dir, else `<db>.files` beside a SQLite
 * file (one host, nothing beside the executable), else `hubbub-files` in the
 * working folder (PostgreSQL: every process of a cluster must be given the
 * same shared folder with --upload-dir).
 */
export function uploadDir(config: Pick<Config, "db" | "uploadDir">): string {
	if (config.uploadDir) return config.uploadDir;
	if (isPostgresUrl(config.db) || config.db === ":memory:" || config.db === "")
		return join(process.cwd(), "hubbub-files");
	return `${isAbsolute(config.db) ? config.db : join(process.cwd(), config.db)}.files`;
}

export interface AttachmentDeps {
	config: Pick<Config, "auth" | "origins" | "maxUpload" | "uploadQuota">;
	/** Files in messages and their folder (`files.blobs`, undefined under --auth none). */
	files: MessageFiles;
	/** The signed-in account of a request (--auth accounts), or undefined. */
	signedIn(req: Request, address: string): Promise<Account | undefined>;
	log: Logger;
}

const ID = /^[0-9a-f]{64}$/;

/**
 * Uploads per account: a burst of 30 (a page pasting or dropping a handful of
 * files at once), then 1 a second. Each costs an fsync and rows however small
 * the file, which the byte quota alone would not bound.
 */
export const UPLOAD_RATE = { rate: 1, burst: 30 };

function quotaMessage(quota: number, left: number): string {
	return `this file would take your account past its quota of ${quota} bytes of stored files (${left} left, --upload-quota); delete messages with files to make room`;
}

const json = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
	secured(Response.json(body, { status, headers }));
const refuse = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
	json(status, { ok: false, code, message }, headers);

/**
 * Uploads need --auth accounts: without accounts nobody can say who stored a
 * file or stop a stranger filling the disk, so `--auth none` refuses them
 * (403 `uploads_need_accounts`). Downloads need a signed-in session too.
 */
export class AttachmentRoutes {
	/** Account id → bytes of its uploads streaming now on this process: counted against its quota meanwhile. */
	private readonly streaming = new Map<string, number>();
	private readonly rate = new UpgradeRate(UPLOAD_RATE.rate, UPLOAD_RATE.burst);

	constructor(private readonly deps: AttachmentDeps) {}

	/** POST /api/uploads?name=NAME with the file's bytes as the body (any Content-Type; it is not trusted). */
	async upload(req: Request, address: string): Promise<Response> {
		const files = this.deps.files.blobs;
		if (!files)
			return refuse(
				403,
				"uploads_need_accounts",
				"this server takes no uploads: it runs without accounts (--auth none)",
			);
		// CSRF: a state-changing request from a page must come from an allowed origin, like the WebSocket.
		const origin = req.headers.get("origin");
		if (origin === null || !checkOrigin(origin, req.headers.get("host"), this.deps.config.origins).ok)
			return refuse(403, "origin_not_allowed", "uploads are taken only from this server's own page");
		const account = await this.deps.signedIn(req, address);
		if (!account) return refuse(401, "not_signed_in", "sign in first");
		const wait = this.rate.take(account.id);
		if (wait > 0)
			return refuse(429, "too_many_uploads", `too many uploads at once; try again in ${wait} s`, {
				"retry-after": String(wait),
				connection: "close",
			});
		const length = req.headers.get("content-length");
		const declared = length === null || !Number.isFinite(Number(length)) ? undefined : Number(length);
		// Refused before a byte of the body is read; the connection is closed rather than drained.
		if (declared !== undefined && declared > files.maxBytes)
			return refuse(413, "too_large", new UploadTooLarge(files.maxBytes).message, { connection: "close" });
		const quota = this.deps.config.uploadQuota;
		let left = Number.POSITIVE_INFINITY;
		if (quota > 0) {
			const used = (await this.deps.files.uploadedBytes(account.id)) + (this.streaming.get(account.id) ?? 0);
			left = Math.max(0, quota - used);
			if (declared !== undefined && declared > left)
				return refuse(413, "upload_quota", quotaMessage(quota, left), { connection: "close" });
		}
		if (!req.body) return refuse(400, "empty", "the request has no body: send the file's bytes");
		const name = cleanName(new URL(req.url).searchParams.get("name") ?? "file");
		// Held against the quota while it streams, so parallel uploads cannot each spend the same rest.
		const held = declared ?? Math.min(left, files.maxBytes);
		if (quota > 0) this.streaming.set(account.id, (this.streaming.get(account.id) ?? 0) + held);
		try {
			const received = await files.receive(req.body, declared, left);
			await this.deps.files.record(account.id, received, name);
			const { temp: _, ...stored } = received;
			this.deps.log.info("upload_stored", { id: stored.id, size: stored.size, type: stored.type });
			return json(201, {
				ok: true,
				...stored,
				name,
				url: `/api/files/${stored.id}?name=${encodeURIComponent(name)}`,
			});
		} catch (e) {
			if (e instanceof UploadTooLarge && e.limit < files.maxBytes)
				return refuse(413, "upload_quota", quotaMessage(quota, left), { connection: "close" });
			if (e instanceof UploadTooLarge) return refuse(413, "too_large", e.message, { connection: "close" });
			if (e instanceof DiskFull) {
				this.deps.log.error("upload_disk_full", { dir: files.dir });
				return refuse(507, "disk_full", e.message);
			}
			if (e instanceof UploadInterrupted) return refuse(400, "interrupted", e.message);
			if (e instanceof StoreError) {
				this.deps.log.error("upload_not_recorded", { error: e.message });
				return refuse(503, "server_error", "the file could not be recorded; try again", {
					"retry-after": "5",
				});
			}
			throw e;
		} finally {
			if (quota > 0) {
				const rest = (this.streaming.get(account.id) ?? 0) - held;
				if (rest > 0) this.streaming.set(account.id, rest);
				else this.streaming.delete(account.id);
			}
		}
	}

	/**
	 * GET /api/files/:id?name=NAME, for a signed-in person who may read a room
	 * holding a message with the file, or who uploaded it (lib/attachments-index.ts
	 * mayDownload, asked of the shared store on every request). Anyone else
	 * gets the same 404 as for no file at all, so ids cannot be probed.
	 */
	async download(req: Request, id: string, address: string): Promise<Response> {
		const files = this.deps.files.blobs;
		if (!files) return refuse(404, "not_found", "no such file");
		const account = await this.deps.signedIn(req, address);
		if (!account) return refuse(401, "not_signed_in", "sign in first");
		let allowed: boolean;
		try {
			allowed = ID.test(id) && (await this.deps.files.mayDownload({ name: account.name, account }, id));
		} catch (e) {
			// The database is away: say so, rather than a 404 that would read as "deleted".
			this.deps.log.error("download_check_failed", { error: (e as Error).message });
			return refuse(503, "server_error", "the server cannot check this file now; try again", {
				"retry-after": "5",
			});
		}
		if (!allowed) return refuse(404, "not_found", "no such file");
		const file = await files.describe(id);
		if (!file) return refuse(404, "not_found", "no such file");
		const name = new URL(req.url).searchParams.get("name") ?? id.slice(0, 12);
		return secured(new Response(Bun.file(files.path(id)), { headers: downloadHeaders(file, name) }));
	}
}
