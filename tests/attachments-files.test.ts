// Files in messages at the store: both stores keep a message's files through every read, link them to
// their rooms, and let MessageFiles delete a file once no message (nor a fresh un-sent upload) holds it.
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SQL } from "bun";
import { AttachmentStore, type StoredFile } from "../lib/attachments.ts";
import { MessageFiles, UnknownFile } from "../lib/attachments-index.ts";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import type { FileRef } from "../protocol.ts";
import { type Postgres, startPostgres } from "./engines.ts";
import { downgradeToSchema7, tempDir } from "./helpers.ts";

let pg: Postgres;
beforeAll(async () => {
	pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.[Symbol.dispose]());

interface Fresh {
	store: Store;
	blobs: AttachmentStore;
	/** Another handle on the same database (a second process). */
	reopen(): Promise<Store>;
	/** Takes the database back to schema 3 (before files), keeping its messages. */
	downgrade(): Promise<void>;
	[Symbol.asyncDispose](): Promise<void>;
}

const backends: [string, () => Promise<Fresh>][] = [
	[
		"sqlite",
		async () => {
			const dir = tempDir("hubbub-files-");
			const path = join(dir.path, "h.db");
			const store = new SqliteStore(path);
			return {
				store,
				blobs: new AttachmentStore(join(dir.path, "files"), 1024 ** 2),
				reopen: async () => new SqliteStore(path),
				downgrade: async () => {
					const db = new Database(path);
					downgradeToSchema7(db);
					db.run("ALTER TABLE messages DROP COLUMN files");
					db.run("DROP TABLE uploads");
					db.run("DROP TABLE message_files");
					// Nor what came after files (schema 5: edits and deletions).
					db.run("DROP INDEX messages_change");
					for (const c of ["edited", "deleted", "reactions", "change_seq"])
						db.run(`ALTER TABLE messages DROP COLUMN ${c}`);
					db.run("ALTER TABLE room_floors DROP COLUMN changes");
					// Nor schema 6's queue of texts the search eraser forgets.
					db.run("DROP TABLE search_forget");
					// And schema 3's search indexes, in the database itself (schema 7 moved them to a file beside it).
					db.run(
						"CREATE VIRTUAL TABLE search_trigrams USING fts5(text, tokenize = 'trigram', content = '', contentless_delete = 1)",
					);
					db.run(
						"CREATE VIRTUAL TABLE search_words USING fts5(text, tokenize = 'unicode61', content = '', contentless_delete = 1, detail = none)",
					);
					db.run("UPDATE meta SET value = '3' WHERE key = 'schema'");
					db.close();
				},
				[Symbol.asyncDispose]: async () => {
					await store.close().catch(() => {});
					dir[Symbol.dispose]();
				},
			};
		},
	],
	[
		"postgres",
		async () => {
			const dir = tempDir("hubbub-files-");
			const url = await pg.database();
			const store = await PostgresStore.open(url);
			return {
				store,
				blobs: new AttachmentStore(join(dir.path, "files"), 1024 ** 2),
				reopen: () => PostgresStore.open(url),
				downgrade: async () => {
					const sql = new SQL(url);
					await sql`ALTER TABLE hubbub_messages DROP COLUMN files`;
					await sql`DROP TABLE hubbub_uploads`;
					await sql`DROP TABLE hubbub_message_files`;
					// Nor what came after files (schema 5: edits and deletions).
					await sql`DROP INDEX hubbub_messages_change`;
					await sql`ALTER TABLE hubbub_messages DROP COLUMN edited, DROP COLUMN deleted, DROP COLUMN reactions,
						DROP COLUMN change_seq`;
					await sql`ALTER TABLE hubbub_rooms DROP COLUMN changes`;
					await sql`UPDATE hubbub_meta SET value = '3' WHERE key = 'schema'`;
					await sql.close();
				},
				[Symbol.asyncDispose]: async () => {
					await store.close().catch(() => {});
					dir[Symbol.dispose]();
				},
			};
		},
	],
];

/** Stores `text` as a file and records it as `account`'s upload. */
async function upload(
	files: MessageFiles,
	account: string,
	text: string,
	name = "notes.txt",
): Promise<StoredFile> {
	const blobs = files.blobs as AttachmentStore;
	const received = await blobs.receive(new Response(text).body as ReadableStream<Uint8Array>);
	await files.record(account, received, name);
	return received;
}

const send = (store: Store, room: string, text: string, files: FileRef[], account = "acc-alice") =>
	store.append({ room, from: "alice", text, ts: Date.now(), files, account });

describe.each(backends)("%s", (_, fresh) => {
	test("a message's files come back from latest, since, after and before, and from another handle", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const a = await upload(files, "acc-alice", "first file", "a.txt");
		const b = await upload(files, "acc-alice", "second file", "b.txt");
		const refs = await files.resolve("acc-alice", [b.id, a.id]);
		expect(refs.map((f) => f.name)).toEqual(["b.txt", "a.txt"]);
		expect(refs[0]).toEqual({ id: b.id, name: "b.txt", type: "application/octet-stream", size: 11 });
		const sent = await send(h.store, "general", "", refs);
		expect(sent.message.files).toEqual(refs);
		await h.store.append({ room: "general", from: "bob", text: "no files", ts: Date.now() });
		const reads = [
			await h.store.latest("general", 10),
			await h.store.since("general", 0, 10),
			await h.store.after("general", 0, 10),
			await h.store.before("general", 3, 10),
		];
		for (const page of reads) {
			expect(page.messages[0]?.files).toEqual(refs);
			expect(page.messages[1]).not.toHaveProperty("files");
		}
		const other = await h.reopen();
		expect((await other.latest("general", 10)).messages[0]?.files).toEqual(refs);
		await other.close();
	});

	test("only the uploader's own uploads resolve; anything else is UnknownFile", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const mine = await upload(files, "acc-alice", "alice's");
		await expect(files.resolve("acc-bob", [mine.id])).rejects.toBeInstanceOf(UnknownFile);
		await expect(files.resolve("acc-alice", [mine.id, "f".repeat(64)])).rejects.toThrow(
			/not one of your uploads/,
		);
		await expect(files.resolve(undefined, [mine.id])).rejects.toThrow(/--auth none/);
		expect(await h.store.uploadedBytes("acc-alice")).toBe(7);
		// The same bytes again count once.
		await upload(files, "acc-alice", "alice's", "again.txt");
		expect(await h.store.uploadedBytes("acc-alice")).toBe(7);
		expect((await files.resolve("acc-alice", [mine.id]))[0]?.name).toBe("again.txt");
	});

	test("downloads: readers of a room holding the file, and its uploader; nobody else", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const f = await upload(files, "acc-alice", "plans");
		// Members of #general (lib/access.ts mayRead: an account reads the rooms it is a member of).
		const memberOf = new Set(["general"]);
		type Reader = Parameters<MessageFiles["mayDownload"]>[0];
		const bob = { name: "bob", account: { id: "acc-bob" } as Reader["account"], memberOf };
		const alice = { name: "alice", account: { id: "acc-alice" } as Reader["account"], memberOf };
		expect(await files.mayDownload(alice, f.id)).toBe(true);
		expect(await files.mayDownload(bob, f.id)).toBe(false);
		await send(h.store, "general", "plans", await files.resolve("acc-alice", [f.id]));
		expect(await h.store.fileRooms(f.id, 10)).toEqual(["general"]);
		expect(await files.mayDownload(bob, f.id)).toBe(true);
		// The room rule decides (lib/access.ts mayRead, or the check server.ts gives): bob may not read "secret".
		const guarded = new MessageFiles(h.store, h.blobs, {
			mayRead: (r, room) => r.name !== "bob" || room !== "secret",
		});
		const secret = await upload(guarded, "acc-alice", "secret plans");
		await send(h.store, "secret", "", await guarded.resolve("acc-alice", [secret.id]));
		expect(await guarded.mayDownload(bob, secret.id)).toBe(false);
		expect(await guarded.mayDownload(alice, secret.id)).toBe(true);
		// Also sent where bob may read: now he may fetch it.
		await send(h.store, "general", "", await guarded.resolve("acc-alice", [secret.id]));
		expect(await guarded.mayDownload(bob, secret.id)).toBe(true);
	});

	test("releaseMessage deletes a file once no message holds it, and keeps one a fresh un-sent upload holds", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const shared = await upload(files, "acc-alice", "in two messages");
		const alone = await upload(files, "acc-alice", "in one message");
		const m1 = await send(h.store, "general", "one", await files.resolve("acc-alice", [shared.id, alone.id]));
		const m2 = await send(h.store, "random", "two", await files.resolve("acc-alice", [shared.id]));
		await files.releaseMessage("general", m1.message.seq);
		expect(existsSync(h.blobs.path(alone.id))).toBe(false);
		expect(existsSync(h.blobs.path(shared.id))).toBe(true);
		expect((await h.store.latest("general", 1)).messages[0]).not.toHaveProperty("files");
		expect(await h.store.fileRooms(shared.id, 10)).toEqual(["random"]);
		expect(await h.store.uploads("acc-alice", [alone.id])).toEqual([]);
		// Released again: nothing more happens.
		await files.releaseMessage("general", m1.message.seq);
		// Alice uploads the shared file again to send it later: its last message's deletion keeps it.
		await upload(files, "acc-alice", "in two messages");
		await files.releaseMessage("random", m2.message.seq);
		expect(existsSync(h.blobs.path(shared.id))).toBe(true);
		expect(await files.resolve("acc-alice", [shared.id])).toHaveLength(1);
		// A day later, never sent: the sweep deletes it and frees the quota.
		const later = new MessageFiles(h.store, h.blobs, { unsentKeepMs: -1 });
		expect(await later.sweep()).toBe(1);
		expect(existsSync(h.blobs.path(shared.id))).toBe(false);
		expect(await h.store.uploadedBytes("acc-alice")).toBe(0);
	});

	test("a deletion whose release never ran (the database was away) is caught up by the sweep", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const f = await upload(files, "acc-alice", "deleted, then swept");
		const sent = await send(h.store, "general", "", await files.resolve("acc-alice", [f.id]));
		expect((await h.store.remove("general", sent.message.seq)).ok).toBe(true);
		// No releaseMessage: the link is still there, and room readers could still fetch it.
		expect(await h.store.fileRooms(f.id, 10)).toEqual(["general"]);
		expect(await files.sweep()).toBe(1);
		expect(await h.store.fileRooms(f.id, 10)).toEqual([]);
		expect(existsSync(h.blobs.path(f.id))).toBe(false);
	});

	test("retention's prune releases the files of the messages it removes", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const old = await upload(files, "acc-alice", "old screenshot");
		const kept = await upload(files, "acc-alice", "new screenshot");
		await send(h.store, "general", "old", await files.resolve("acc-alice", [old.id]));
		await send(h.store, "general", "new", await files.resolve("acc-alice", [kept.id]));
		expect(await h.store.prune({ keep: 1 })).toBe(1);
		expect(await files.sweep()).toBe(1);
		expect(existsSync(h.blobs.path(old.id))).toBe(false);
		expect(existsSync(h.blobs.path(kept.id))).toBe(true);
	});

	test("a send whose file was deleted after the send looked it up stores nothing and takes no seq", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs);
		const f = await upload(files, "acc-alice", "soon gone");
		const refs = await files.resolve("acc-alice", [f.id]);
		// Sent once and that message deleted: the file goes, while a second send still holds its description.
		const first = await send(h.store, "general", "first", refs);
		await files.releaseMessage("general", first.message.seq);
		expect(existsSync(h.blobs.path(f.id))).toBe(false);
		await expect(send(h.store, "general", "second", refs)).rejects.toBeInstanceOf(UnknownFile);
		const next = await h.store.append({ room: "general", from: "alice", text: "plain", ts: Date.now() });
		expect(next.message.seq).toBe(2);
		expect(await h.store.fileRooms(f.id, 10)).toEqual([]);
	});

	test("the folder sweep deletes bytes nothing refers to and cut-off temporary files, and keeps the rest", async () => {
		await using h = await fresh();
		const files = new MessageFiles(h.store, h.blobs, { unsentKeepMs: 0 });
		const kept = await upload(files, "acc-alice", "recorded and sent");
		await send(h.store, "general", "", await files.resolve("acc-alice", [kept.id]));
		// Bytes without a record (a crash between storing and recording, or an older hubbub's upload).
		const orphan = await h.blobs.put(new Response("nobody's").body as ReadableStream<Uint8Array>);
		const temp = join(h.blobs.dir, "tmp", "cut-off");
		await Bun.write(temp, "half an upload");
		await Bun.sleep(5);
		expect(await files.sweepFolder()).toBe(2);
		expect(existsSync(h.blobs.path(orphan.id))).toBe(false);
		expect(existsSync(temp)).toBe(false);
		expect(existsSync(h.blobs.path(kept.id))).toBe(true);
	});

	test("a database from before files is migrated: old messages read as before, new ones carry files", async () => {
		await using h = await fresh();
		await h.store.append({ room: "general", from: "alice", text: "before files", ts: Date.now() });
		await h.store.close();
		await h.downgrade();
		const store = await h.reopen();
		try {
			const files = new MessageFiles(store, h.blobs);
			const f = await upload(files, "acc-alice", "after");
			await send(store, "general", "after files", await files.resolve("acc-alice", [f.id]));
			const page = await store.latest("general", 10);
			expect(page.messages.map((m) => [m.text, m.files?.length])).toEqual([
				["before files", undefined],
				["after files", 1],
			]);
		} finally {
			await store.close();
		}
	});
});
