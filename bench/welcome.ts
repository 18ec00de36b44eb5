// What one `welcome` costs the database for an account in many rooms (RoomStore.views: every room of
// the account with its member count, last seq, unread and mention counts), on SQLite.
// Run: bun bench/welcome.ts [rooms] [messages per room] [members per room] [reps]
// (default 500 rooms — LIMITS.membershipsMax — 100 messages each, 20 members each, 20 reps; under a minute).
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccountStore } from "../lib/account-store.ts";
import { nameKey } from "../lib/names.ts";
import { RoomStore } from "../lib/room-store.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";

const [rooms = 500, perRoom = 100, members = 20, reps = 20] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), "hubbub-welcome-"));
const db = join(dir, "hubbub.db");
try {
	await new SqliteStore(db).close();
	await (await AccountStore.open(db)).close();
	await (await RoomStore.open(db)).close();
	const sqlite = new Database(db);
	const now = Date.now();
	sqlite.transaction(() => {
		const account = sqlite.query(
			"INSERT INTO hubbub_accounts (id, name, name_key, password_hash, role, bot, active, created) VALUES (?, ?, ?, NULL, 'member', 0, 1, ?)",
		);
		for (let i = 0; i < members; i++) account.run(`a${i}`, `p${i}`, nameKey(`p${i}`), now);
		const room = sqlite.query(
			"INSERT INTO hubbub_room_info (room, kind, title, topic, creator, created, archived) VALUES (?, ?, NULL, '', NULL, ?, NULL)",
		);
		const member = sqlite.query(
			"INSERT INTO hubbub_room_members (room, account_id, joined, last_read) VALUES (?, ?, ?, 0)",
		);
		const message = sqlite.query(
			"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts) VALUES (?, ?, ?, ?, NULL, ?, ?)",
		);
		const mention = sqlite.query("INSERT INTO hubbub_mentions (account_id, room, seq) VALUES (?, ?, ?)");
		for (let r = 0; r < rooms; r++) {
			const id = `room${r}`;
			room.run(id, r % 3 === 0 ? "private" : "open", now);
			for (let m = 0; m < members; m++) member.run(id, `a${m}`, now);
			for (let s = 1; s <= perRoom; s++) {
				message.run(id, s, "p1", "p1", `message ${s} in ${id} @p0`, now);
				if (s % 10 === 0) mention.run("a0", id, s);
			}
		}
	})();
	sqlite.close();
	const store = await RoomStore.open(db);
	let views = await store.views("a0", "p0");
	const times: number[] = [];
	const peopleTimes: number[] = [];
	for (let i = 0; i < reps; i++) {
		let t = performance.now();
		views = await store.views("a0", "p0");
		times.push(performance.now() - t);
		t = performance.now();
		await store.peopleOf("a0");
		peopleTimes.push(performance.now() - t);
	}
	const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]?.toFixed(1);
	const unread = views.reduce((n, v) => n + v.unread, 0);
	const mentions = views.reduce((n, v) => n + v.mentions, 0);
	console.log(
		`${views.length} rooms × ${perRoom} messages × ${members} members: views median ${median(times)} ms (max ${Math.max(...times).toFixed(1)}), peopleOf median ${median(peopleTimes)} ms (unread in all ${unread}, mentions ${mentions})`,
	);
	await store.close();
} finally {
	rmSync(dir, { recursive: true, force: true });
}
