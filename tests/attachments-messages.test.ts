// Files in messages over the real server: a send carries uploads, everyone in the room sees them live and
// in history, downloads follow the room (on every process of a cluster), and the per-account quota holds.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { ServerFrameOf } from "../protocol.ts";
import { type Browser, invite, setupAdmin, startAccountsServer } from "./accounts-helpers.ts";
import { startPostgres, startRedis } from "./engines.ts";
import { Client, chatter, fromSource, spawnServer, startServer, tempDir } from "./helpers.ts";

/** A PNG header (signature + IHDR) of the given size, then filler bytes. */
function png(width: number, height: number, filler = 100): Uint8Array<ArrayBuffer> {
	const b = new Uint8Array(33 + filler);
	b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
	const v = new DataView(b.buffer);
	v.setUint32(16, width);
	v.setUint32(20, height);
	for (let i = 33; i < b.length; i++) b[i] = (i * 7) % 251;
	return b;
}

async function upload(b: Browser, name: string, body: BodyInit, base = b.base) {
	const r = await fetch(`${base}/api/uploads?name=${encodeURIComponent(name)}`, {
		method: "POST",
		headers: { origin: base, ...(b.cookie ? { cookie: b.cookie } : {}) },
		body,
	});
	return {
		status: r.status,
		body: (await r.json()) as Record<string, unknown> & { id: string; url: string },
	};
}

const download = (b: Browser, id: string, base = b.base) =>
	fetch(`${base}/api/files/${id}`, { headers: { cookie: b.cookie as string } });

const wsUrl = (base: string) => `${base.replace("http", "ws")}/ws`;

/** A signed-in socket of `who` on the server at `base`, joined to `room`. */
async function socket(who: Browser, room: string, base = who.base): Promise<Client> {
	const c = await Client.connect(wsUrl(base), { headers: { ...who.wsHeaders(), origin: base } });
	await c.expect("welcome");
	await c.join(room);
	return c;
}

describe("files in messages", () => {
	test("a message of files alone reaches the room live and in history, with what the upload said of each file", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const shot = await upload(alice, "shot <1>.png", png(640, 480));
		const notes = await upload(alice, "notes.txt", "remember the milk");
		expect(shot.status).toBe(201);
		const a = await socket(alice, "general");
		const b = await socket(bob, "general");
		// Before it is sent, only alice may fetch it; bob gets what a file that does not exist gets.
		expect((await download(alice, shot.body.id)).status).toBe(200);
		const early = await download(bob, shot.body.id);
		const missing = await download(bob, "0".repeat(64));
		expect([early.status, await early.json()]).toEqual([missing.status, await missing.json()]);
		expect(early.status).toBe(404);

		a.send({ type: "send", room: "general", id: "m1", text: "", files: [shot.body.id, notes.body.id] });
		const live = await b.expect("message", (m) => m.id === "m1");
		const expected = [
			{
				id: shot.body.id,
				name: "shot _1_.png",
				type: "image/png",
				size: 133,
				width: 640,
				height: 480,
				inline: true,
			},
			{ id: notes.body.id, name: "notes.txt", type: "application/octet-stream", size: 17 },
		];
		expect(live.text).toBe("");
		expect(live.files).toEqual(expected);
		expect((await a.expect("message", (m) => m.id === "m1")).files).toEqual(expected);
		// Bob may read the room, so he may fetch both now.
		const got = await download(bob, shot.body.id);
		expect(got.status).toBe(200);
		expect(new Uint8Array(await got.arrayBuffer())).toEqual(png(640, 480));
		expect((await download(bob, notes.body.id)).status).toBe(200);
		// A later join and a history page carry them too.
		const later = await socket(bob, "general");
		const joined = later.frames.find((f) => f.type === "joined") as ServerFrameOf<"joined">;
		expect(joined.messages.at(-1)?.files).toEqual(expected);
		later.send({ type: "history", room: "general", before: live.seq + 1, limit: 5 });
		expect((await later.expect("history")).messages.at(-1)?.files).toEqual(expected);
		for (const c of [a, b, later]) c.close();
	});

	test("deleting a message deletes its files: readers get 404 and the bytes leave the disk", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const shot = await upload(alice, "oops.png", png(50, 50));
		const a = await socket(alice, "general");
		const b = await socket(bob, "general");
		a.send({ type: "send", room: "general", id: "d1", text: "wrong screenshot", files: [shot.body.id] });
		const sent = await a.expect("message", (m) => m.id === "d1");
		expect((await download(bob, shot.body.id)).status).toBe(200);
		a.send({ type: "delete", ref: "del1", room: "general", seq: sent.seq });
		const update = await a.expect("update", (u) => u.message.seq === sent.seq);
		expect(update.message).toMatchObject({ deleted: true, text: "" });
		expect(update.message).not.toHaveProperty("files");
		expect((await download(bob, shot.body.id)).status).toBe(404);
		expect((await download(alice, shot.body.id)).status).toBe(404);
		expect(storedFiles(`${s.dbPath}.files`)).toEqual([]);
		a.send({ type: "history", room: "general", before: sent.seq + 1, limit: 5 });
		expect((await a.expect("history")).messages.at(-1)).not.toHaveProperty("files");
		a.close();
		b.close();
	});

	test("a send naming a file its account did not upload is unknown_file and stores nothing; empty text needs files", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const hers = await upload(alice, "hers.png", png(2, 2));
		const b = await socket(bob, "general");
		b.send({ type: "send", room: "general", id: "x1", text: "look", files: [hers.body.id] });
		const refused = await b.expect("error");
		expect(refused).toMatchObject({ code: "unknown_file", ref: "x1", room: "general" });
		expect(refused.message).toContain("not one of your uploads");
		b.send({ type: "send", room: "general", id: "x2", text: "" });
		expect(await b.expect("error")).toMatchObject({ code: "bad_frame", ref: "x2" });
		b.send({ type: "send", room: "general", id: "x3", text: "still here" });
		const stored = await b.expect("message", (m) => m.id === "x3");
		expect(stored.seq).toBe(1);
		expect(stored).not.toHaveProperty("files");
		b.close();
	});

	test("--auth none takes no files: a send with files is unknown_file and nothing is stored", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "carol", "general");
		c.send({ type: "send", room: "general", id: "f1", text: "hi", files: ["a".repeat(64)] });
		expect(await c.expect("error")).toMatchObject({ code: "unknown_file", ref: "f1" });
		c.send({ type: "send", room: "general", id: "f2", text: "plain" });
		expect((await c.expect("message")).seq).toBe(1);
		c.close();
	});
});

/** Stored files (not the temporary folder). */
function storedFiles(dir: string): string[] {
	if (!existsSync(dir)) return [];
	return readdirSync(dir)
		.filter((d) => d !== "tmp")
		.flatMap((d) => readdirSync(join(dir, d)));
}

describe("upload quota", () => {
	test("an account uploading more than 30 files at once gets 429 too_many_uploads with Retry-After; others are not held back", async () => {
		await using s = await startAccountsServer();
		const alice = await setupAdmin(s);
		// 40 at once: 30 in the burst, and a few more refilled meanwhile on a slow machine.
		const answers = await Promise.all(
			Array.from({ length: 40 }, (_, i) => upload(alice, `n${i}.txt`, `note ${i}`)),
		);
		const refused = answers.filter((a) => a.status === 429);
		expect(refused.length).toBeGreaterThanOrEqual(5);
		expect(answers.filter((a) => a.status === 201).length).toBe(40 - refused.length);
		expect(refused[0]?.body).toMatchObject({ code: "too_many_uploads" });
		const bob = await invite(s, alice, "bob", "bob password");
		expect((await upload(bob, "b.txt", "bob's")).status).toBe(201);
	});

	test("past --upload-quota an upload is 413 upload_quota: before its body when its length says so, and cut off when streamed", async () => {
		await using s = await startAccountsServer({ config: { uploadQuota: 1000 } });
		const alice = await setupAdmin(s);
		const first = await upload(alice, "a.bin", new Uint8Array(300).fill(1));
		expect(first.status).toBe(201);
		// The same bytes again take no more room: 300 + 600 fit, not 300 + 300 + 600.
		expect((await upload(alice, "again.bin", new Uint8Array(300).fill(1))).status).toBe(201);
		const second = await upload(alice, "b.bin", new Uint8Array(600).fill(2));
		expect(second.status).toBe(201);
		// Declared past what is left: answered from the headers, before a byte of the body is sent.
		const { port } = new URL(s.url);
		const answer = await new Promise<string>((resolve, reject) => {
			const sock = connect(Number(port), "127.0.0.1", () => {
				sock.write(
					`POST /api/uploads?name=b.bin HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${s.url}\r\nCookie: ${alice.cookie}\r\nContent-Length: 200\r\n\r\n`,
				);
			});
			let text = "";
			sock.on("data", (d) => {
				text += d.toString();
				if (text.includes("upload_quota") || text.includes("}")) {
					sock.destroy();
					resolve(text);
				}
			});
			sock.on("error", reject);
		});
		expect(answer).toStartWith("HTTP/1.1 413");
		expect(answer).toContain('"code":"upload_quota"');
		expect(answer).toContain("--upload-quota");
		// Streamed without a length: cut off once past the rest, and nothing kept.
		let sent = 0;
		const body = new ReadableStream<Uint8Array>({
			pull(c) {
				if (sent >= 20) return c.close();
				sent++;
				c.enqueue(new Uint8Array(100).fill(sent));
			},
		});
		const streamed = await upload(alice, "c.bin", body).catch(() => ({ status: 0, body: {} }));
		if (streamed.status !== 0) expect(streamed.body).toMatchObject({ code: "upload_quota" });
		expect(storedFiles(`${s.dbPath}.files`).sort()).toEqual([first.body.id, second.body.id].sort());
		// What is left still fits.
		expect((await upload(alice, "d.bin", new Uint8Array(100).fill(4))).status).toBe(201);
		// Another account has its own quota.
		const bob = await invite(s, alice, "bob", "bob password");
		expect((await upload(bob, "e.bin", new Uint8Array(900).fill(3))).status).toBe(201);
	});
});

test("a cluster on PostgreSQL with one shared folder: a file sent on one process is served on the other to the room's readers only", async () => {
	using dir = tempDir("hubbub-files-cluster-");
	using pg = await startPostgres();
	await using redis = await startRedis();
	const db = await pg.database();
	const shared = join(dir.path, "files");
	const flags = ["--db", db, "--redis", redis.url, "--auth", "accounts", "--upload-dir", shared];
	const a = await spawnServer(fromSource(...flags));
	const b = await spawnServer(fromSource(...flags));
	try {
		const alice = await setupAdmin(a);
		const bob = await invite(a, alice, "bob", "bob password");
		const up = await upload(alice, "plan.png", png(800, 600));
		expect(up.status).toBe(201);
		// Bob on the other process: not sent yet, so no room holds it: 404, as for no file at all.
		const before = await download(bob, up.body.id, b.url);
		expect(before.status).toBe(404);
		expect(await before.json()).toMatchObject({ code: "not_found" });
		const onA = await socket(alice, "general");
		const onB = await socket(bob, "general", b.url);
		onA.send({ type: "send", room: "general", id: "p1", text: "the plan", files: [up.body.id] });
		const live = await onB.expect("message", (m) => m.id === "p1", 10_000);
		expect(live.files?.[0]).toMatchObject({ id: up.body.id, width: 800, height: 600, inline: true });
		const after = await download(bob, up.body.id, b.url);
		expect(after.status).toBe(200);
		expect(after.headers.get("content-type")).toBe("image/png");
		expect(new Uint8Array(await after.arrayBuffer())).toEqual(png(800, 600));
		expect(storedFiles(shared)).toEqual([up.body.id]);

		// A private room on process a: bob, not a member, gets on process b what a missing file gets.
		onA.send({ type: "create", ref: "c1", room: "plans", kind: "private" });
		await onA.expect("room", (f) => f.ref === "c1");
		await onA.join("plans");
		const secret = await upload(alice, "secret.png", png(300, 200));
		onA.send({ type: "send", room: "plans", id: "s1", text: "", files: [secret.body.id] });
		await onA.expect("message", (m) => m.id === "s1", 10_000);
		const refused = await download(bob, secret.body.id, b.url);
		const missing = await download(bob, "0".repeat(64), b.url);
		expect([refused.status, await refused.json()]).toEqual([missing.status, await missing.json()]);
		expect(refused.status).toBe(404);
		// Made a member on process a: process b lets him have it at his next request.
		onA.send({ type: "member_add", ref: "m1", room: "plans", name: "bob" });
		await onA.expect("room", (f) => f.ref === "m1");
		const allowed = await download(bob, secret.body.id, b.url);
		expect(allowed.status).toBe(200);
		expect(new Uint8Array(await allowed.arrayBuffer())).toEqual(png(300, 200));
		onA.close();
		onB.close();
	} finally {
		a.proc.kill();
		b.proc.kill();
		await Promise.all([a.proc.exited, b.proc.exited]);
	}
}, 90_000);
