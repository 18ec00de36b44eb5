// Export a history as JSON Lines or Markdown, and import JSON Lines back, streaming with constant memory.
import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { z } from "zod";
import { Room } from "../protocol.ts";
import { type Archive, type ArchiveWriter, type Row, senderKey } from "./archive.ts";
import { CommandError } from "./command-error.ts";

export { openArchive } from "./archive.ts";

export const FORMATS = ["jsonl", "markdown"] as const;
export type Format = (typeof FORMATS)[number];

/**
 * One message, one line of an export: `{"room","seq","author","time","text","id"?}`.
 * `time` is ISO 8601 in UTC with milliseconds, exactly the stored time.
 * Later fields (edits, deletions) are added as optional keys.
 */
export const ExportedMessage = z.object({
	room: Room,
	seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
	author: z.string().min(1).max(256),
	time: z.iso.datetime({ offset: true }),
	text: z.string().max(1_000_000),
	id: z.string().min(1).max(256).optional(),
});
export type ExportedMessage = z.infer<typeof ExportedMessage>;

export function toExported(r: Row): ExportedMessage {
	const m: ExportedMessage = {
		room: r.room,
		seq: r.seq,
		author: r.sender,
		time: new Date(r.ts).toISOString(),
		text: r.text,
	};
	if (r.client_id !== null) m.id = r.client_id;
	return m;
}

function fromExported(m: ExportedMessage): Row {
	return {
		room: m.room,
		seq: m.seq,
		sender: m.author,
		client_id: m.id ?? null,
		text: m.text,
		ts: Date.parse(m.time),
	};
}

/** Text that reads as itself in Markdown: no HTML, emphasis, code or links made by accident. */
function escapeMarkdown(s: string): string {
	return s.replace(/[\\`*_[\]<>#|~]/g, "\\$&");
}

function markdown(r: Row, roomChanged: boolean): string {
	const when = new Date(r.ts)
		.toISOString()
		.replace("T", " ")
		.replace(/\.\d+Z$/, " UTC");
	const quoted = r.text
		.split("\n")
		.map((line) => (line === "" ? ">" : `> ${escapeMarkdown(line)}`))
		.join("\n");
	const head = roomChanged ? `## #${r.room}\n\n` : "";
	return `${head}**${escapeMarkdown(r.sender)}** · ${when} · #${r.seq}\n\n${quoted}\n\n`;
}

/** Buffered writes to a file descriptor through one reused buffer, so a long export allocates nothing per line. */
class Output {
	private readonly buffer = new Uint8Array(256 * 1024);
	private used = 0;
	private readonly encoder = new TextEncoder();
	constructor(private readonly fd: number) {}

	write(s: string): void {
		for (;;) {
			const { read, written } = this.encoder.encodeInto(s, this.buffer.subarray(this.used));
			this.used += written;
			if (read === s.length) return;
			s = s.slice(read);
			// A string larger than the whole buffer is written in pieces.
			this.flush();
		}
	}

	flush(): void {
		for (let off = 0; off < this.used; ) {
			try {
				off += writeSync(this.fd, this.buffer, off, this.used - off);
			} catch (e) {
				// A non-blocking pipe whose reader is behind: wait for it rather than drop output.
				if ((e as { code?: string }).code !== "EAGAIN") throw e;
				Bun.sleepSync(2);
			}
		}
		this.used = 0;
	}
}

/**
 * Writes the history of `room` (or every room) to `out` (or standard output)
 * and returns how many messages it wrote. A file is written under a temporary
 * name and renamed when complete.
 */
export async function exportHistory(
	archive: Archive,
	options: { room?: string; format: Format; out?: string },
): Promise<number> {
	if (options.room !== undefined && !Room.safeParse(options.room).success)
		throw new CommandError(`${JSON.stringify(options.room)} is not a room name`);
	// A regular file is written aside and renamed when whole; a device or pipe (/dev/stdout, a fifo) is written as it is.
	const direct = options.out === undefined || (existsSync(options.out) && !statSync(options.out).isFile());
	const tmp = direct ? undefined : `${options.out}.tmp-${process.pid}`;
	const fd = options.out === undefined ? 1 : openSync(tmp ?? options.out, "w");
	const out = new Output(fd);
	let n = 0;
	try {
		if (options.format === "markdown")
			out.write(`# hubbub export${options.room ? `: #${options.room}` : ""}\n\n`);
		let room: string | undefined;
		for await (const r of archive.rows(options.room)) {
			out.write(
				options.format === "jsonl" ? `${JSON.stringify(toExported(r))}\n` : markdown(r, r.room !== room),
			);
			room = r.room;
			n++;
		}
		out.flush();
		if (fd !== 1) closeSync(fd);
		if (tmp !== undefined) renameSync(tmp, options.out as string);
	} catch (e) {
		if (fd !== 1) {
			try {
				closeSync(fd);
			} catch {}
		}
		if (tmp !== undefined) rmSync(tmp, { force: true });
		if ((e as { code?: string }).code === "EPIPE")
			throw new CommandError("the output was closed before the export was complete", 1);
		throw e;
	}
	return n;
}

/** Lines of a file (or standard input for "-"), read a chunk at a time. */
async function* lines(file: string): AsyncIterable<string> {
	if (file !== "-" && !existsSync(file)) throw new CommandError(`no file at ${JSON.stringify(file)}`);
	const stream = file === "-" ? Bun.stdin.stream() : Bun.file(file).stream();
	const decoder = new TextDecoder();
	let rest = "";
	for await (const chunk of stream) {
		const text = rest + decoder.decode(chunk, { stream: true });
		let start = 0;
		for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
			yield text.slice(start, nl);
			start = nl + 1;
		}
		rest = text.slice(start);
	}
	rest += decoder.decode();
	if (rest !== "") yield rest;
}

export interface Imported {
	inserted: number;
	skipped: number;
	merged: number;
	rooms: number;
}

interface RoomState {
	/** keep: rows keep their seqs; merge: rows are appended after what the room held. */
	mode: "keep" | "merge";
	last: number;
}

const BATCH = 1000;

function same(a: Row, b: Row): boolean {
	return (
		a.sender === b.sender &&
		a.text === b.text &&
		a.ts === b.ts &&
		(a.client_id ?? null) === (b.client_id ?? null)
	);
}

/**
 * Loads a JSON Lines export into `archive`, in one transaction (all or nothing).
 * A room that is empty, or already holds the file's rows (an earlier import),
 * gets the rows with their own seqs and ids; rows already there are skipped,
 * so importing again changes nothing. A room that holds other messages is
 * refused unless `merge`: then the file's messages are appended with new seqs,
 * skipping those whose (author, id) the room already holds.
 */
export async function importHistory(
	archive: Archive,
	file: string,
	options: { merge: boolean },
): Promise<Imported> {
	return archive.transaction(async (w) => {
		const rooms = new Map<string, RoomState>();
		const stats: Imported = { inserted: 0, skipped: 0, merged: 0, rooms: 0 };
		let batch: { line: number; row: Row }[] = [];
		const flush = async () => {
			const byRoom = new Map<string, { line: number; row: Row }[]>();
			for (const item of batch) {
				const list = byRoom.get(item.row.room) ?? [];
				list.push(item);
				byRoom.set(item.row.room, list);
			}
			batch = [];
			for (const [room, items] of byRoom) {
				const state =
					rooms.get(room) ??
					(await firstSight(w, room, items[0] as { line: number; row: Row }, options.merge));
				rooms.set(room, state);
				await (state.mode === "keep" ? keepSeqs(w, state, items, stats) : append(w, state, items, stats));
			}
		};
		let n = 0;
		for await (const text of lines(file)) {
			n++;
			if (text.trim() === "") continue;
			let parsed: ReturnType<typeof ExportedMessage.safeParse>;
			try {
				parsed = ExportedMessage.safeParse(JSON.parse(text));
			} catch {
				throw new CommandError(`line ${n} of ${JSON.stringify(file)} is not JSON`);
			}
			if (!parsed.success) {
				const issue = parsed.error.issues[0];
				throw new CommandError(
					`line ${n} of ${JSON.stringify(file)} is not an exported message: ${issue?.path.join(".") || "line"} ${issue?.message}`,
				);
			}
			batch.push({ line: n, row: fromExported(parsed.data) });
			if (batch.length >= BATCH) await flush();
		}
		await flush();
		for (const [room, state] of rooms) await w.finishRoom(room, state.last);
		stats.rooms = rooms.size;
		return stats;
	});
}

/** Decides how a room takes the file's rows, from what it holds when its first row arrives. */
async function firstSight(
	w: ArchiveWriter,
	room: string,
	first: { line: number; row: Row },
	merge: boolean,
): Promise<RoomState> {
	const { stored, given } = await w.lastSeq(room);
	// A room that never gave a seq takes the file's; one whose messages retention removed has given its seqs already.
	if (given === 0) return { mode: "keep", last: 0 };
	const there = (await w.atSeqs(room, [first.row.seq])).get(first.row.seq);
	if (there && same(there, first.row)) return { mode: "keep", last: given };
	// Appended after every seq the room ever gave, so none is given twice.
	if (merge) return { mode: "merge", last: given };
	const holds =
		stored > 0
			? `already holds messages (up to seq ${stored})`
			: `had messages (up to seq ${given}, since removed)`;
	throw new CommandError(
		`#${room} ${holds} that are not those of this file; nothing was imported (--merge appends the file's messages after them, with new seqs)`,
	);
}

async function keepSeqs(
	w: ArchiveWriter,
	state: RoomState,
	items: { line: number; row: Row }[],
	stats: Imported,
) {
	const there = await w.atSeqs(
		items[0]?.row.room as string,
		items.map((i) => i.row.seq),
	);
	const fresh: Row[] = [];
	for (const { line, row } of items) {
		const stored = there.get(row.seq);
		if (stored && !same(stored, row))
			throw new CommandError(
				`line ${line}: #${row.room} already holds another message as seq ${row.seq}; nothing was imported`,
			);
		if (stored) {
			stats.skipped++;
			continue;
		}
		fresh.push(row);
		there.set(row.seq, row);
		state.last = Math.max(state.last, row.seq);
	}
	try {
		await w.insert(fresh);
	} catch (e) {
		throw new CommandError(
			`#${items[0]?.row.room}: ${(e as Error).message} (an id used twice by one author?); nothing was imported`,
		);
	}
	stats.inserted += fresh.length;
}

async function append(
	w: ArchiveWriter,
	state: RoomState,
	items: { line: number; row: Row }[],
	stats: Imported,
) {
	const room = items[0]?.row.room as string;
	const keys = items.flatMap(({ row }) =>
		row.client_id === null ? [] : [{ senderKey: senderKey(row.sender), id: row.client_id }],
	);
	const known = await w.knownIds(room, keys);
	const fresh: Row[] = [];
	for (const { row } of items) {
		const key = row.client_id === null ? undefined : `${senderKey(row.sender)}\n${row.client_id}`;
		if (key !== undefined && known.has(key)) {
			stats.skipped++;
			continue;
		}
		if (key !== undefined) known.add(key);
		fresh.push({ ...row, seq: ++state.last });
	}
	await w.insert(fresh);
	stats.merged += fresh.length;
	stats.inserted += fresh.length;
}
