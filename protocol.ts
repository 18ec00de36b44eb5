// The wire protocol, version 1: the one definition of every frame, shared by the server, the page and the tests.
import { z } from "zod";
import { checkName, isVisibleText, NAME_MAX_CHARS } from "./lib/names.ts";

export const PROTOCOL_VERSION = "1.0.0";

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
		.refine(wellFormed, "must be valid Unicode text (no lone surrogates)"),
	room: Room.optional(),
	from: z
		.string()
		.min(1)
		.max(LIMITS.nameChars * 4)
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

const clientFrames = {
	hello: Hello,
	join: Join,
	leave: Leave,
	send: Send,
	history: HistoryRequest,
	typing: TypingRequest,
	ping: Ping,
	search: SearchRequest,
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
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientFrameType = ClientFrame["type"];

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
});
export type Message = z.infer<typeof Message>;

export const Welcome = z.object({
	type: z.literal("welcome"),
	name: z.string(),
	version: z.string(),
	epoch: z.string(),
});
export const Joined = z.object({
	type: z.literal("joined"),
	room: Room,
	members: z.array(z.string()),
	messages: z.array(Message),
	more: z.boolean(),
	/** (hubbub's own) The `since` was beyond the room's last seq: drop what you hold for the room; these are its latest messages. */
	reset: z.literal(true).optional(),
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
	// A send names itself with `id`, a search with `ref`: an error about the frame carries it back.
	const named = data.type === "search" ? data.ref : data.id;
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
