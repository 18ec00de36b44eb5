// The files scenario: what storing uploads costs. Uploads and downloads N distinct 1 MiB files through a
// hubbub process over HTTP (SQLite with the folder beside it; PostgreSQL with a shared --upload-dir), and
// compares the folder with keeping the same bytes as BLOBs in SQLite (the other choice), on disk and in time.
import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPostgres } from "../tests/engines.ts";
import { fromSource, spawnServer } from "../tests/helpers.ts";

const MiB = 1024 ** 2;

export interface FilesRun {
	store: string;
	files: number;
	/** MiB/s, one request at a time and four at once. */
	uploadSerial: number;
	uploadParallel: number;
	download: number;
	/** Bytes the stored files take on disk (allocated blocks), and their content. */
	diskBytes: number;
	contentBytes: number;
}

export interface FilesBench {
	http: FilesRun[];
	/** Storage alone, no HTTP: the folder as hubbub keeps it, against SQLite BLOB rows. */
	storage: { store: string; writeMiBs: number; readMiBs: number; diskBytes: number }[];
}

/** Allocated bytes of every file under `dir` (what `du` counts). */
function diskUsage(dir: string): number {
	let total = 0;
	for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
		if (!entry.isFile()) continue;
		total += statSync(join(entry.parentPath, entry.name)).blocks * 512;
	}
	return total;
}

function randomFiles(n: number, size: number): Uint8Array<ArrayBuffer>[] {
	return Array.from(
		{ length: n },
		() => crypto.getRandomValues(new Uint8Array(size)) as Uint8Array<ArrayBuffer>,
	);
}

/** Runs `work` on every item, `concurrency` at a time; resolves with seconds taken. */
async function timed<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<number> {
	const t0 = performance.now();
	let next = 0;
	await Promise.all(
		Array.from({ length: concurrency }, async () => {
			while (next < items.length) await work(items[next++] as T);
		}),
	);
	return (performance.now() - t0) / 1000;
}

async function throughHttp(store: string, flags: string[], folder: string, files: Uint8Array<ArrayBuffer>[]) {
	const server = await spawnServer(fromSource("--auth", "accounts", "--upload-dir", folder, ...flags));
	try {
		const base = server.url;
		const setup = await fetch(`${base}/api/auth/setup`, {
			method: "POST",
			headers: { origin: base, "content-type": "application/json" },
			body: JSON.stringify({ name: "bench", password: "bench password" }),
		});
		const cookie = /^hubbub_session=[^;]*/.exec(setup.headers.get("set-cookie") ?? "")?.[0] ?? "";
		const ids: string[] = [];
		const put = async (bytes: Uint8Array<ArrayBuffer>) => {
			const r = await fetch(`${base}/api/uploads?name=f.bin`, {
				method: "POST",
				headers: { origin: base, cookie },
				body: bytes,
			});
			if (r.status !== 201) throw new Error(`upload answered ${r.status}: ${await r.text()}`);
			ids.push(((await r.json()) as { id: string }).id);
		};
		const half = Math.floor(files.length / 2);
		const serial = await timed(files.slice(0, half), 1, put);
		const parallel = await timed(files.slice(half), 4, put);
		const download = await timed(ids, 4, async (id) => {
			const r = await fetch(`${base}/api/files/${id}`, { headers: { cookie } });
			if (r.status !== 200) throw new Error(`download answered ${r.status}`);
			await r.arrayBuffer();
		});
		const mib = (n: number) => (n * (files[0]?.length ?? 0)) / MiB;
		return {
			store,
			files: files.length,
			uploadSerial: mib(half) / serial,
			uploadParallel: mib(files.length - half) / parallel,
			download: mib(ids.length) / download,
			diskBytes: diskUsage(folder),
			contentBytes: files.reduce((n, f) => n + f.length, 0),
		} satisfies FilesRun;
	} finally {
		server.proc.kill();
		await server.proc.exited;
	}
}

/** The same bytes written as files (temp + fsync + rename, as lib/attachments.ts does) and as SQLite BLOBs. */
async function storageOnly(dir: string, files: Uint8Array<ArrayBuffer>[]): Promise<FilesBench["storage"]> {
	const { AttachmentStore } = await import("../lib/attachments.ts");
	const folder = join(dir, "folder");
	const blobs = new AttachmentStore(folder, 64 * MiB);
	const ids: string[] = [];
	const w0 = performance.now();
	for (const f of files) ids.push((await blobs.put(new Response(f).body as ReadableStream<Uint8Array>)).id);
	const w1 = performance.now();
	for (const id of ids) await Bun.file(blobs.path(id)).arrayBuffer();
	const w2 = performance.now();
	const total = files.reduce((n, f) => n + f.length, 0) / MiB;

	mkdirSync(join(dir, "sqlite"));
	const path = join(dir, "sqlite", "blobs.db");
	const db = new Database(path);
	db.run("PRAGMA journal_mode = WAL");
	db.run("PRAGMA synchronous = FULL");
	db.run("CREATE TABLE blobs (id TEXT PRIMARY KEY, data BLOB NOT NULL)");
	const insert = db.query("INSERT INTO blobs (id, data) VALUES (?, ?)");
	const s0 = performance.now();
	files.forEach((f, i) => {
		insert.run(String(i), f);
	});
	const s1 = performance.now();
	const read = db.query("SELECT data FROM blobs WHERE id = ?");
	for (let i = 0; i < files.length; i++) read.get(String(i));
	const s2 = performance.now();
	db.run("PRAGMA wal_checkpoint(TRUNCATE)");
	db.close();
	return [
		{
			store: "folder (hubbub)",
			writeMiBs: total / ((w1 - w0) / 1000),
			readMiBs: total / ((w2 - w1) / 1000),
			diskBytes: diskUsage(folder),
		},
		{
			store: "SQLite BLOBs",
			writeMiBs: total / ((s1 - s0) / 1000),
			readMiBs: total / ((s2 - s1) / 1000),
			diskBytes: diskUsage(join(dir, "sqlite")),
		},
	];
}

export async function runFilesBench(quick: boolean, log: (s: string) => void): Promise<FilesBench> {
	const n = quick ? 10 : 100;
	const dir = mkdtempSync(join(tmpdir(), "hubbub-bench-files-"));
	const pg = await startPostgres();
	try {
		const files = randomFiles(n, MiB);
		log("sqlite ");
		const sqlite = await throughHttp(
			"SQLite + folder beside it",
			["--db", join(dir, "h.db")],
			join(dir, "h.db.files"),
			files,
		);
		log("postgres ");
		const postgres = await throughHttp(
			"PostgreSQL + shared --upload-dir",
			["--db", await pg.database()],
			join(dir, "shared-files"),
			randomFiles(n, MiB),
		);
		log("storage ");
		const storage = await storageOnly(join(dir, "storage"), randomFiles(n, MiB));
		return { http: [sqlite, postgres], storage };
	} finally {
		pg[Symbol.dispose]();
		rmSync(dir, { recursive: true, force: true });
	}
}

if (import.meta.main) {
	const r = await runFilesBench(process.argv.includes("--quick"), (s) => process.stderr.write(s));
	console.log(JSON.stringify(r, null, 1));
}
