// The wire protocol, version 1: the one definition of every frame, shared by the server, the page and the tests.
import { z } from "zod";
import { checkName, isVisibleText, NAME_MAX_CHARS } from "./lib/names.ts";

export const PROTOCOL_VERSION = "1.0.0";
/** What `welcome` says under --auth accounts: v1 plus the frames of protocol 1.2 (rooms, edits, reactions, read positions). */
export const ACCOUNTS_PROTOCOL_VERSION = "1.2.0";

export const LIMITS = {
	nameChars: NAME_MAX_CHARS,
	roomChars: 32,
	textChars: 4000,
	idChars: 64,
	/** Messages in `joined` without `since`. */
	latest: 50,
	/** Messages in `joined` with `since`. */
	resume: 1000,
	historyDefault: 50,
	historyMax: 200,
	/** Characters of a search query. */
	searchChars: 200,
	searchDefault: 20,
	searchMax: 50,
	/** Files one message may carry (protocol 1.1, `--auth accounts`). */
	files: 10,
	/** Protocol 1.2: a room's display title and topic. */
	titleChars: 64,
	topicChars: 250,
	/** Other people in a direct conversation (2–8 people in all). */
	directOthers: 7,
	/**
	 * Per account, over all its connections and processes (counted in the
	 * store): rooms it may create per hour and in all (admins: no total),
	 * new direct conversations it may start per day, rooms it may be a member of.
	 */
	roomsPerHour: 20,
	roomsCreatedMax: 100,
	directPerDay: 50,
	membershipsMax: 500,
	/** Rooms in one `directory` answer. */
	directoryMax: 200,
	/** Changed messages a resuming `joined` carries in `updates`; beyond it the room is reset. */
	updatesMax: 1000,
	/** Characters of a reaction, and distinct reactions on one message. */
	reactionChars: 16,
	reactionsPerMessage: 20,
	/** Distinct reactions one person may have on one message: no one fills a message's slots alone. */
	reactionsPerPerson: 5,
} as const;

/** Close codes: 1000–1001 mean "reconnect when you like", 1008–1009 mean "you did something wrong". */
export const CLOSE = {
	normal: 1000,
	goingAway: 1001,
	policyViolation: 1008,
	tooBig: 1009,
	internalError: 1011,
	/** (hubbub's own) This server lost track of a room's messages: reconnect and resume with `since`. */
	resume: 4000,
	/** --auth accounts: the session was ended (sign-out, "sign out everywhere", password change, deactivation); do not reconnect, sign in again. */
	sessionEnded: 4001,
} as const;

/** The 4001 close reason when an admin deactivated the account (on the process where it happened; elsewhere the reason is the general one). */
export const DEACTIVATED_REASON = "account deactivated by an admin";

export const ERROR_CODES = [
	"bad_frame",
	"not_identified",
	"already_identified",
	"invalid_name",
	"name_taken",
	"not_joined",
	"rate_limited",
	"server_error",
	// Extensions beyond PROTOCOL.md:
	"too_many_rooms",
	"quota_exceeded",
	/** A `send` named a file this account did not upload (or that was deleted), or files under --auth none. */
	"unknown_file",
	// Protocol 1.2 (--auth accounts):
	/** The room does not exist or this account may not see it: one answer for both, so nothing leaks. */
	"not_found",
	/** The account may see the thing but not do this to it (edit someone else's message, rename a room it did not create). */
	"forbidden",
	/** The room is archived: it can be read, not written. */
	"read_only",
	/** `create` named a room id that exists (of any kind). */
	"room_taken",
	/** The frame needs --auth accounts. */
	"not_available",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

// Code points, not UTF-16 units, so an emoji counts as one character. A string's
// code point count never exceeds its length, so short strings skip the spread.
function charCount(s: string): number {
	return s.length <= 1 ? s.length : [...s].length;
}
function maxChars(max: number) {
	return (s: string) => s.length <= max || charCount(s) <= max;
}

// Room names are plain ASCII, so no look-alike, invisible or bidi character can be in one.
export const ROOM_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** A name by the identifier rules of lib/names.ts, normalised (NFKC, spaces collapsed, trimmed). */
export const Name = z.string().transform((s, ctx) => {
	const checked = checkName(s);
	if (checked.ok) return checked.name;
	ctx.addIssue({ code: "custom", message: checked.message.replace(/^name /, "") });
	return z.NEVER;
});

export const Room = z
	.string()
	.regex(ROOM_PATTERN, "must be 1-32 of a-z, 0-9, '-', '_', starting with a letter or digit");

const Seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
// Lone surrogates are refused: stored as UTF-8 they would become U+FFFD, and two ids would collide.
const wellFormed = (s: string) => s.isWellFormed();
/** SQLite's full-text query syntax ends a string at NUL, PostgreSQL refuses it in text: refused here, not failed there. */
const noNul = (s: string) => !s.includes("\0");
const ClientId = z
	.string()
	.min(1)
	.refine(maxChars(LIMITS.idChars), `must be at most ${LIMITS.idChars} characters`)
	.refine(wellFormed, "must be valid Unicode text (no lone surrogates)");
const Text = z
	.string()
	.refine(isVisibleText, "must not be empty, only whitespace or only invisible characters")
	.refine(maxChars(LIMITS.textChars), `must be at most ${LIMITS.textChars} characters`)
	.refine(wellFormed, "must be valid Unicode text (no lone surrogates)");

// ---- client → server

export const Hello = z.object({ type: z.literal("hello"), name: z.string() });
export const Join = z.object({
	type: z.literal("join"),
	room: Room,
	since: Seq.optional(),
	/** Protocol 1.2: the highest `change` the client holds for the room; with `since`, `joined.updates` brings later changes. */
	changes: Seq.optional(),
});
export const Leave = z.object({ type: z.literal("leave"), room: Room });
/** An uploaded file's id (`POST /api/uploads` answers it): the lower-case hex SHA-256 of its bytes. */
export const FileId = z.string().regex(/^[0-9a-f]{64}$/, "must be a file id from POST /api/uploads");
export const Send = z
	.object({
		type: z.literal("send"),
		room: Room,
		id: ClientId.optional(),
		/** Checked below: `Text`, or exactly "" when the message carries files. */
		text: z.string(),
		/** Protocol 1.1 (`--auth accounts`): ids of files this account uploaded, shown with the message. */
		files: z
			.array(FileId)
			.min(1)
			.max(LIMITS.files)
			.refine((ids) => new Set(ids).size === ids.length, "must not name a file twice")
			.optional(),
	})
	.superRefine((send, ctx) => {
		// A message of files alone has empty text; otherwise (and always in v1) the text rules hold.
		if (send.files !== undefined && send.text === "") return;
		const checked = Text.safeParse(send.text);
		if (!checked.success)
			for (const issue of checked.error.issues) ctx.addIssue({ ...issue, path: ["text", ...issue.path] });
	});
export const HistoryRequest = z
	.object({
		type: z.literal("history"),
		room: Room,
		before: Seq.optional(),
		/** Protocol 1.1: the messages around this seq (opening a search result). */
		around: Seq.optional(),
		/** Protocol 1.1: messages after this seq, oldest first (from a search result down to the live end). */
		after: Seq.optional(),
		limit: z.number().int().min(1).max(LIMITS.historyMax).default(LIMITS.historyDefault),
	})
	.refine(
		(h) => [h.before, h.around, h.after].filter((v) => v !== undefined).length <= 1,
		"give at most one of before, around and after",
	);
/** Full-text search over the rooms the connection may read (docs/PROTOCOL.md, "Search"). */
export const SearchRequest = z.object({
	type: z.literal("search"),
	/** Echoed in the answer (and in an `error`), so several searches may be in flight. */
	ref: z.string().min(1).max(LIMITS.idChars).optional(),
	query: z
		.string()
		.min(1)
		.refine(maxChars(LIMITS.searchChars), `must be at most ${LIMITS.searchChars} characters`)
		.refine(wellFormed, "must be valid Unicode text (no lone surrogates)")
		.refine(noNul, "must not contain NUL"),
	room: Room.optional(),
	from: z
		.string()
		.min(1)
		.max(LIMITS.nameChars * 4)
		.refine(noNul, "must not contain NUL")
		.optional(),
	/** ms since the epoch: messages with ts < before. */
	before: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
	/** ms since the epoch: messages with ts >= after. */
	after: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
	cursor: z.string().min(1).max(100).optional(),
	limit: z.number().int().min(1).max(LIMITS.searchMax).default(LIMITS.searchDefault),
});
export const TypingRequest = z.object({ type: z.literal("typing"), room: Room });
export const Ping = z.object({ type: z.literal("ping") });

// ---- client → server, protocol 1.2 (--auth accounts; docs/PROTOCOL.md "Rooms, edits and read positions")

const Ref = z.string().min(1).max(LIMITS.idChars).optional();
/**
 * Characters a room title or topic may not carry: control characters and
 * invisible format characters (Cf), among them the bidi embeddings, overrides
 * and isolates (U+202A–202E, U+2066–2069) and marks (U+200E, U+200F, U+061C),
 * which could make a title read as something else; and line separators. The
 * zero-width joiner and non-joiner (U+200D, U+200C) and the tag characters
 * stay: emoji sequences (👩‍💻, subdivision flags) and Persian need them.
 */
const HIDDEN_IN_TITLES = /[[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]--[\u200C\u200D\u{E0020}-\u{E007F}]]/v;
const noHidden = (s: string) => !HIDDEN_IN_TITLES.test(s);
const NO_HIDDEN = "must not contain control, bidi or other invisible formatting characters";
const Title = z
	.string()
	.refine(isVisibleText, "must not be empty, only whitespace or only invisible characters")
	.refine(noHidden, NO_HIDDEN)
	.refine(maxChars(LIMITS.titleChars), `must be at most ${LIMITS.titleChars} characters`)
	.refine(wellFormed, "must be valid Unicode text (no lone surrogates)");
const Topic = z
	.string()
	.refine(noHidden, NO_HIDDEN)
	.refine(maxChars(LIMITS.topicChars), `must be at most ${LIMITS.topicChars} characters`)
	.refine(wellFormed, "must be valid Unicode text (no lone surrogates)");
/** A person named by their account's name (compared by name key, see lib/names.ts). */
const PersonName = z
	.string()
	.min(1)
	.max(LIMITS.nameChars * 4);
const RoomKind = z.enum(["open", "private", "direct"]);
export type RoomKind = z.infer<typeof RoomKind>;

export const CreateRoom = z.object({
	type: z.literal("create"),
	ref: Ref,
	room: Room,
	kind: z.enum(["open", "private"]),
	title: Title.optional(),
	topic: Topic.optional(),
});
/** Starts (or finds) the direct conversation between this account and the named people. */
export const DirectRequest = z.object({
	type: z.literal("direct"),
	ref: Ref,
	names: z.array(PersonName).min(1).max(LIMITS.directOthers),
});
export const DirectoryRequest = z.object({
	type: z.literal("directory"),
	ref: Ref,
	query: z
		.string()
		.max(LIMITS.titleChars * 4)
		.optional(),
});
export const RoomUpdateRequest = z.object({
	type: z.literal("room_update"),
	ref: Ref,
	room: Room,
	title: Title.optional(),
	topic: Topic.optional(),
	archived: z.boolean().optional(),
});
export const MemberAdd = z.object({ type: z.literal("member_add"), ref: Ref, room: Room, name: PersonName });
export const MemberRemove = z.object({
	type: z.literal("member_remove"),
	ref: Ref,
	room: Room,
	name: PersonName,
});
/** The person has seen the room up to `seq`. */
export const ReadRequest = z.object({ type: z.literal("read"), ref: Ref, room: Room, seq: Seq });
export const EditRequest = z.object({
	type: z.literal("edit"),
	ref: Ref,
	room: Room,
	seq: Seq,
	text: Text,
});
export const DeleteRequest = z.object({ type: z.literal("delete"), ref: Ref, room: Room, seq: Seq });
const REACTION_PATTERN =
	/^(?::[a-z0-9_+-]{1,14}:|\p{Regional_Indicator}{2}|[0-9#*]\ufe0f?\u20e3|\p{Extended_Pictographic}(?:\p{Emoji_Modifier}|\ufe0f|\u200d\p{Extended_Pictographic})*)$/u;
/**
 * One form per emoji, so a reaction with extra (or missing) U+FE0F variation
 * selectors counts as the same one: every FE0F is dropped, then one is put
 * back where an emoji needs it to show as an emoji (a keycap, and a lone
 * pictograph whose default look is text, like ❤). Idempotent.
 */
export function canonicalEmoji(s: string): string {
	if (s.startsWith(":")) return s;
	const bare = s.replaceAll("\ufe0f", "");
	if (/^[0-9#*]\u20e3$/u.test(bare)) return `${bare[0]}\ufe0f\u20e3`;
	if (/^\p{Extended_Pictographic}$/u.test(bare) && !/^\p{Emoji_Presentation}$/u.test(bare))
		return `${bare}\ufe0f`;
	return bare;
}
export const Reaction = z
	.string()
	.min(1)
	.refine(maxChars(LIMITS.reactionChars), `must be at most ${LIMITS.reactionChars} characters`)
	.refine(
		// A flag, a keycap, or one pictograph with modifiers, variation selectors and ZWJ-joined pictographs (👍🏽, ❤️, 👩‍💻).
		(s) => REACTION_PATTERN.test(s),
		"must be one emoji or a :shortcode:",
	)
	.transform(canonicalEmoji);
export const ReactRequest = z.object({
	type: z.literal("react"),
	ref: Ref,
	room: Room,
	seq: Seq,
	emoji: Reaction,
	/** True adds this account's reaction, false takes it back. */
	on: z.boolean(),
});

const clientFrames = {
	hello: Hello,
	join: Join,
	leave: Leave,
	send: Send,
	history: HistoryRequest,
	typing: TypingRequest,
	ping: Ping,
	search: SearchRequest,
	create: CreateRoom,
	direct: DirectRequest,
	directory: DirectoryRequest,
	room_update: RoomUpdateRequest,
	member_add: MemberAdd,
	member_remove: MemberRemove,
	read: ReadRequest,
	edit: EditRequest,
	delete: DeleteRequest,
	react: ReactRequest,
} as const;

export const ClientFrame = z.discriminatedUnion("type", [
	Hello,
	Join,
	Leave,
	Send,
	HistoryRequest,
	TypingRequest,
	Ping,
	SearchRequest,
	CreateRoom,
	DirectRequest,
	DirectoryRequest,
	RoomUpdateRequest,
	MemberAdd,
	MemberRemove,
	ReadRequest,
	EditRequest,
	DeleteRequest,
	ReactRequest,
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientFrameType = ClientFrame["type"];

/** Frame types of protocol 1.2: answered with `not_available` under --auth none. */
export const ACCOUNTS_ONLY_FRAMES = new Set([
	"create",
	"direct",
	"directory",
	"room_update",
	"member_add",
	"member_remove",
	"read",
	"edit",
	"delete",
	"react",
] as const satisfies ClientFrameType[]);
export type AccountsFrame = Extract<
	ClientFrame,
	{ type: typeof ACCOUNTS_ONLY_FRAMES extends Set<infer T> ? T : never }
>;
export function isAccountsFrame(frame: ClientFrame): frame is AccountsFrame {
	return (ACCOUNTS_ONLY_FRAMES as Set<string>).has(frame.type);
}

// ---- server → client

/** A file a message carries, as its upload described it (the type and size read from its bytes, the name cleaned). */
export const FileRef = z.object({
	id: FileId,
	name: z.string(),
	type: z.string(),
	size: z.number().int().min(0),
	width: z.number().int().min(1).optional(),
	height: z.number().int().min(1).optional(),
	/** Images and video the page may show; everything else is a download card. */
	inline: z.boolean().optional(),
});
export type FileRef = z.infer<typeof FileRef>;

export const Message = z.object({
	type: z.literal("message"),
	room: Room,
	seq: z.number().int().min(1),
	id: z.string().optional(),
	from: z.string(),
	text: z.string(),
	ts: z.number().int(),
	/** Protocol 1.1: the files sent with the message; absent when none (always, under --auth none). */
	files: z.array(FileRef).optional(),
	// Protocol 1.2 (--auth accounts), each present only when set:
	/** When the text was last edited (ms since the epoch). */
	edited: z.number().int().optional(),
	/** The message was deleted: `text` is "" and it carries nothing else; its seq stays taken. */
	deleted: z.literal(true).optional(),
	/** Who reacted with what, in the order each emoji was first used. */
	reactions: z.array(z.object({ emoji: z.string(), names: z.array(z.string()) })).optional(),
	/** The room's change counter at this message's last edit, deletion or reaction (see `update`). */
	change: z.number().int().min(1).optional(),
});
export type Message = z.infer<typeof Message>;

/** Protocol 1.2: a room as one account sees it. */
export const RoomInfo = z.object({
	room: Room,
	kind: RoomKind,
	/** What to show: the room id unless renamed; for a direct room, the other people's names. */
	title: z.string(),
	topic: z.string(),
	/** Who created it (absent for rooms from before protocol 1.2, and for direct rooms). */
	creator: z.string().optional(),
	created: z.number().int(),
	/** When it was archived: read-only and out of the directory. */
	archived: z.number().int().optional(),
	/** How many accounts are members. */
	members: z.number().int().min(0),
	/** The room's newest seq (0 when empty). */
	lastSeq: Seq,
	/** This account's read position: the newest seq it has seen. */
	lastRead: Seq,
	/** Messages after `lastRead` from other people. */
	unread: z.number().int().min(0),
	/** Of those, the ones that mention this account. */
	mentions: z.number().int().min(0),
	/** Direct rooms: every member's name. */
	people: z.array(z.string()).optional(),
});
export type RoomInfo = z.infer<typeof RoomInfo>;

export const Welcome = z.object({
	type: z.literal("welcome"),
	name: z.string(),
	version: z.string(),
	epoch: z.string(),
	/** Protocol 1.2: every room this account is a member of. */
	rooms: z.array(RoomInfo).optional(),
	/** Protocol 1.2: this account's role. */
	role: z.enum(["admin", "member"]).optional(),
});
export const Joined = z.object({
	type: z.literal("joined"),
	room: Room,
	members: z.array(z.string()),
	messages: z.array(Message),
	more: z.boolean(),
	/** (hubbub's own) The `since` was beyond the room's last seq: drop what you hold for the room; these are its latest messages. */
	reset: z.literal(true).optional(),
	// Protocol 1.2 (--auth accounts):
	/** The room as this account sees it (title, topic, kind, counts). */
	info: RoomInfo.optional(),
	/** Display names of every member, online or not (`members` stays "who is online"). */
	people: z.array(z.string()).optional(),
	/** The room's change counter now: keep it for `join.changes`. */
	change: z.number().int().min(0).optional(),
	/** With `since` and `changes`: the current state of held messages (seq ≤ since) changed after `changes`. */
	updates: z.array(Message).optional(),
});
export const Left = z.object({ type: z.literal("left"), room: Room });
export const HistoryPage = z.object({
	type: z.literal("history"),
	room: Room,
	messages: z.array(Message),
	more: z.boolean(),
	/** Only in answers to `around` and `after`: messages newer than the last one returned exist. */
	newer: z.boolean().optional(),
});
export const SearchHit = z.object({
	room: Room,
	seq: z.number().int().min(1),
	from: z.string(),
	ts: z.number().int(),
	/** Plain text (never HTML): the message, or a window of it with "…" where it was cut. */
	snippet: z.string(),
	/** [start, end) of each match in `snippet`, in UTF-16 code units (JavaScript string indices). */
	highlights: z.array(z.tuple([z.number().int().min(0), z.number().int().min(0)])),
});
export const SearchResults = z.object({
	type: z.literal("search"),
	ref: z.string().optional(),
	hits: z.array(SearchHit),
	/** Present when more may follow: send the same search again with it. */
	cursor: z.string().optional(),
	/**
	 * Present (true) when the newest messages were not all indexed yet as the search ran (a busy SQLite
	 * server): they may be missing from this answer; the same search a moment later finds them.
	 */
	behind: z.literal(true).optional(),
});
export const Presence = z.object({
	type: z.literal("presence"),
	room: Room,
	name: z.string(),
	online: z.boolean(),
});
export const Typing = z.object({ type: z.literal("typing"), room: Room, name: z.string() });
export const Pong = z.object({ type: z.literal("pong") });
export const ErrorFrame = z.object({
	type: z.literal("error"),
	code: z.string(),
	message: z.string(),
	ref: z.string().optional(),
	/** (hubbub's own) The room named by the frame this answers, so a client can retry that join or history. */
	room: z.string().optional(),
});

// ---- server → client, protocol 1.2 (--auth accounts)

/** A room this account is in appeared or changed (answers `create`, `direct`, `room_update` with their `ref`). */
export const RoomFrame = z.object({ type: z.literal("room"), ref: z.string().optional(), room: RoomInfo });
/** This account is no longer in the room (left on some device, or removed): drop it. */
export const RoomGone = z.object({ type: z.literal("room_gone"), room: Room });
export const DirectoryEntry = z.object({
	room: Room,
	title: z.string(),
	topic: z.string(),
	members: z.number().int().min(0),
});
export const Directory = z.object({
	type: z.literal("directory"),
	ref: z.string().optional(),
	rooms: z.array(DirectoryEntry),
});
/** This account's read position moved (on any of its connections), with the counts it leaves. */
export const ReadPosition = z.object({
	type: z.literal("read"),
	/** Echoes the `ref` of the `read` that moved it, to the connection that sent it. */
	ref: z.string().optional(),
	room: Room,
	seq: Seq,
	unread: z.number().int().min(0),
	mentions: z.number().int().min(0),
});
/** A stored message changed (edit, deletion, reaction): replace what you hold for its seq. */
export const Update = z.object({
	type: z.literal("update"),
	room: Room,
	/** The room's change counter: consecutive per room; keep the highest for `join.changes`. */
	change: z.number().int().min(1),
	message: Message,
	/** Echoes the `ref` of the edit, delete or react that made it, to the connection that sent it. */
	ref: z.string().optional(),
});

export const ServerFrame = z.discriminatedUnion("type", [
	Welcome,
	Joined,
	Left,
	Message,
	HistoryPage,
	SearchResults,
	Presence,
	Typing,
	Pong,
	ErrorFrame,
	RoomFrame,
	RoomGone,
	Directory,
	ReadPosition,
	Update,
]);
export type ServerFrame = z.infer<typeof ServerFrame>;
export type ServerFrameOf<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

// ---- parsing

export type Parsed =
	| { ok: true; frame: ClientFrame }
	| { ok: false; code: "bad_frame"; message: string; ref?: string };

function isRecord(v: unknown): v is Record<string, unknown> {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Turns one text frame into a client frame, or says what is wrong with it in a
 * sentence that names the offending field. Never throws.
 */
export function parseClientFrame(raw: string): Parsed {
	let data: unknown;
	try {
		data = JSON.parse(raw);
	} catch {
		return { ok: false, code: "bad_frame", message: "frame is not valid JSON" };
	}
	if (!isRecord(data)) {
		return { ok: false, code: "bad_frame", message: "frame must be a JSON object" };
	}
	// A send names itself with `id`, a search and the 1.2 frames with `ref`: an error about the frame carries it back.
	const byRef = data.type === "search" || (ACCOUNTS_ONLY_FRAMES as Set<unknown>).has(data.type);
	const named = byRef ? data.ref : data.id;
	const ref = typeof named === "string" && named.length <= 64 ? named : undefined;
	const type = data.type;
	const schema =
		typeof type === "string" && Object.hasOwn(clientFrames, type)
			? clientFrames[type as ClientFrameType]
			: undefined;
	if (!schema) {
		const message =
			typeof type === "string"
				? `unknown frame type ${JSON.stringify(type.slice(0, 32))}`
				: "field 'type' must be a string";
		return { ok: false, code: "bad_frame", message, ref };
	}
	const result = schema.safeParse(data);
	if (result.success) return { ok: true, frame: result.data as ClientFrame };
	const issue = result.error.issues[0];
	const field = issue?.path.length ? issue.path.join(".") : "frame";
	return {
		ok: false,
		code: "bad_frame",
		message: `field '${field}' ${describe(issue)}`,
		ref,
	};
}

function describe(issue: z.core.$ZodIssue | undefined): string {
	if (!issue) return "is invalid";
	if (issue.code === "invalid_type") return `must be ${issue.expected}`;
	if (issue.code === "too_small") return `must be at least ${issue.minimum}`;
	if (issue.code === "too_big") return `must be at most ${issue.maximum}`;
	return issue.message;
}

/** Validates a name from `hello`: the normalised name, or why it is refused (lib/names.ts has the rules). */
export function parseName(raw: string): { ok: true; name: string } | { ok: false; message: string } {
	return checkName(raw);
}

/** Parses a frame the server sent; the page and tests use it so a malformed server frame is caught, not guessed at. */
export function parseServerFrame(raw: string): ServerFrame | undefined {
	try {
		const result = ServerFrame.safeParse(JSON.parse(raw));
		return result.success ? result.data : undefined;
	} catch {
		return undefined;
	}
}
