// A hubbub database filled fast: the schema made by the store, then rows inserted in one transaction.
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { ROOT } from "./helpers.ts";

/** The text of message `seq` in `room`: varied enough that a swapped row shows. */
export function textOf(room: string, seq: number): string {
	return seq % 7 === 0
		? `line one of ${room}/${seq}\nline two ✓ <b>*not bold*</b>`
		: `message ${seq} in ${room}`;
}

/**
 * Fills the SQLite database `path` with `total` messages spread over `rooms`
 * rooms (seqs 1.. per room), every third one with a client id.
 */
export async function fillSqlite(path: string, total: number, rooms = 3): Promise<void> {
	await new SqliteStore(path).close();
	const db = new Database(path);
	const insert = db.query(
		"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
	);
	const seqs = new Array<number>(rooms).fill(0);
	db.transaction(() => {
		for (let i = 0; i < total; i++) {
			const r = i % rooms;
			const seq = ++(seqs[r] as number);
			const room = `room-${r}`;
			const sender = `User${i % 13}`;
			insert.run(
				room,
				seq,
				sender,
				sender.toLowerCase(),
				seq % 3 === 0 ? `id-${seq}` : null,
				textOf(room, seq),
				1_764_000_000_000 + i * 7,
			);
		}
	})();
	db.close();
}

/** Runs `hubbub ARGS…` from source, as an operator would at the shell, and collects what it printed. */
export async function hubbub(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
	const proc = Bun.spawn([process.execPath, join(ROOT, "server.ts"), ...args], {
		cwd: ROOT,
		stdout: "pipe",
		stderr: "pipe",
		env: { ...process.env, DATABASE_URL: "" },
	});
	const [stdout, stderr, status] = await Promise.all([
		new Response(proc.stdout).text(),
		new Response(proc.stderr).text(),
		proc.exited,
	]);
	return { status, stdout, stderr };
}

/** Every stored row, in order, with every column: what "equal databases" means in these tests. */
export function allRows(path: string): unknown[] {
	const db = new Database(path, { readonly: true });
	try {
		return db
			.query("SELECT room, seq, sender, sender_key, client_id, text, ts FROM messages ORDER BY room, seq")
			.all();
	} finally {
		db.close();
	}
}
