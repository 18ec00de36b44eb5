// The search scenario: fills a SQLite store with chat-like messages (words, code, Japanese), then times
// store.search (the path the `search` frame takes) and measures what the index costs on disk and on insert.
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import type { SearchQuery } from "../lib/search.ts";
import { nextDocs, openIndex, SqliteIndexer } from "../lib/search-sqlite.ts";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store-postgres.ts";
import { SqliteStore } from "../lib/store-sqlite.ts";
import { startPostgres } from "../tests/engines.ts";

export interface SearchBench {
	store: "sqlite" | "postgres";
	messages: number;
	fillSeconds: number;
	/** Database bytes (SQLite: the database file and its search index file), and the part search takes. */
	dbBytes: number;
	indexBytes: number;
	medianMs: number;
	p99Ms: number;
	perQuery: { query: string; medianMs: number; hits: number }[];
	/** Seconds the background indexer took to index the fill. */
	indexSeconds: number;
	/** µs per message: committed in batches of 20 with the search trigger and without it, and indexed afterwards. */
	insertUs: { commitWithIndex: number; commitWithout: number; indexing: number };
}

/** A tiny deterministic generator, so every run searches the same history. */
function rng(seed: number): () => number {
	let s = seed >>> 0;
	return () => {
		s = (s + 0x6d2b79f5) >>> 0;
		let t = s;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

const SYLLABLES = [
	"ka",
	"lo",
	"mi",
	"ter",
	"pan",
	"dro",
	"vel",
	"su",
	"ri",
	"qua",
	"nes",
	"bo",
	"tin",
	"ga",
	"ze",
];
const JAPANESE = [
	"デプロイ",
	"本番環境",
	"確認",
	"お願いします",
	"完了",
	"障害",
	"対応中",
	"ログ",
	"再起動",
	"設定",
];
const CODE = [
	"ERR_SOCKET_TIMEOUT",
	"--max-payload",
	"ECONNRESET",
	"npm run build",
	"SIGTERM",
	"exit code 137",
];

/** A vocabulary of made-up words; picking with a skew makes some words common and most rare, as in chat. */
function vocabulary(random: () => number, size: number): string[] {
	const words = new Set<string>();
	while (words.size < size) {
		const n = 1 + Math.floor(random() * 4);
		let w = "";
		for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
		words.add(w);
	}
	return [...words];
}

function messageText(random: () => number, words: string[]): string {
	const r = random();
	const pick = () => words[Math.floor(random() ** 3 * words.length)] as string;
	const n = 3 + Math.floor(random() * 12);
	const parts = Array.from({ length: n }, pick);
	if (r < 0.05) parts.splice(1, 0, CODE[Math.floor(random() * CODE.length)] as string);
	if (r > 0.95)
		return `${JAPANESE[Math.floor(random() * JAPANESE.length)]}${JAPANESE[Math.floor(random() * JAPANESE.length)]}しました`;
	return parts.join(" ");
}

function fileBytes(path: string): number {
	let total = 0;
	for (const p of [path, `${path}-wal`])
		try {
			total += statSync(p).size;
		} catch {}
	return total;
}

/**
 * µs per message to commit `texts` in transactions of 20 (a busy second's batch), then to index them.
 * With an indexer, each message is given its id for search as the store gives it (nextDocs).
 */
function insertCost(
	db: Database,
	room: string,
	texts: string[],
	index?: SqliteIndexer,
): { commit: number; index: number } {
	const insert = db.query(
		"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts, doc) VALUES (?, ?, 'bench', 'bench', NULL, ?, ?, ?)",
	);
	const t0 = performance.now();
	for (let i = 0; i < texts.length; i += 20) {
		db.transaction(() => {
			const end = Math.min(i + 20, texts.length);
			let doc = index ? nextDocs(db, end - i) : null;
			for (let j = i; j < end; j++)
				insert.run(room, j + 1, texts[j] as string, j, doc === null ? null : doc++);
		})();
	}
	const t1 = performance.now();
	if (index) while (index.catchUp() > 0);
	const t2 = performance.now();
	return { commit: ((t1 - t0) * 1000) / texts.length, index: ((t2 - t1) * 1000) / texts.length };
}

export async function runSearchBench(quick: boolean, log: (s: string) => void): Promise<SearchBench> {
	const total = quick ? 20_000 : 1_000_000;
	const dir = mkdtempSync(join(tmpdir(), "hubbub-bench-search-"));
	const path = join(dir, "search.db");
	try {
		const random = rng(42);
		const words = vocabulary(random, 20_000);
		// Schema (with the search tables) from the store itself; the fill goes straight in, numbered as the store does.
		await new SqliteStore(path).close();
		const db = new Database(path);
		db.run("PRAGMA synchronous = OFF");
		// The index file beside the database (lib/search-sqlite.ts), as the search thread attaches it.
		openIndex(db, path);
		const insert = db.query(
			"INSERT INTO messages (room, seq, sender, sender_key, client_id, text, ts, doc) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
		);
		const seqs = new Map<string, number>();
		const start = Date.UTC(2026, 7, 1);
		const t0 = performance.now();
		for (let i = 0; i < total; i += 10_000) {
			db.transaction(() => {
				const end = Math.min(i + 10_000, total);
				let doc = nextDocs(db, end - i);
				for (let j = i; j < end; j++) {
					const room = `room-${Math.floor(random() ** 2 * 100)}`;
					const seq = (seqs.get(room) ?? 0) + 1;
					seqs.set(room, seq);
					const sender = `user${Math.floor(random() * 300)}`;
					insert.run(room, seq, sender, sender, messageText(random, words), start + j * 5000, doc++);
				}
			})();
			if (i % 200_000 === 0 && i > 0) log(`${i / 1000}k `);
		}
		const fillSeconds = (performance.now() - t0) / 1000;
		const indexer = new SqliteIndexer(db, db);
		const t1 = performance.now();
		while (indexer.catchUp() > 0);
		const indexSeconds = (performance.now() - t1) / 1000;
		db.run("PRAGMA main.wal_checkpoint(TRUNCATE)");
		db.run("PRAGMA idx.wal_checkpoint(TRUNCATE)");
		const dbBytes = fileBytes(path) + fileBytes(`${path}-search`);
		const pageSize = (db.query("PRAGMA page_size").get() as { page_size: number }).page_size;
		const indexPages = (
			db
				.query(
					"SELECT sum(pageno) AS n FROM (SELECT count(*) AS pageno FROM dbstat WHERE name LIKE 'search%' OR name = 'messages_doc')",
				)
				.get() as { n: number | null }
		).n;
		// The index file, and the message ids and erasure queue the database keeps for it.
		const indexBytes = (indexPages ?? 0) * pageSize + fileBytes(`${path}-search`);

		// Insert cost: the same texts into a fresh room, with the messages' ids for search, then into another
		// without them (nor their index).
		const sample = Array.from({ length: quick ? 2000 : 20_000 }, () => messageText(random, words));
		// Warm both paths first; then without search, then with it (and the indexer after it).
		insertCost(db, "bench-warm", sample.slice(0, 1000), indexer);
		db.run("DROP INDEX messages_doc");
		const without = insertCost(db, "bench-without", sample);
		db.run("DELETE FROM messages WHERE room = 'bench-without'");
		db.run("CREATE INDEX messages_doc ON messages (doc)");
		const withIndex = insertCost(db, "bench-with", sample, indexer);
		db.run("DELETE FROM messages WHERE room IN ('bench-warm', 'bench-with', 'bench-without')");
		db.close();

		const store = new SqliteStore(path);
		const { all, perQuery } = await timeQueries(store, words, start, total, quick);
		await store.close();
		return {
			store: "sqlite",
			messages: total,
			fillSeconds,
			dbBytes,
			indexBytes,
			medianMs: quantile(all, 0.5),
			p99Ms: quantile(all, 0.99),
			perQuery,
			indexSeconds,
			insertUs: {
				commitWithIndex: withIndex.commit,
				commitWithout: without.commit,
				indexing: withIndex.index,
			},
		};
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

/** Times store.search for a fixed set of queries (common, rare, phrases, code, Japanese, filters, no hit). */
async function timeQueries(
	store: Store,
	words: string[],
	start: number,
	total: number,
	quick: boolean,
): Promise<{ all: number[]; perQuery: SearchBench["perQuery"] }> {
	const common = words[0] as string;
	const rare = words[words.length - 1] as string;
	const queries: [string, Partial<SearchQuery>][] = [
		[common, {}],
		[rare, {}],
		[`${words[1]} ${words[2]}`, {}],
		[`"${words[3]} ${words[4]}"`, {}],
		["ERR_SOCKET", {}],
		["--max-payload", {}],
		["デプロイ", {}],
		["確認", {}],
		[common, { room: "room-50" }],
		[common, { from: "user7" }],
		[words[5] as string, { after: start + total * 2500 }],
		["zzqx", {}],
	];
	const rounds = quick ? 3 : 15;
	const all: number[] = [];
	const perQuery: SearchBench["perQuery"] = [];
	for (const [text, filters] of queries) {
		const times: number[] = [];
		let hits = 0;
		for (let r = 0; r < rounds; r++) {
			const t = performance.now();
			const page = await store.search({ text, limit: 20, ...filters }, undefined);
			times.push(performance.now() - t);
			hits = page.hits.length;
		}
		all.push(...times);
		const label = Object.keys(filters).length ? `${text} (${Object.keys(filters).join(", ")})` : text;
		perQuery.push({ query: label, medianMs: quantile(times, 0.5), hits });
	}
	return { all, perQuery };
}

/**
 * The same history in a PostgreSQL store (a test cluster: fsync off, so the
 * insert figures leave out the disk flush): filled without the trigram index,
 * which is then built (indexSeconds); searched through PostgresStore.search;
 * then the per-message cost of commits of 20 with the index and without.
 */
export async function runPostgresSearchBench(
	quick: boolean,
	log: (s: string) => void,
	total = quick ? 20_000 : 1_000_000,
): Promise<SearchBench> {
	const pg = await startPostgres();
	try {
		const url = await pg.database();
		await (await PostgresStore.open(url)).close();
		const sql = new SQL({ url, max: 2 });
		const random = rng(42);
		const words = vocabulary(random, 20_000);
		await sql`DROP INDEX hubbub_messages_trgm`;
		const seqs = new Map<string, number>();
		const start = Date.UTC(2026, 7, 1);
		const t0 = performance.now();
		// 5000 rows of 7 values a statement stays under PostgreSQL's 65,535 parameters.
		for (let i = 0; i < total; i += 5000) {
			const rows = [];
			for (let j = i; j < Math.min(i + 5000, total); j++) {
				const room = `room-${Math.floor(random() ** 2 * 100)}`;
				const seq = (seqs.get(room) ?? 0) + 1;
				seqs.set(room, seq);
				const sender = `user${Math.floor(random() * 300)}`;
				rows.push({
					room,
					seq,
					sender,
					sender_key: sender,
					client_id: null,
					text: messageText(random, words),
					ts: start + j * 5000,
				});
			}
			await sql`INSERT INTO hubbub_messages ${sql(rows)}`;
			if (i % 200_000 === 0 && i > 0) log(`${i / 1000}k `);
		}
		for (const [room, last] of seqs)
			await sql`INSERT INTO hubbub_rooms (room, last_seq) VALUES (${room}, ${last})`;
		const fillSeconds = (performance.now() - t0) / 1000;
		const t1 = performance.now();
		await sql`CREATE INDEX hubbub_messages_trgm ON hubbub_messages USING gin (text gin_trgm_ops)`;
		await sql`VACUUM ANALYZE hubbub_messages`;
		const indexSeconds = (performance.now() - t1) / 1000;
		const [size] = await sql`SELECT pg_database_size(current_database()) AS db,
			pg_relation_size('hubbub_messages_trgm') AS idx`;
		const store = await PostgresStore.open(url);
		const { all, perQuery } = await timeQueries(store, words, start, total, quick);
		await store.close();

		// Insert cost: commits of 20 rows into fresh rooms, with the trigram index and then without it.
		const sample = Array.from({ length: quick ? 2000 : 20_000 }, () => messageText(random, words));
		const commit = async (room: string) => {
			const c0 = performance.now();
			for (let i = 0; i < sample.length; i += 20) {
				const rows = sample.slice(i, i + 20).map((text, k) => ({
					room,
					seq: i + k + 1,
					sender: "bench",
					sender_key: "bench",
					client_id: null,
					text,
					ts: start + i + k,
				}));
				await sql.begin((tx) => tx`INSERT INTO hubbub_messages ${tx(rows)}`);
			}
			return ((performance.now() - c0) * 1000) / sample.length;
		};
		await commit("bench-warm");
		const commitWithIndex = await commit("bench-with");
		await sql`DROP INDEX hubbub_messages_trgm`;
		const commitWithout = await commit("bench-without");
		await sql.close();
		return {
			store: "postgres",
			messages: total,
			fillSeconds,
			dbBytes: Number(size?.db),
			indexBytes: Number(size?.idx),
			medianMs: quantile(all, 0.5),
			p99Ms: quantile(all, 0.99),
			perQuery,
			indexSeconds,
			insertUs: { commitWithIndex, commitWithout, indexing: 0 },
		};
	} finally {
		pg[Symbol.dispose]();
	}
}

function quantile(values: number[], q: number): number {
	const sorted = [...values].sort((a, b) => a - b);
	return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

if (import.meta.main) {
	const quick = process.argv.includes("--quick");
	const count = process.argv.find((a) => a.startsWith("--messages="))?.slice(11);
	const log = (s: string) => process.stderr.write(s);
	const r = process.argv.includes("--postgres")
		? await runPostgresSearchBench(quick, log, count ? Number(count) : undefined)
		: await runSearchBench(quick, log);
	console.log(JSON.stringify(r, null, 1));
}
