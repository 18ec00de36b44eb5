// Identifiers (issue 10, finding 3): look-alike, invisible and bidi names are refused or collide; empty-looking text and broken ids are refused.
import { describe, expect, test } from "bun:test";
import { checkName, isVisibleText, nameKey } from "../lib/names.ts";
import { Client, chatter, startServer } from "./helpers.ts";

/** [what it is, the name sent, the name welcomed (or undefined: refused with invalid_name)]. */
const NAMES: [string, string, string | undefined][] = [
	["plain", "alice", "alice"],
	["spaces trimmed", "  alice  ", "alice"],
	["inner spaces collapse", "alice   smith", "alice smith"],
	["no-break space becomes a space", "alice\u00a0smith", "alice smith"],
	["fullwidth letters (NFKC)", "ａｌｉｃｅ", "alice"],
	["ligature fi (NFKC)", "\ufb01x", "fix"],
	["NFD é composes", "jose\u0301", "josé"],
	["emoji", "🦊 fox", "🦊 fox"],
	["emoji ZWJ sequence", "👩\u200d💻", "👩\u200d💻"],
	["emoji with VS16", "❤\ufe0f", "❤\ufe0f"],
	["Arabic", "سارة", "سارة"],
	["CJK", "李小龍", "李小龍"],
	["32 emoji", "😀".repeat(32), "😀".repeat(32)],
	["empty", "", undefined],
	["only spaces", "   ", undefined],
	["33 characters", "a".repeat(33), undefined],
	["control character", "al\u0007ice", undefined],
	["zero-width space", "al\u200bice", undefined],
	["zero-width joiner between letters", "al\u200dice", undefined],
	["zero-width non-joiner", "al\u200cice", undefined],
	["word joiner", "al\u2060ice", undefined],
	["soft hyphen", "al\u00adice", undefined],
	["BOM", "\ufeffalice", undefined],
	["right-to-left override", "\u202enimda", undefined],
	["left-to-right mark", "alice\u200e", undefined],
	["right-to-left isolate", "\u2067alice\u2069", undefined],
	["tag characters", "alice\u{e0061}\u{e0062}", undefined],
	["Hangul filler U+3164", "\u3164", undefined],
	["Hangul filler beside a letter", "a\u3164", undefined],
	["halfwidth Hangul filler", "\uffa0", undefined],
	["Braille blank U+2800", "\u2800", undefined],
	["Braille blank beside a letter", "bob\u2800", undefined],
	["lone combining mark", "\u0301", undefined],
	["starts with a combining mark", "\u0301alice", undefined],
	["combining grapheme joiner", "a\u034fb", undefined],
	["variation selector on a letter", "a\ufe0f", undefined],
	["private use", "\ue000alice", undefined],
	["unassigned code point", "a\u0378", undefined],
	["lone surrogate", "al\ud800ice", undefined],
	["line separator", "a\u2028b", undefined],
	["Mongolian vowel separator", "a\u180eb", undefined],
	["Devanagari with its marks", "देवनागरी", "देवनागरी"],
	["Thai with its marks", "สมชาย", "สมชาย"],
	["Vietnamese (composed)", "Nguyễn", "Nguyễn"],
	["dot above on i (no precomposed form)", "admi\u0307n", undefined],
	["zalgo", "a\u0301\u0302\u0303lice", undefined],
	["object replacement character", "alice\ufffc", undefined],
	["replacement character", "al\ufffdice", undefined],
];

/** Pairs that must be one person (equal nameKey) and pairs that must not. */
const SAME: [string, string][] = [
	["alice", "Alice"],
	["alice", "ALICE"],
	["alice", "\u0430lice"], // Cyrillic а
	["alice", "alic\u0435"], // Cyrillic е
	["alice", "al\u0456ce"], // Cyrillic і
	["alice", "ａｌｉｃｅ"],
	["bob", "b0b"],
	["bob", "BOB"],
	["mallory", "rnallory"],
	["paypal", "paypa1"],
	["josé", "jose\u0301"],
	["alice", "aIice"], // ASCII capital I
	["bill", "biII"],
	["bill", "bilI"],
	["paypal", "paypaI"],
	["alice", "\u0430\u04cfi\u0441e"], // Cyrillic а, ӏ, с
	["alice", "ᎪᏞᎥᏟᎬ"], // Cherokee
	["admin", "ad\u1d0din"], // small capital M
	["admin", "admin\u0331"], // macron below, composed to ṉ
	["alice", "ᴀʟɪᴄᴇ"], // small capitals
];
const DIFFERENT: [string, string][] = [
	["alice", "alicia"],
	["josé", "jose"],
	["bob", "bop"],
	["李", "季"],
	["nguyễn", "nguyen"],
];

describe("the name rules (lib/names.ts)", () => {
	test.each(NAMES)("%s", (_, raw, want) => {
		const checked = checkName(raw);
		if (want === undefined) {
			expect(checked.ok).toBe(false);
			if (!checked.ok) expect(checked.message).toMatch(/^name /);
		} else {
			expect(checked).toEqual({ ok: true, name: want });
		}
	});

	test.each(SAME)("%s and %s are one person", (a, b) => {
		expect(nameKey(checkName(a).ok ? a : "")).toBe(nameKey(b));
	});

	test.each(DIFFERENT)("%s and %s are two people", (a, b) => {
		expect(nameKey(a)).not.toBe(nameKey(b));
	});

	test("text that shows nothing is not text", () => {
		for (const t of [
			"\u200b",
			"\u200b\u200c\u200d",
			" \u2800 ",
			"\u3164",
			"\u00ad\ufeff",
			"\u202e",
			"\u{e0041}",
			"\u0301\u0301",
			" \u0301 ",
			"\u{1d159}",
			"\ufffc",
			"\ufffc\u200b\u{1d159}",
		])
			expect(isVisibleText(t)).toBe(false);
		for (const t of ["hi", "🦊", "\u200bx", "ا", "e\u0301", "\ufffd", "क्", "1"])
			expect(isVisibleText(t)).toBe(true);
	});
});

describe("over the wire", () => {
	test("a look-alike of a name in use is name_taken; an invisible one is invalid_name; welcome gives the normalised name", async () => {
		await using s = startServer();
		await chatter(s.ws, "alice");
		for (const impostor of ["\u0430lice", "ALICE", "ａｌｉｃｅ", "a\u200blice"]) {
			const c = await Client.connect(s.ws);
			c.send({ type: "hello", name: impostor });
			const answer = await c.expect("error");
			expect(answer.code).toBe(impostor.includes("\u200b") ? "invalid_name" : "name_taken");
		}
		const bidi = await Client.connect(s.ws);
		bidi.send({ type: "hello", name: "\u202enimda" });
		expect(await bidi.expect("error")).toMatchObject({ code: "invalid_name" });
		// The refusal leaves the connection open for another try.
		expect((await bidi.hello("ｂｏｂ")).name).toBe("bob");
	});

	test("text made only of invisible characters is bad_frame, and nothing is stored", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		a.send({ type: "send", room: "general", id: "zw", text: "\u200b\u200d\u2060" });
		expect(await a.expect("error")).toMatchObject({ code: "bad_frame", ref: "zw" });
		for (const [id, text] of [
			["marks", "\u0301\u0301"],
			["null-notehead", "\u{1d159}"],
			["object", "\ufffc"],
		]) {
			a.send({ type: "send", room: "general", id, text });
			expect(await a.expect("error")).toMatchObject({ code: "bad_frame", ref: id });
		}
		a.send({ type: "send", room: "general", id: "ok", text: "visible" });
		expect(await a.expect("message")).toMatchObject({ seq: 1, id: "ok" });
	});

	test("ids with lone surrogates are refused, so two different ids never collide", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		// Hand-written JSON: JSON.stringify would escape them the same way, but be explicit about what goes out.
		a.send('{"type":"send","room":"general","id":"x\\ud800","text":"first"}');
		expect(await a.expect("error")).toMatchObject({ code: "bad_frame" });
		a.send('{"type":"send","room":"general","id":"x\\ud801","text":"second"}');
		expect(await a.expect("error")).toMatchObject({ code: "bad_frame" });
		a.send({ type: "history", room: "general" });
		expect((await a.expect("history")).messages).toEqual([]);
	});
});
