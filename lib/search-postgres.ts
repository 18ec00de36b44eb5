// Search in the PostgreSQL store: a pg_trgm GIN index on the text answers ILIKE '%term%' for every term, like SQLite's trigram index.
import type { SQL } from "bun";
import { BadCursor, type Candidate, type SearchPlan } from "./search.ts";
import type { StoredRow } from "./store.ts";

/**
 * Schema 3. pg_trgm ships with Debian's postgresql-15 (contrib is part of the
 * server package) and is a trusted extension: a database owner may create it.
 * The index is on the table itself, so inserts, retention, deletes and edits
 * keep it right with no trigger.
 */
export async function migrateSearch(tx: SQL): Promise<void> {
	await tx`CREATE EXTENSION IF NOT EXISTS pg_trgm`;
	await tx`CREATE INDEX hubbub_messages_trgm ON hubbub_messages USING gin (text gin_trgm_ops)`;
}

function likePattern(term: string): string {
	return `%${term.replace(/[\\%_]/g, "\\$&")}%`;
}

/**
 * Reads candidates for lib/search.ts's runSearch, newest first by ts (then
 * room, seq): every term as a case-insensitive substring; the matcher then
 * narrows 1–2 character terms to word starts, as SQLite's word index does.
 */
export async function postgresCandidates(
	sql: SQL,
	plan: SearchPlan,
	cursor: string | undefined,
	n: number,
): Promise<Candidate[]> {
	const params: unknown[] = [];
	const param = (v: unknown) => {
		params.push(v);
		return `$${params.length}`;
	};
	const where = [...plan.long, ...plan.short].map((t) => `text ILIKE ${param(likePattern(t))}`);
	if (plan.room !== undefined) where.push(`room = ${param(plan.room)}`);
	// Inside the query, before its limit (see SearchPlan.rooms).
	if (plan.rooms !== undefined) where.push(`room = ANY(${param(plan.rooms)}::text[])`);
	if (plan.senderKey !== undefined) where.push(`sender_key = ${param(plan.senderKey)}`);
	where.push(`ts < ${param(plan.before)}::bigint`, `ts >= ${param(plan.after)}::bigint`);
	if (cursor !== undefined) {
		const m = /^p(\d{1,16})\.(\d{1,16})\.([a-z0-9_-]{1,32})$/.exec(cursor);
		if (!m) throw new BadCursor();
		where.push(`(ts, room, seq) < (${param(m[1])}::bigint, ${param(m[3])}, ${param(m[2])}::int)`);
	}
	const rows = (await sql.unsafe(
		`SELECT room, seq, sender, client_id, text, ts FROM hubbub_messages
		WHERE ${where.join(" AND ")} ORDER BY ts DESC, room DESC, seq DESC LIMIT ${param(n)}`,
		params,
	)) as StoredRow[];
	return rows.map((r) => ({ row: r, pos: `p${r.ts}.${r.seq}.${r.room}` }));
}
