// The page's search under happy-dom: the panel, snippets as text with marks, paging and errors; and the model
// opening a result in its room, going down to the live end without a hole or a message twice.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { Chat } from "../client/chat.ts";
import { dayStart, pieces } from "../client/search.ts";
import { View } from "../client/view.tsx";
import type { ClientFrame, Message } from "../protocol.ts";
import { ROOT } from "./helpers.ts";

const BODY =
	readFileSync(join(ROOT, "client", "index.html"), "utf8").match(/<body>([\s\S]*)<\/body>/)?.[1] ?? "";

let chats: Chat[] = [];
beforeEach(() => {
	document.body.innerHTML = BODY;
});
afterEach(() => {
	for (const c of chats) c.close();
	chats = [];
});

const $ = (selector: string) => document.querySelector(selector) as HTMLElement;
const all = (selector: string) => [...document.querySelectorAll<HTMLElement>(selector)];

function message(room: string, seq: number, text = `${room} ${seq}`, from = "bob"): Message {
	return { type: "message", room, seq, from, text, ts: Date.UTC(2026, 0, 1, 12, 0, seq) };
}

/** A chat whose socket is a stand-in that keeps what the page sends; welcomed as alice, in #general. */
function connected(withView = true): { chat: Chat; sent: ClientFrame[] } {
	const chat = new Chat({ url: "ws://127.0.0.1:1/ws" });
	chats.push(chat);
	const sent: ClientFrame[] = [];
	const socket = {
		readyState: WebSocket.OPEN,
		send: (s: string) => sent.push(JSON.parse(s)),
		close() {},
	};
	(chat as unknown as { socket: unknown }).socket = socket;
	if (withView) new View(chat, document, { schedule: (draw) => draw() });
	chat.open("general");
	chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
	chat.receive({
		type: "joined",
		room: "general",
		members: ["alice", "bob"],
		messages: [message("general", 1, "hello")],
		more: false,
	});
	sent.length = 0;
	return { chat, sent };
}

function typeInto(el: HTMLInputElement, value: string): void {
	el.value = value;
	el.dispatchEvent(new Event("input", { bubbles: true }));
}

function submitSearch(query: string): void {
	typeInto($("#search-input") as HTMLInputElement, query);
	($("#search-input").closest("form") as HTMLFormElement).requestSubmit();
}

describe("snippet pieces", () => {
	test("marks the ranges and keeps every character once, whatever ranges come", () => {
		expect(pieces("deploy failed again", [[0, 6]])).toEqual([
			{ text: "deploy", mark: true },
			{ text: " failed again", mark: false },
		]);
		// Unsorted, overlapping and out of range: clamped and merged, never repeated or thrown.
		const out = pieces("abcdefghij", [
			[8, 40],
			[2, 5],
			[4, 6],
			[-3, 1],
			[7, 7],
		]);
		expect(out.map((p) => p.text).join("")).toBe("abcdefghij");
		expect(out.filter((p) => p.mark).map((p) => p.text)).toEqual(["a", "cde", "f", "ij"]);
		fc.assert(
			fc.property(
				fc.string(),
				fc.array(fc.tuple(fc.integer({ min: -5, max: 60 }), fc.integer({ min: -5, max: 60 }))),
				(s, h) =>
					expect(
						pieces(s, h)
							.map((p) => p.text)
							.join(""),
					).toBe(s),
			),
		);
	});

	test("dates are local midnights; 'on or before' includes its whole day", () => {
		expect(dayStart("2026-03-04")).toBe(new Date(2026, 2, 4).getTime());
		expect(dayStart("2026-03-04", 1)).toBe(new Date(2026, 2, 5).getTime());
		expect(dayStart("")).toBeUndefined();
		expect(dayStart("yesterday")).toBeUndefined();
	});
});

describe("the search panel", () => {
	test("/ focuses the field at once, so the next letters typed before a frame is drawn land in it", () => {
		const { chat } = connected(false);
		const frames: (() => void)[] = [];
		new View(chat, document, { schedule: (draw) => frames.push(draw) });
		for (const draw of frames.splice(0)) draw();
		document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "/", bubbles: true }));
		// No frame drawn yet: a real browser would send the "t" of "/three" to whatever has focus now.
		expect(document.activeElement?.id).toBe("search-input");
		for (const draw of frames.splice(0)) draw();
		expect($("#search-panel")).not.toBeNull();
		expect(document.activeElement?.id).toBe("search-input");
	});

	test("tabbing on past the field and its filters closes the panel, leaving focus where it went", () => {
		connected();
		($("#search-input") as HTMLInputElement).focus();
		expect($("#search-panel")).not.toBeNull();
		const inPanel = all("#search-panel input")[0] as HTMLInputElement;
		inPanel.focus();
		expect($("#search-panel")).not.toBeNull();
		const room = $(".room[data-room=general]");
		room.focus();
		expect(document.querySelector("#search-panel")).toBeNull();
		expect(document.activeElement).toBe(room);
	});

	test("on a touch screen the field's placeholder has no '/' key hint", () => {
		const real = window.matchMedia;
		window.matchMedia = ((q: string) => ({
			matches: q === "(pointer: coarse)",
		})) as unknown as typeof window.matchMedia;
		try {
			connected();
			expect($("#search-input").getAttribute("placeholder")).toBe("Search");
		} finally {
			window.matchMedia = real;
		}
	});

	test("/ opens it with the field focused; a search sends the frame with its filters; Escape closes it", () => {
		const { sent } = connected();
		expect(document.querySelector("#search-panel")).toBeNull();
		document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "/", bubbles: true }));
		expect($("#search-panel")).not.toBeNull();
		expect(document.activeElement?.id).toBe("search-input");
		const from = all("#search-panel input").find((i) => i.closest("label")?.textContent?.startsWith("From"));
		typeInto(from as HTMLInputElement, " bob ");
		const since = all('#search-panel input[type="date"]')[0] as HTMLInputElement;
		typeInto(since, "2026-01-01");
		const where = $("#search-panel select") as HTMLSelectElement;
		where.value = "here";
		where.dispatchEvent(new Event("change", { bubbles: true }));
		submitSearch("deploy");
		expect(sent).toEqual([
			{
				type: "search",
				ref: "search-1",
				query: "deploy",
				room: "general",
				from: "bob",
				after: new Date(2026, 0, 1).getTime(),
				limit: 20,
			},
		]);
		expect($("#search-status").textContent).toBe("Searching…");
		document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
		expect(document.querySelector("#search-panel")).toBeNull();
		expect(document.activeElement?.id).toBe("text");
	});

	test("an answer that says the index is behind tells the person the newest may be missing; the next search forgets it", () => {
		const { chat } = connected();
		submitSearch("deploy");
		chat.receive({
			type: "search",
			ref: "search-1",
			hits: [{ room: "dev", seq: 2, from: "bob", ts: 1, snippet: "deploy", highlights: [[0, 6]] }],
			behind: true,
		});
		expect($("#search-status").textContent).toBe(
			"1 message, newest first. The newest messages are still being indexed and may be missing: search again in a moment.",
		);
		submitSearch("deploy");
		chat.receive({ type: "search", ref: "search-2", hits: [] });
		expect($("#search-status").textContent).toBe("No messages match “deploy”.");
	});

	test("results newest first, the snippet as text with <mark> on the matches; markup in a snippet stays text", () => {
		const { chat, sent } = connected();
		submitSearch("img");
		const evil = '<img src=x onerror="window.pwned=1"> the img tag';
		chat.receive({
			type: "search",
			ref: "search-1",
			hits: [
				{
					room: "dev",
					seq: 9,
					from: "<b>carol</b>",
					ts: Date.UTC(2026, 0, 2),
					snippet: evil,
					highlights: [
						[1, 4],
						[41, 44],
					],
				},
				{
					room: "general",
					seq: 1,
					from: "bob",
					ts: Date.UTC(2026, 0, 1),
					snippet: "an img",
					highlights: [[3, 6]],
				},
			],
			cursor: "c1",
		});
		expect(all(".search-results .hit .hit-room").map((e) => e.textContent)).toEqual(["#dev", "#general"]);
		expect($(".search-results .snippet").textContent).toBe(evil);
		expect(all(".search-results mark").map((m) => m.textContent)).toEqual(["img", "img", "img"]);
		expect(document.querySelector("#search-panel img, #search-panel b")).toBeNull();
		expect(
			$(".search-results .hit-meta bdi:nth-of-type(2), .search-results .hit-meta > bdi").textContent,
		).toBe("<b>carol</b>");
		expect($("#search-status").textContent).toBe("2+ messages, newest first");
		// More: the same search with the cursor; its hits go below.
		sent.length = 0;
		(all("#search-panel button").find((b) => b.textContent === "More results") as HTMLButtonElement).click();
		expect(sent).toEqual([{ type: "search", ref: "search-2", query: "img", cursor: "c1", limit: 20 }]);
		chat.receive({
			type: "search",
			ref: "search-2",
			hits: [{ room: "dev", seq: 2, from: "bob", ts: 1, snippet: "old img", highlights: [[4, 7]] }],
		});
		expect(all(".search-results .snippet").map((e) => e.textContent)).toEqual([evil, "an img", "old img"]);
		expect(all("#search-panel button").some((b) => b.textContent === "More results")).toBe(false);
		expect($("#search-status").textContent).toBe("3 messages, newest first");
	});

	test("nothing found, too many searches, an answer to an older search: each said clearly", () => {
		const { chat, sent } = connected();
		submitSearch("nothing");
		chat.receive({ type: "search", ref: "search-1", hits: [] });
		expect($("#search-status").textContent).toBe("No messages match “nothing”.");
		submitSearch("fast");
		chat.receive({ type: "error", code: "rate_limited", message: "too many searches", ref: "search-2" });
		expect($("#search-status").textContent).toContain("Too many searches at once");
		sent.length = 0;
		(all("#search-status button").find((b) => b.textContent === "Try again") as HTMLButtonElement).click();
		expect(sent).toMatchObject([{ type: "search", ref: "search-3", query: "fast" }]);
		// A late answer to a search that was replaced is not shown.
		chat.receive({
			type: "search",
			ref: "search-2",
			hits: [{ room: "x", seq: 1, from: "a", ts: 1, snippet: "late", highlights: [] }],
		});
		expect(document.querySelector(".search-results")).toBeNull();
		chat.receive({ type: "error", code: "bad_frame", message: "field 'from' is too long", ref: "search-3" });
		expect($("#search-status").textContent).toBe("The server refused this search: field 'from' is too long");
	});

	test("opening a result: its room, the message highlighted and focused, with its neighbours", () => {
		const { chat, sent } = connected();
		submitSearch("needle");
		chat.receive({
			type: "search",
			ref: "search-1",
			hits: [{ room: "dev", seq: 40, from: "bob", ts: 1, snippet: "needle", highlights: [[0, 6]] }],
		});
		sent.length = 0;
		($(".search-results .hit") as HTMLButtonElement).click();
		expect(document.querySelector("#search-panel")).toBeNull();
		expect($("#room-title").textContent).toBe("#dev");
		expect(sent).toEqual([{ type: "join", room: "dev" }]);
		chat.receive({
			type: "joined",
			room: "dev",
			members: ["alice", "bob"],
			messages: Array.from({ length: 50 }, (_, i) => message("dev", 151 + i)),
			more: true,
		});
		expect(sent.at(-1)).toEqual({ type: "history", room: "dev", around: 40, limit: 50 });
		chat.receive({
			type: "history",
			room: "dev",
			messages: Array.from({ length: 50 }, (_, i) =>
				message("dev", 15 + i, i === 25 ? "the needle" : undefined),
			),
			more: true,
			newer: true,
		});
		expect($("#messages li.found .text").textContent).toBe("the needle");
		expect(document.activeElement).toBe($("#messages li.found"));
		expect(all("#messages li.message").length).toBe(50);
		expect($("#messages li.newer").textContent).toBe("Loading newer messages…");
		expect(sent.at(-1)).toEqual({ type: "history", room: "dev", after: 64, limit: 100 });
		// "Jump to newest" goes to the live end the join gave, at once.
		(all("button").find((b) => b.textContent?.startsWith("Jump to newest")) as HTMLButtonElement).click();
		expect(all("#messages li.message").map((li) => Number(li.dataset.seq))).toEqual(
			Array.from({ length: 50 }, (_, i) => 151 + i),
		);
		expect(document.querySelector("#messages li.newer")).toBeNull();
	});
});

describe("opening a result in the model", () => {
	test("a result in the room's shown part: no request, just the highlight", () => {
		const { chat, sent } = connected(false);
		chat.openAt("general", 1);
		expect(sent).toEqual([]);
		expect(chat.rooms.get("general")?.focus).toBe(1);
	});

	test("a result just before what is shown joins on to it: one run, no hole", () => {
		const { chat, sent } = connected(false);
		chat.receive({ type: "history", room: "general", messages: [], more: false }); // nothing asked: ignored
		const r = chat.rooms.get("general");
		if (!r) throw new Error("no room");
		r.messages = [message("general", 60), message("general", 61)];
		r.more = true;
		chat.openAt("general", 40);
		expect(sent).toEqual([{ type: "history", room: "general", around: 40, limit: 50 }]);
		chat.receive({
			type: "history",
			room: "general",
			messages: Array.from({ length: 45 }, (_, i) => message("general", 15 + i)),
			more: true,
			newer: true,
		});
		expect(r.messages.map((m) => m.seq)).toEqual(Array.from({ length: 47 }, (_, i) => 15 + i));
		expect(r.newer).toBe(false);
	});

	test("writing while reading an old part jumps to the live end, with what arrived meanwhile", () => {
		const { chat } = connected(false);
		chat.openAt("general", 1);
		const r = chat.rooms.get("general");
		if (!r) throw new Error("no room");
		r.messages = Array.from({ length: 5 }, (_, i) => message("general", 100 + i));
		chat.openAt("general", 3);
		chat.receive({
			type: "history",
			room: "general",
			messages: [1, 2, 3, 4, 5].map((s) => message("general", s)),
			more: false,
			newer: true,
		});
		chat.receive(message("general", 105));
		expect(r.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
		chat.send("back to now");
		expect(r.messages.map((m) => m.seq)).toEqual([100, 101, 102, 103, 104, 105]);
		expect(r.newer).toBe(false);
		expect(r.pending.map((p) => p.text)).toEqual(["back to now"]);
	});

	test("a live message sent before the last page's answer, but stored after it was read, is kept", () => {
		const { chat, sent } = connected(false);
		chat.openAt("general", 1);
		const r = chat.rooms.get("general");
		if (!r) throw new Error("no room");
		r.messages = Array.from({ length: 5 }, (_, i) => message("general", 100 + i));
		chat.openAt("general", 3);
		chat.receive({
			type: "history",
			room: "general",
			messages: [1, 2, 3, 4, 5].map((s) => message("general", s)),
			more: false,
			newer: true,
		});
		expect(sent.at(-1)).toEqual({ type: "history", room: "general", after: 5, limit: 100 });
		// The server reads 6..104, then 105 is stored and goes out live before that answer does.
		chat.receive(message("general", 105));
		chat.receive({
			type: "history",
			room: "general",
			messages: Array.from({ length: 99 }, (_, i) => message("general", 6 + i)),
			more: true,
			newer: false,
		});
		expect(r.messages.map((m) => m.seq)).toEqual(Array.from({ length: 105 }, (_, i) => 1 + i));
		expect(r.newer).toBe(false);
		chat.receive(message("general", 106));
		expect(r.messages.at(-1)?.seq).toBe(106);
	});

	test("property: whatever the order of replies, live messages and scrolling, the room is never holed or doubled, and ends whole", () => {
		const step = fc.constantFrom("compute", "send", "store", "deliver", "scroll", "deliver", "deliver");
		fc.assert(
			fc.property(
				fc.integer({ min: 1, max: 400 }),
				fc.double({ min: 0, max: 1, noNaN: true }),
				fc.array(step, { maxLength: 400 }),
				(initial, where, steps) => {
					const { chat, sent } = connected(false);
					const store: Message[] = Array.from({ length: initial }, (_, i) => message("dev", i + 1));
					const target = 1 + Math.floor(where * (initial - 1));
					let joined = false;
					const computed: object[] = [];
					const outgoing: object[] = [];
					let read = 0;
					const compute = () => {
						const f = sent[read];
						if (!f) return;
						read++;
						if (!("room" in f) || f.room !== "dev") return;
						if (f.type === "join") {
							// The server subscribes and reads in one step: later messages come live, after it.
							joined = true;
							outgoing.push({
								type: "joined",
								room: "dev",
								members: ["alice"],
								messages: store.slice(-50),
								more: store.length > 50,
							});
						} else if (f.type === "history" && f.around !== undefined) {
							const older = store.filter((m) => m.seq <= (f.around as number));
							const newer = store.filter((m) => m.seq > (f.around as number));
							const head = older.slice(-Math.ceil(f.limit / 2));
							const tail = newer.slice(0, Math.floor(f.limit / 2));
							computed.push({
								type: "history",
								room: "dev",
								messages: [...head, ...tail],
								more: older.length > head.length,
								newer: newer.length > tail.length,
							});
						} else if (f.type === "history" && f.after !== undefined) {
							const newer = store.filter((m) => m.seq > (f.after as number));
							computed.push({
								type: "history",
								room: "dev",
								messages: newer.slice(0, f.limit),
								more: true,
								newer: newer.length > f.limit,
							});
						}
					};
					const check = () => {
						const r = chat.rooms.get("dev");
						if (!r) return;
						const seqs = r.messages.map((m) => m.seq);
						for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] as number) + 1);
						const held = r.held.map((m) => m.seq);
						for (let i = 1; i < held.length; i++) expect(held[i]).toBe((held[i - 1] as number) + 1);
					};
					const act = (s: string) => {
						if (s === "compute") compute();
						else if (s === "send") {
							const next = computed.shift();
							if (next) outgoing.push(next);
						} else if (s === "store") {
							const m = message("dev", store.length + 1);
							store.push(m);
							if (joined) outgoing.push(m);
						} else if (s === "deliver") {
							const next = outgoing.shift();
							if (next) chat.receive(next as Message);
							check();
						} else chat.loadNewer("dev");
					};
					chat.openAt("dev", target);
					for (const s of steps) act(s);
					// Then everything settles and the reader scrolls all the way down.
					for (
						let i = 0;
						i < 10_000 &&
						(read < sent.length || computed.length || outgoing.length || chat.rooms.get("dev")?.newer);
						i++
					) {
						if (read < sent.length) compute();
						else if (computed.length) act("send");
						else if (outgoing.length) act("deliver");
						else chat.loadNewer("dev");
					}
					const r = chat.rooms.get("dev");
					if (!r) throw new Error("no room");
					expect(r.newer).toBe(false);
					const seqs = r.messages.map((m) => m.seq);
					expect(seqs).toContain(target);
					expect(seqs.at(-1)).toBe(store.length);
					expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i));
					chat.close();
				},
			),
			{ numRuns: 300 },
		);
	});
});
