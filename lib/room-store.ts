// Where rooms, their members, read positions and mentions are kept (protocol 1.2, --auth accounts):
// the same database as the messages and accounts (SQLite file or PostgreSQL), through Bun.SQL, one code path for both.
import type { SQL } from "bun";
import { type Engine, isUniqueViolation, openTables } from "./sql-tables.ts";

/**
 * The room tables carry their own schema version (key 'schema' in
 * hubbub_room_meta), so they migrate independently of the message and
 * account tables. Open them after both (they read the messages table for
 * counts and the accounts table for names).
 */
const SCHEMA_VERSION = 2;
/** pg_advisory_xact_lock key: one migration at a time when several processes start together. */
const MIGRATION_LOCK = 4_817_232;
/**
 * Unread and mention counts stop here: counting is bounded by it however far
 * behind a reader is, so a `welcome` reads at most this many rows per room
 * for each (and an account is in at most LIMITS.membershipsMax rooms).
 */
export const UNREAD_CAP = 100;
/** The room every account joins when it is first seen, and that always exists. */
export const FIRST_ROOM = "general";

export type RoomKind = "open" | "private" | "direct";

export interface RoomRow {
	room: string;
	kind: RoomKind;
	/** Null: show the room id (direct rooms never have one). */
	title: string | null;
	topic: string;
	/** Account id of its creator; null for rooms from before protocol 1.2 and direct rooms. */
	creator: string | null;
	created: number;
	archived: number | null;
}

/** One room as one member sees it, with the counts read from the store. */
export interface MemberView extends RoomRow {
	creatorName: string | null;
	members: number;
	lastSeq: number;
	lastRead: number;
	unread: number;
	mentions: number;
}

export interface RoomEvent {
	seq: number;
	room: string;
	accountId: string | null;
	kind: string;
}

/** Per-account bounds checked when a room is made (lib/rooms.ts ROOM_QUOTAS). */
export interface StartQuota {
	/** The account starting the room. */
	starter: string;
	/** What it starts: "room" (create) or "direct". */
	kind: "room" | "direct";
	/** Rooms of this kind the starter started after `since` (ms) count against `perWindow`. */
	since: number;
	perWindow: number;
	/** Rooms (not direct) the starter made in all, at most; undefined: no bound (admins). */
	total?: number;
	/** Rooms each member may be in. */
	memberCap: number;
}

type Row = Record<string, unknown>;
const num = (v: unknown) => Number(v ?? 0);

function roomOf(r: Row): RoomRow {
	return {
		room: String(r.room),
		kind: r.kind === "private" ? "private" : r.kind === "direct" ? "direct" : "open",
		title: r.title === null || r.title === undefined ? null : String(r.title),
		topic: String(r.topic ?? ""),
		creator: r.creator === null || r.creator === undefined ? null : String(r.creator),
		created: num(r.created),
		archived: r.archived === null || r.archived === undefined ? null : num(r.archived),
	};
}

/** Rows only: who may do what is decided in lib/rooms.ts. */
export class RoomStore {
	/** The message store's tables, which differ by engine (lib/store-sqlite.ts, lib/store-postgres.ts). */
	private readonly messages: string;
	/** SQL for a room's last seq, with the room as $1 (retention may have removed every message). */
	private readonly lastSeqSql: string;
	/** SQL true for a deleted message `g` (a tombstone, see Store.remove): it counts as neither unread nor a mention. */
	private readonly deletedSql: string;

	private constructor(
		private readonly sql: SQL,
		readonly engine: Engine,
	) {
		const pg = engine === "postgres";
		this.messages = pg ? "hubbub_messages" : "messages";
		this.deletedSql = pg ? "g.deleted" : "g.deleted <> 0";
		this.lastSeqSql = pg
			? "COALESCE((SELECT last_seq FROM hubbub_rooms WHERE room = r.room), 0)"
			: `MAX(COALESCE((SELECT MAX(seq) FROM messages WHERE room = r.room), 0),
				COALESCE((SELECT floor FROM room_floors WHERE room = r.room), 0))`;
	}

	/**
	 * A statement written with PostgreSQL's numbered placeholders ($1, $2…).
	 * SQLite numbers `$n` by first appearance, not by its digits; `?n` is its
	 * explicit form, so the text is translated for it.
	 */
	private unsafe(tx: SQL, text: string, params: unknown[] = []) {
		return tx.unsafe(this.engine === "sqlite" ? text.replace(/\$(\d+)/g, "?$1") : text, params);
	}

	/** Opens `db` (a postgres:// URL or a SQLite path) and creates or migrates the room tables. */
	static async open(db: string, now = Date.now()): Promise<RoomStore> {
		return openTables(db, "the room tables", async (sql, engine) => {
			const store = new RoomStore(sql, engine);
			await store.migrate(now);
			return store;
		});
	}

	private async tableExists(tx: SQL, name: string): Promise<boolean> {
		const rows =
			this.engine === "postgres"
				? await tx`SELECT to_regclass(${name}) IS NOT NULL AS found`
				: await tx`SELECT COUNT(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = ${name}`;
		const found = (rows as Row[])[0]?.found;
		return found === true || num(found) === 1;
	}

	private async migrate(now: number): Promise<void> {
		const pg = this.engine === "postgres";
		const serial = pg ? "BIGSERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT";
		await this.sql.begin(async (tx) => {
			if (pg) await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
			if (!(await this.tableExists(tx, this.messages)) || !(await this.tableExists(tx, "hubbub_accounts")))
				throw new Error("the message and account tables must be opened before the room tables");
			await tx`CREATE TABLE IF NOT EXISTS hubbub_room_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`;
			const [row] = await tx`SELECT value FROM hubbub_room_meta WHERE key = 'schema'`;
			const version = row ? Number(row.value) : 0;
			if (version > SCHEMA_VERSION)
				throw new Error(`room schema version ${version} is newer than this hubbub understands`);
			if (version < 1) {
				await tx.unsafe(`CREATE TABLE hubbub_room_info (
					room TEXT PRIMARY KEY,
					kind TEXT NOT NULL,
					title TEXT,
					topic TEXT NOT NULL,
					creator TEXT,
					created BIGINT NOT NULL,
					archived BIGINT
				)`);
				await tx.unsafe(`CREATE TABLE hubbub_room_members (
					room TEXT NOT NULL,
					account_id TEXT NOT NULL,
					joined BIGINT NOT NULL,
					last_read BIGINT NOT NULL,
					PRIMARY KEY (room, account_id)
				)`);
				await tx.unsafe("CREATE INDEX hubbub_room_members_account ON hubbub_room_members (account_id)");
				await tx.unsafe(`CREATE TABLE hubbub_mentions (
					account_id TEXT NOT NULL,
					room TEXT NOT NULL,
					seq BIGINT NOT NULL,
					PRIMARY KEY (account_id, room, seq)
				)`);
				// Membership and room changes, so every process tells its sockets (polled; see lib/rooms.ts).
				await tx.unsafe(`CREATE TABLE hubbub_room_events (
					seq ${serial},
					room TEXT NOT NULL,
					account_id TEXT,
					kind TEXT NOT NULL,
					at BIGINT NOT NULL
				)`);
				// Accounts the room tables have seen: each was made a member of FIRST_ROOM once, when first seen.
				await tx.unsafe(
					"CREATE TABLE hubbub_room_newcomers (account_id TEXT PRIMARY KEY, at BIGINT NOT NULL)",
				);
				// An older database: its people stay members of the rooms they wrote in (the rooms are adopted below).
				await this.adopt(tx, now);
				// The message store keys senders by their lower-cased name (lib/store-sqlite.ts, lib/store-postgres.ts).
				const byName = new Map<string, string>();
				for (const a of (await tx`SELECT id, name FROM hubbub_accounts`) as Row[])
					byName.set(String(a.name).toLowerCase(), String(a.id));
				const writers = (await tx.unsafe(`SELECT DISTINCT room, sender_key FROM ${this.messages}`)) as Row[];
				for (const w of writers) {
					const id = byName.get(String(w.sender_key));
					if (id)
						await tx`INSERT INTO hubbub_room_members (room, account_id, joined, last_read)
							VALUES (${w.room}, ${id}, ${now}, 0) ON CONFLICT DO NOTHING`;
				}
				// Their read positions start at each room's newest message: history is not "unread".
				await tx.unsafe(
					`UPDATE hubbub_room_members SET last_read =
					(SELECT ${this.lastSeqSql} FROM hubbub_room_info r WHERE r.room = hubbub_room_members.room)`,
				);
			}
			if (version < 2) {
				// Per-account bounds (lib/rooms.ts ROOM_QUOTAS): rooms each account made, and when it started one.
				await tx.unsafe("CREATE INDEX hubbub_room_info_creator ON hubbub_room_info (creator)");
				await tx.unsafe(`CREATE TABLE hubbub_room_starts (
					account_id TEXT NOT NULL,
					kind TEXT NOT NULL,
					at BIGINT NOT NULL
				)`);
				await tx.unsafe(
					"CREATE INDEX hubbub_room_starts_account ON hubbub_room_starts (account_id, kind, at)",
				);
				// A deleted message's mentions are removed with it from now on (removeMentions): so are older ones.
				await tx.unsafe(`DELETE FROM hubbub_mentions WHERE EXISTS (SELECT 1 FROM ${this.messages} g
					WHERE g.room = hubbub_mentions.room AND g.seq = hubbub_mentions.seq AND ${this.deletedSql})`);
			}
			if (version < SCHEMA_VERSION)
				await tx`INSERT INTO hubbub_room_meta (key, value) VALUES ('schema', ${String(SCHEMA_VERSION)})
					ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
			await this.adopt(tx, now);
		});
	}

	/**
	 * Every room that has messages but no row becomes an open room (a database
	 * from before protocol 1.2, or rooms made while it ran under --auth none),
	 * and FIRST_ROOM always exists (rooms are archived, never deleted).
	 */
	private async adopt(tx: SQL, now: number): Promise<void> {
		// One index probe per room (a loose index scan), not a scan of every message.
		const distinct =
			this.engine === "postgres"
				? "SELECT room FROM hubbub_rooms"
				: `WITH RECURSIVE r(room) AS (
						SELECT MIN(room) FROM messages
						UNION ALL SELECT (SELECT MIN(room) FROM messages WHERE room > r.room) FROM r WHERE r.room IS NOT NULL)
					SELECT room FROM r WHERE room IS NOT NULL UNION SELECT room FROM room_floors`;
		await this.unsafe(
			tx,
			`INSERT INTO hubbub_room_info (room, kind, title, topic, creator, created, archived)
			SELECT d.room, 'open', CAST(NULL AS TEXT), '', CAST(NULL AS TEXT), CAST($1 AS BIGINT), CAST(NULL AS BIGINT) FROM (${distinct}) d
			WHERE NOT EXISTS (SELECT 1 FROM hubbub_room_info i WHERE i.room = d.room)`,
			[now],
		);
		await tx`INSERT INTO hubbub_room_info (room, kind, title, topic, creator, created, archived)
			SELECT CAST(${FIRST_ROOM} AS TEXT), 'open', CAST(NULL AS TEXT), '', CAST(NULL AS TEXT), CAST(${now} AS BIGINT), CAST(NULL AS BIGINT)
			WHERE NOT EXISTS (SELECT 1 FROM hubbub_room_info WHERE room = ${FIRST_ROOM})`;
	}

	// ---- rooms

	async room(room: string): Promise<RoomRow | undefined> {
		const [r] = await this.sql`SELECT * FROM hubbub_room_info WHERE room = ${room}`;
		return r ? roomOf(r) : undefined;
	}

	/**
	 * Inserts a room and makes `members` its members in one transaction:
	 * "taken" when the id exists; with `quota`, "rate" or "total" when its
	 * starter is past a bound, `{ full }` when a member is in `memberCap`
	 * rooms already. The counts and the insert are one transaction (per
	 * starter, on PostgreSQL), so parallel connections cannot overshoot them.
	 */
	async insertRoom(
		row: RoomRow,
		members: string[],
		quota?: StartQuota,
	): Promise<"ok" | "taken" | "rate" | "total" | { full: string }> {
		try {
			return await this.sql.begin(async (tx) => {
				if (quota && this.engine === "postgres")
					await tx`SELECT pg_advisory_xact_lock(hashtext(${quota.starter}))`;
				const [exists] = await tx`SELECT 1 AS one FROM hubbub_room_info WHERE room = ${row.room}`;
				if (exists) return "taken" as const;
				if (quota) {
					const [started] = await tx`SELECT COUNT(*) AS n FROM hubbub_room_starts
						WHERE account_id = ${quota.starter} AND kind = ${quota.kind} AND at > ${quota.since}`;
					if (num(started?.n) >= quota.perWindow) return "rate" as const;
					if (quota.total !== undefined) {
						const [made] = await tx`SELECT COUNT(*) AS n FROM hubbub_room_info
							WHERE creator = ${quota.starter} AND kind <> 'direct'`;
						if (num(made?.n) >= quota.total) return "total" as const;
					}
					for (const id of members) {
						const [held] = await tx`SELECT COUNT(*) AS n FROM hubbub_room_members WHERE account_id = ${id}`;
						if (num(held?.n) >= quota.memberCap) return { full: id };
					}
					await tx`INSERT INTO hubbub_room_starts (account_id, kind, at)
						VALUES (${quota.starter}, ${quota.kind}, ${row.created})`;
				}
				await tx`INSERT INTO hubbub_room_info (room, kind, title, topic, creator, created, archived)
					VALUES (${row.room}, ${row.kind}, ${row.title}, ${row.topic}, ${row.creator}, ${row.created}, ${row.archived})`;
				for (const id of members)
					await tx`INSERT INTO hubbub_room_members (room, account_id, joined, last_read)
						VALUES (${row.room}, ${id}, ${row.created}, 0) ON CONFLICT DO NOTHING`;
				return "ok" as const;
			});
		} catch (e) {
			if (isUniqueViolation(e)) return "taken";
			throw e;
		}
	}

	async updateRoom(
		room: string,
		change: { title?: string | null; topic?: string; archived?: number | null },
	): Promise<void> {
		await this.sql.begin(async (tx) => {
			if (change.title !== undefined)
				await tx`UPDATE hubbub_room_info SET title = ${change.title} WHERE room = ${room}`;
			if (change.topic !== undefined)
				await tx`UPDATE hubbub_room_info SET topic = ${change.topic} WHERE room = ${room}`;
			if (change.archived !== undefined)
				await tx`UPDATE hubbub_room_info SET archived = ${change.archived} WHERE room = ${room}`;
		});
	}

	/** Open rooms that are not archived, whose id or title contains `query` (any case), by id. */
	async directory(
		query: string,
		limit: number,
	): Promise<{ room: string; title: string | null; topic: string; members: number }[]> {
		const like = `%${query.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
		const rows = (await this.sql`SELECT r.room, r.title, r.topic,
				(SELECT COUNT(*) FROM hubbub_room_members m WHERE m.room = r.room) AS members
			FROM hubbub_room_info r
			WHERE r.kind = 'open' AND r.archived IS NULL
				AND (LOWER(r.room) LIKE ${like} ESCAPE '\\' OR LOWER(COALESCE(r.title, '')) LIKE ${like} ESCAPE '\\')
			ORDER BY r.room LIMIT ${limit}`) as Row[];
		return rows.map((r) => ({
			room: String(r.room),
			title: r.title === null ? null : String(r.title),
			topic: String(r.topic),
			members: num(r.members),
		}));
	}

	// ---- members

	async isMember(room: string, accountId: string): Promise<boolean> {
		const [r] = await this
			.sql`SELECT 1 AS one FROM hubbub_room_members WHERE room = ${room} AND account_id = ${accountId}`;
		return r !== undefined;
	}

	/**
	 * Makes the account a member, its read position at the room's newest
	 * message, unless it is in `cap` rooms already: "member" when it already
	 * was, "full" when it is at the cap.
	 */
	async addMember(
		room: string,
		accountId: string,
		now: number,
		cap = Number.MAX_SAFE_INTEGER,
	): Promise<"added" | "member" | "full"> {
		const r = await this.unsafe(
			this.sql,
			`INSERT INTO hubbub_room_members (room, account_id, joined, last_read)
			SELECT r.room, CAST($2 AS TEXT), CAST($3 AS BIGINT), ${this.lastSeqSql} FROM hubbub_room_info r WHERE r.room = $1
				AND (SELECT COUNT(*) FROM hubbub_room_members h WHERE h.account_id = $2) < CAST($4 AS BIGINT)
			ON CONFLICT DO NOTHING`,
			[room, accountId, now, cap],
		);
		if (r.count > 0) return "added";
		return (await this.isMember(room, accountId)) ? "member" : "full";
	}

	/** How many rooms the account is a member of. */
	async membershipCount(accountId: string): Promise<number> {
		const [r] = await this.sql`SELECT COUNT(*) AS n FROM hubbub_room_members WHERE account_id = ${accountId}`;
		return num(r?.n);
	}

	/** Ends a membership (and its mentions); false when there was none. */
	async removeMember(room: string, accountId: string): Promise<boolean> {
		return this.sql.begin(async (tx) => {
			const r = await tx`DELETE FROM hubbub_room_members WHERE room = ${room} AND account_id = ${accountId}`;
			await tx`DELETE FROM hubbub_mentions WHERE account_id = ${accountId} AND room = ${room}`;
			return r.count > 0;
		});
	}

	/** The rooms the account is a member of. */
	async memberships(accountId: string): Promise<string[]> {
		const rows = (await this
			.sql`SELECT room FROM hubbub_room_members WHERE account_id = ${accountId} ORDER BY room`) as Row[];
		return rows.map((r) => String(r.room));
	}

	/** Display names of the room's members (active accounts or not), by name key. */
	async people(room: string): Promise<string[]> {
		const rows = (await this.sql`SELECT a.name FROM hubbub_room_members m
			JOIN hubbub_accounts a ON a.id = m.account_id WHERE m.room = ${room} ORDER BY a.name_key`) as Row[];
		return rows.map((r) => String(r.name));
	}

	/** Names of the members of every private and direct room the account is in (or only `only`), by room. */
	async peopleOf(accountId: string, only?: string): Promise<Map<string, string[]>> {
		const rows = (await this.unsafe(
			this.sql,
			`SELECT m.room, a.name FROM hubbub_room_members m
			JOIN hubbub_accounts a ON a.id = m.account_id JOIN hubbub_room_info r ON r.room = m.room
			WHERE r.kind <> 'open' AND m.room IN (SELECT room FROM hubbub_room_members WHERE account_id = $1)
			${only === undefined ? "" : "AND m.room = $2"} ORDER BY m.room, a.name_key`,
			only === undefined ? [accountId] : [accountId, only],
		)) as Row[];
		const byRoom = new Map<string, string[]>();
		for (const r of rows) {
			const list = byRoom.get(String(r.room)) ?? [];
			list.push(String(r.name));
			byRoom.set(String(r.room), list);
		}
		return byRoom;
	}

	/** Rooms that are archived (read-only), for the synchronous check at send. */
	async archivedRooms(): Promise<string[]> {
		const rows = (await this.sql`SELECT room FROM hubbub_room_info WHERE archived IS NOT NULL`) as Row[];
		return rows.map((r) => String(r.room));
	}

	/** The members of `room` whose name key is one of `keys` (the people a message mentions). */
	async membersByKey(room: string, keys: string[]): Promise<string[]> {
		if (keys.length === 0) return [];
		const rows = (await this.sql`SELECT m.account_id FROM hubbub_room_members m
			JOIN hubbub_accounts a ON a.id = m.account_id
			WHERE m.room = ${room} AND a.name_key IN ${this.sql(keys)}`) as Row[];
		return rows.map((r) => String(r.account_id));
	}

	/**
	 * The rooms the account is a member of (or only `only`), with its counts:
	 * `unread` is the messages after its read position not sent by it
	 * (`senderKey`: its name lower-cased, as the message store keys senders),
	 * at most UNREAD_CAP, read as a bounded seq range (seqs have no gaps);
	 * `mentions` stops at UNREAD_CAP too (a deleted message's mentions are
	 * gone: removeMentions). One statement; each room's counts are index
	 * range reads of at most UNREAD_CAP rows, with no lookup per row (measured
	 * faster than grouped joins over all the rooms: bench/welcome.ts).
	 */
	async views(accountId: string, senderKey: string, only?: string): Promise<MemberView[]> {
		const rows = (await this.unsafe(
			this.sql,
			`SELECT r.*, c.name AS creator_name, m.last_read,
				(SELECT COUNT(*) FROM hubbub_room_members x WHERE x.room = r.room) AS members,
				(SELECT COUNT(*) FROM ${this.messages} g WHERE g.room = r.room AND g.seq > m.last_read
					AND g.seq <= m.last_read + ${UNREAD_CAP} AND g.sender_key <> $2 AND NOT (${this.deletedSql})) AS unread,
				(SELECT COUNT(*) FROM (SELECT 1 AS one FROM hubbub_mentions n WHERE n.account_id = m.account_id
					AND n.room = r.room AND n.seq > m.last_read LIMIT ${UNREAD_CAP}) capped) AS mentions,
				${this.lastSeqSql} AS last_seq
			FROM hubbub_room_members m JOIN hubbub_room_info r ON r.room = m.room
			LEFT JOIN hubbub_accounts c ON c.id = r.creator
			WHERE m.account_id = $1 ${only === undefined ? "" : "AND m.room = $3"}
			ORDER BY r.room`,
			only === undefined ? [accountId, senderKey] : [accountId, senderKey, only],
		)) as Row[];
		return rows.map((r) => ({
			...roomOf(r),
			creatorName: r.creator_name === null || r.creator_name === undefined ? null : String(r.creator_name),
			members: num(r.members),
			lastSeq: num(r.last_seq),
			lastRead: Math.min(num(r.last_read), num(r.last_seq)),
			unread: num(r.unread),
			mentions: num(r.mentions),
		}));
	}

	/** Moves the read position forward to `seq` (never back, never past the room's newest message). */
	async markRead(room: string, accountId: string, seq: number): Promise<boolean> {
		const r = await this.unsafe(
			this.sql,
			`UPDATE hubbub_room_members SET last_read = (
				SELECT CASE WHEN CAST($3 AS BIGINT) < top THEN CAST($3 AS BIGINT) ELSE top END FROM (SELECT ${this.lastSeqSql} AS top FROM hubbub_room_info r WHERE r.room = $1) t)
			WHERE room = $1 AND account_id = $2 AND last_read < CAST($3 AS BIGINT)`,
			[room, accountId, seq],
		);
		return r.count > 0;
	}

	/** Records that the message `seq` of `room` mentions these accounts. */
	async addMentions(room: string, seq: number, accountIds: string[]): Promise<void> {
		if (accountIds.length === 0) return;
		await this.sql.begin(async (tx) => {
			for (const id of accountIds)
				await tx`INSERT INTO hubbub_mentions (account_id, room, seq) VALUES (${id}, ${room}, ${seq})
					ON CONFLICT DO NOTHING`;
		});
	}

	/** The message `seq` of `room` was deleted: it mentions nobody any more. */
	async removeMentions(room: string, seq: number): Promise<void> {
		await this.sql`DELETE FROM hubbub_mentions WHERE room = ${room} AND seq = ${seq}`;
	}

	/** True the first time an account is seen here: it is then made a member of FIRST_ROOM (if open and not archived). */
	async welcomeNewcomer(accountId: string, now: number): Promise<boolean> {
		return this.sql.begin(async (tx) => {
			const claimed =
				await tx`INSERT INTO hubbub_room_newcomers (account_id, at) VALUES (${accountId}, ${now})
				ON CONFLICT DO NOTHING RETURNING account_id`;
			if (claimed.length === 0) return false;
			await this.unsafe(
				tx,
				`INSERT INTO hubbub_room_members (room, account_id, joined, last_read)
				SELECT r.room, CAST($2 AS TEXT), CAST($3 AS BIGINT), ${this.lastSeqSql} FROM hubbub_room_info r
				WHERE r.room = $1 AND r.kind = 'open' AND r.archived IS NULL
				ON CONFLICT DO NOTHING`,
				[FIRST_ROOM, accountId, now],
			);
			return true;
		});
	}

	// ---- the event log every process polls

	async appendEvent(room: string, accountId: string | null, kind: string, now: number): Promise<number> {
		const [r] = await this.sql`INSERT INTO hubbub_room_events (room, account_id, kind, at)
			VALUES (${room}, ${accountId}, ${kind}, ${now}) RETURNING seq`;
		return num(r?.seq);
	}

	async eventsAfter(seq: number): Promise<RoomEvent[]> {
		const rows = (await this.sql`SELECT seq, room, account_id, kind FROM hubbub_room_events
			WHERE seq > ${seq} ORDER BY seq LIMIT 10000`) as Row[];
		return rows.map((r) => ({
			seq: num(r.seq),
			room: String(r.room),
			accountId: r.account_id === null ? null : String(r.account_id),
			kind: String(r.kind),
		}));
	}

	async lastEvent(): Promise<number> {
		const [r] = await this.sql`SELECT MAX(seq) AS seq FROM hubbub_room_events`;
		return num(r?.seq);
	}

	/** Drops events older than `before`: every process has long applied them. */
	async pruneEvents(before: number): Promise<void> {
		await this.sql`DELETE FROM hubbub_room_events WHERE at < ${before}`;
	}

	/** Drops the record of rooms started before `before` (older than every window a quota counts). */
	async pruneStarts(before: number): Promise<void> {
		await this.sql`DELETE FROM hubbub_room_starts WHERE at < ${before}`;
	}

	async close(): Promise<void> {
		await this.sql.close({ timeout: 1 });
	}
}
