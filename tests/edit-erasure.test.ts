// An edit or deletion of a long message does not hold the server: FTS5's secure-delete of its text (0.1–3 s
// for 4000 characters of random words) runs on the search thread (lib/search-worker.ts), not on the event loop.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { type Browser, invite, setupAdmin } from "./accounts-helpers.ts";
import { Client, fromSource, spawnServer, tempDir } from "./helpers.ts";

const wsUrl = (base: string) => `${base.replace(/^http/, "ws")}/ws`;

/** 4000 characters of random words: thousands of distinct trigrams, the dearest text to forget. */
const randomText = () =>
	Array.from({ length: 400 }, () => Math.random().toString(36).slice(2))
		.join(" ")
		.slice(0, 4000);

test("while a long message is edited and deleted, another person's ping is answered long before its text is erased", async () => {
	using dir = tempDir("hubbub-erasure-");
	const db = join(dir.path, "hubbub.db");
	// A bigger index makes each erasure dearer (its doclists are longer), so the comparison below is clear.
	const filler = new SqliteStore(db);
	for (let i = 0; i < 60; i++)
		await filler.append({ room: "general", from: "carol", text: randomText(), ts: Date.now() });
	await filler.search({ text: "zzzz", limit: 1 }, undefined);
	await filler.close();
	// Its own process: the test's pings are timed by a clock the server's event loop cannot hold.
	const s = await spawnServer(fromSource("--db", db, "--auth", "accounts"));
	try {
		const alice = await setupAdmin(s);
		const bob = await invite(s, alice, "bob", "bob password");
		const open = async (who: Browser) => {
			const c = await Client.connect(wsUrl(who.base), { headers: { ...who.wsHeaders(), origin: who.base } });
			await c.expect("welcome");
			await c.join("general");
			return c;
		};
		const a = await open(alice);
		const b = await open(bob);
		a.send({ type: "send", room: "general", id: "warm", text: "to be warmed up" });
		const warm = (await a.expect("message", (m) => m.id === "warm", 20_000)).seq;
		a.send({ type: "send", room: "general", id: "long", text: randomText() });
		const { seq } = await a.expect("message", (m) => m.id === "long", 20_000);
		// Indexed (a search first indexes what is waiting), so the edit has a text to forget; and the eraser
		// thread started (an edit of another message), so its start-up is not counted below.
		let searches = 0;
		const search = async (text: string) => {
			const ref = `s${++searches}`;
			a.send({ type: "search", ref, query: text, limit: 5 });
			return (await a.expect("search", (r) => r.ref === ref, 30_000)).hits.map((h) => h.seq);
		};
		await search("zzzz");
		a.send({ type: "edit", ref: "warm", room: "general", seq: warm, text: "warm-up" });
		await a.expect("update", (u) => u.ref === "warm", 30_000);
		expect(await search("warm-up")).toEqual([warm]);

		/**
		 * Bob pings every 50 ms from just before the request until its text is erased (a search waits for the
		 * eraser before it answers): the slowest answer, and how long the request and its erasure took. A ping past
		 * bob's rate (2/s, burst 20) is answered with an error instead of a pong: as good, both are the event
		 * loop's next turn.
		 */
		const measure = async (request: Parameters<Client["send"]>[0], ref: string, find: string) => {
			let done = false;
			let slowest = 0;
			const pinging = (async () => {
				while (!done) {
					const t = performance.now();
					b.send({ type: "ping" });
					await b.next((f) => f.type === "pong" || f.type === "error", 30_000, true);
					slowest = Math.max(slowest, performance.now() - t);
					await Bun.sleep(50);
				}
			})();
			await Bun.sleep(10);
			const started = performance.now();
			a.send(request);
			await a.expect("update", (u) => u.ref === ref, 30_000);
			const hits = await search(find);
			const erasedMs = performance.now() - started;
			done = true;
			await pinging;
			return { slowest, erasedMs, hits };
		};
		const text = randomText();
		const word = text.split(" ")[1] as string;
		const edit = await measure({ type: "edit", ref: "e", room: "general", seq, text }, "e", word);
		// Found by its new text once the eraser indexed it again.
		expect(edit.hits).toEqual([seq]);
		const del = await measure({ type: "delete", ref: "d", room: "general", seq }, "d", word);
		expect(del.hits).toEqual([]);
		// Compared, not absolute (a loaded machine slows both): with the erasure on the event loop a ping waits
		// for all of it, so the slowest ping would be about as long as the erasure itself.
		expect(Math.max(edit.slowest, del.slowest)).toBeLessThan((edit.erasedMs + del.erasedMs) / 3);
		a.close();
		b.close();
	} finally {
		s.proc.kill();
		await s.proc.exited;
	}
}, 120_000);
