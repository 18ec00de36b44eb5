// The page under happy-dom: what each frame draws, that user text stays text, pending sends, typing expiry, and reconnecting to a real server.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Chat, reconnectDelay } from "../client/chat.ts";
import { View } from "../client/view.tsx";
import type { Message } from "../protocol.ts";
import { chatter, ROOT, startServer, tempDir } from "./helpers.ts";
import { until } from "./until.ts";

const BODY =
	readFileSync(join(ROOT, "client", "index.html"), "utf8").match(/<body>([\s\S]*)<\/body>/)?.[1] ?? "";

class MemoryStorage {
	private readonly items = new Map<string, string>();
	getItem(key: string): string | null {
		return this.items.get(key) ?? null;
	}
	setItem(key: string, value: string): void {
		this.items.set(key, value);
	}
}

let chats: Chat[] = [];

beforeEach(() => {
	// The page's own markup is the fixture.
	document.body.innerHTML = BODY;
});
afterEach(() => {
	for (const c of chats) c.close();
	chats = [];
});

function page(options: Partial<ConstructorParameters<typeof Chat>[0]> = {}) {
	const storage = options.storage ?? new MemoryStorage();
	const chat = new Chat({ url: "ws://127.0.0.1:1/ws", ...options, storage });
	chats.push(chat);
	new View(chat, document, { schedule: (draw) => draw(), storage });
	return chat;
}

const $ = (selector: string) => document.querySelector(selector) as HTMLElement;
const texts = (selector: string) => [...document.querySelectorAll(selector)].map((e) => e.textContent ?? "");

function message(seq: number, from: string, text: string, id?: string): Message {
	return {
		type: "message",
		room: "general",
		seq,
		from,
		text,
		ts: Date.UTC(2026, 0, 1, 12, seq),
		...(id ? { id } : {}),
	};
}

/** Waits until `check` holds; for things that happen on a timer or over a socket. */

/** A chat that was welcomed as alice and joined #general with two messages. */
function joinedAsAlice(): Chat {
	const chat = page();
	chat.open("general");
	chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
	chat.receive({
		type: "joined",
		room: "general",
		members: ["bob", "alice"],
		messages: [message(1, "bob", "hello"), message(2, "alice", "hi bob")],
		more: true,
	});
	return chat;
}

describe("each server frame on the page", () => {
	test("welcome: the name form goes away and the status names the person", () => {
		const chat = page();
		(chat as unknown as { setStatus: (s: object) => void }).setStatus({ kind: "connected" });
		expect($("#hello-name")).not.toBeNull();
		expect(document.querySelector("#messages")).toBeNull();
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		expect(document.querySelector("#hello")).toBeNull();
		expect($("#status").textContent).toBe("Connected as alice");
	});

	test("joined: messages with sender and time, own ones marked, members listed", () => {
		joinedAsAlice();
		expect($("#room-title").textContent).toBe("#general");
		expect(texts("#messages .message .from")).toEqual(["bob", "alice"]);
		expect(texts("#messages .message .text")).toEqual(["hello", "hi bob"]);
		expect($("#messages .message time").getAttribute("datetime")).toBe("2026-01-01T12:01:00.000Z");
		expect(
			[...document.querySelectorAll("#messages .message")].map((li) => li.classList.contains("mine")),
		).toEqual([false, true]);
		expect(texts("#members li")).toEqual(["alice (you)", "bob"]);
		expect($("#member-count").textContent).toBe("2");
	});

	test("message: appended in order; a message for another room counts as unread there", () => {
		const chat = joinedAsAlice();
		chat.open("dev");
		chat.receive({ type: "joined", room: "dev", members: ["alice"], messages: [], more: false });
		chat.open("general");
		chat.receive(message(3, "bob", "third"));
		chat.receive({ ...message(1, "carol", "in dev"), room: "dev" });
		expect(texts("#messages .message .text")).toEqual(["hello", "hi bob", "third"]);
		expect(texts("#rooms .room")).toEqual(["#general", "#dev 1"]);
		chat.open("dev");
		expect(texts("#rooms .room")).toEqual(["#general", "#dev"]);
		expect(texts("#messages .message .text")).toEqual(["in dev"]);
	});

	test("presence: the member list changes and one line says what changed between two messages", () => {
		const chat = joinedAsAlice();
		chat.receive({ type: "presence", room: "general", name: "carol", online: true });
		expect(texts("#members li")).toEqual(["alice (you)", "bob", "carol"]);
		chat.receive({ type: "presence", room: "general", name: "bob", online: false });
		expect(texts("#members li")).toEqual(["alice (you)", "carol"]);
		expect(texts("#messages .system")).toEqual(["carol joined · bob left"]);
		chat.receive(message(3, "carol", "hi all"));
		for (const name of ["dan", "erin", "finn", "gus"])
			chat.receive({ type: "presence", room: "general", name, online: true });
		// Someone who flaps between two messages shows no change at all.
		chat.receive({ type: "presence", room: "general", name: "carol", online: false });
		chat.receive({ type: "presence", room: "general", name: "carol", online: true });
		expect(texts("#messages .system")).toEqual(["carol joined · bob left", "4 people joined"]);
		expect(texts("#members li")).toEqual(["alice (you)", "carol", "dan", "erin", "finn", "gus"]);
	});

	test("typing: shown for the room, and gone a few seconds after the last one", async () => {
		const chat = joinedAsAlice();
		chat.receive({ type: "typing", room: "general", name: "bob" });
		expect($("#typing").textContent).toBe("bob is typing…");
		chat.receive({ type: "typing", room: "general", name: "carol" });
		expect($("#typing").textContent).toBe("bob and carol are typing…");
		chat.receive(message(3, "bob", "done typing"));
		expect($("#typing").textContent).toBe("carol is typing…");
		await until(() => $("#typing").textContent === "", 6000);
		expect(chat.typingNow("general")).toEqual([]);
	});

	test("history: older messages go on top, the order stays ascending", () => {
		const chat = page();
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		chat.receive({
			type: "joined",
			room: "general",
			members: ["alice"],
			messages: [message(5, "bob", "five"), message(6, "bob", "six")],
			more: true,
		});
		chat.receive({
			type: "history",
			room: "general",
			messages: [message(3, "bob", "three"), message(4, "bob", "four")],
			more: true,
		});
		expect(texts("#messages .message .text")).toEqual(["three", "four", "five", "six"]);
		chat.receive({
			type: "history",
			room: "general",
			messages: [message(1, "bob", "one"), message(2, "bob", "two")],
			more: false,
		});
		expect(texts("#messages .message .text")).toEqual(["one", "two", "three", "four", "five", "six"]);
		expect(chat.room("general").more).toBe(false);
	});

	test("error: a taken name is explained on the name form; other errors by the text box", () => {
		const chat = page();
		chat.receive({ type: "error", code: "name_taken", message: "the name alice is in use" });
		expect($("#hello-error").textContent).toBe("Someone is using that name right now. Pick another one.");
		chat.receive({ type: "welcome", name: "alice2", version: "1.0.0", epoch: "e1" });
		chat.receive({ type: "error", code: "not_joined", message: "join x first" });
		expect($("#compose-error").textContent).toBe("join x first");
	});

	test("left and pong change nothing on the page", () => {
		const chat = joinedAsAlice();
		const before = document.body.innerHTML;
		chat.receive({ type: "pong" });
		chat.receive({ type: "left", room: "general" });
		expect(document.body.innerHTML).toBe(before);
	});
});

describe("user text", () => {
	test("markup in a message is shown as text and creates no element", () => {
		const chat = joinedAsAlice();
		chat.receive(message(3, "mallory", '<img src=x onerror="alert(1)"><script>alert(2)</script>'));
		chat.receive(message(4, "<b>mallory</b>", "<a href='javascript:alert(3)'>click</a>"));
		expect(texts("#messages .message .text").slice(2)).toEqual([
			'<img src=x onerror="alert(1)"><script>alert(2)</script>',
			"<a href='javascript:alert(3)'>click</a>",
		]);
		expect(texts("#messages .from").at(-1)).toBe("<b>mallory</b>");
		expect(
			document.querySelectorAll("#messages img, #messages script, #messages b, #messages a"),
		).toHaveLength(0);
	});

	test("http(s) URLs become links that open safely; other schemes stay text", () => {
		const chat = joinedAsAlice();
		chat.receive(
			message(3, "bob", "see https://example.com/a?b=1, or javascript:alert(1) and http://x.test."),
		);
		const links = [...document.querySelectorAll("#messages a")] as HTMLAnchorElement[];
		expect(links.map((a) => a.href)).toEqual(["https://example.com/a?b=1", "http://x.test/"]);
		expect(links.map((a) => a.textContent)).toEqual(["https://example.com/a?b=1", "http://x.test"]);
		expect(links.every((a) => a.rel === "noopener noreferrer" && a.target === "_blank")).toBe(true);
		expect(texts("#messages .message .text").at(-1)).toBe(
			"see https://example.com/a?b=1, or javascript:alert(1) and http://x.test.",
		);
	});
});

describe("writing", () => {
	test("a sent message shows at once as pending and turns final when its echo arrives", () => {
		const chat = joinedAsAlice();
		const box = $("#text") as HTMLTextAreaElement;
		box.value = "on its way";
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
		expect(box.value).toBe("");
		const pending = $("#messages li.pending");
		expect(pending.querySelector(".text")?.textContent).toBe("on its way");
		expect(pending.querySelector(".state")?.textContent).toBe("sending…");
		const id = chat.room("general").pending[0]?.id as string;
		expect(pending.dataset.id).toBe(id);
		chat.receive(message(3, "alice", "on its way", id));
		expect(document.querySelectorAll("#messages li.pending")).toHaveLength(0);
		const final = $(`#messages li[data-id="${id}"]`);
		expect(final.dataset.seq).toBe("3");
		expect(final.classList.contains("mine")).toBe(true);
	});

	test("Shift+Enter does not send; a refused message gives its text back", () => {
		const chat = joinedAsAlice();
		const box = $("#text") as HTMLTextAreaElement;
		box.value = "line one";
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true }));
		expect(box.value).toBe("line one");
		expect(chat.room("general").pending).toHaveLength(0);
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
		const id = chat.room("general").pending[0]?.id;
		chat.receive({ type: "error", code: "rate_limited", message: "too many frames; slow down", ref: id });
		expect(box.value).toBe("line one");
		expect($("#compose-error").textContent).toBe("too many frames; slow down");
		expect(document.querySelectorAll("#messages li.pending")).toHaveLength(0);
	});

	test("server_error (nothing stored) keeps the message pending, to be sent again with the same id", () => {
		const chat = joinedAsAlice();
		const box = $("#text") as HTMLTextAreaElement;
		box.value = "while the database is away";
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
		const id = chat.room("general").pending[0]?.id;
		chat.receive({
			type: "error",
			code: "server_error",
			message: "the server could not do that; try again",
			ref: id,
		});
		expect(chat.room("general").pending.map((p) => p.id)).toEqual([id as string]);
		expect(texts("#messages li.pending .text")).toEqual(["while the database is away"]);
		expect(box.value).toBe("");
		chat.receive(message(3, "alice", "while the database is away", id));
		expect(document.querySelectorAll("#messages li.pending")).toHaveLength(0);
	});

	test("a message too long to send stays in the box", () => {
		joinedAsAlice();
		const box = $("#text") as HTMLTextAreaElement;
		box.value = "x".repeat(4001);
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
		expect(box.value).toHaveLength(4001);
		expect($("#compose-error").textContent).toContain("too long");
	});
});

describe("reconnecting", () => {
	test("the delay doubles from half a second with jitter, capped at 30 s", () => {
		const low = [0, 1, 2, 3, 4, 5, 6, 7, 10].map((a) => reconnectDelay(a, () => 0));
		const high = [0, 1, 2, 3, 4, 5, 6, 7, 10].map((a) => reconnectDelay(a, () => 1));
		expect(high).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
		expect(low).toEqual(high.map((h) => h / 2));
		const spread = new Set(Array.from({ length: 50 }, () => reconnectDelay(3)));
		expect(spread.size).toBeGreaterThan(10);
	});

	test("after the server restarts: reconnecting shown, rooms resumed with since, pending resent once", async () => {
		using dir = tempDir();
		const dbPath = join(dir.path, "chat.db");
		const first = startServer({ dbPath });
		const port = first.server.port as number;
		const bob = await chatter(first.ws, "bob", "general");
		const chat = page({ url: first.ws, delay: () => 100 });
		chat.name = "alice";
		chat.open("general");
		chat.connect();
		await until(() => chat.room("general").joined);
		bob.send({ type: "send", room: "general", id: "b1", text: "before" });
		await until(() => texts("#messages .message .text").includes("before"));

		await first.stop();
		await until(() => chat.status.kind === "reconnecting");
		expect($("#status").textContent).toMatch(/^Reconnecting in \d+ s…$/);
		chat.send("written while away");
		expect(texts("#messages li.pending .text")).toEqual(["written while away"]);

		// The server comes back on the same file and port, and someone talks before alice is back.
		await using second = startServer({ dbPath, config: { port } });
		const carol = await chatter(second.ws, "carol", "general");
		carol.send({ type: "send", room: "general", id: "c1", text: "while you were away" });
		await carol.expect("message");
		await until(() => chat.status.kind === "connected" && chat.room("general").pending.length === 0, 10_000);
		expect($("#status").textContent).toBe("Connected as alice");
		await until(() => texts("#messages .message .text").length === 3);
		const shown = texts("#messages .message .text");
		// Each once, in the server's order (alice may be back before or after carol speaks).
		expect([...shown].sort()).toEqual(["before", "while you were away", "written while away"]);
		expect(
			[...document.querySelectorAll("#messages .message")].map((li) => (li as HTMLElement).dataset.seq),
		).toEqual(["1", "2", "3"]);
		// The outage was told in the header, once, not as lines in the timeline.
		expect(texts("#messages .system").filter((t) => /connect/i.test(t))).toEqual([]);
		carol.send({ type: "history", room: "general" });
		expect((await carol.expect("history")).messages.map((m) => m.text)).toEqual(shown);
	});

	test("offline: the status says so, and the browser's online event reconnects at once", async () => {
		using dir = tempDir();
		const dbPath = join(dir.path, "chat.db");
		const first = startServer({ dbPath });
		const port = first.server.port as number;
		let online = true;
		// A minute between attempts: only the online event can bring it back within this test.
		const chat = page({ url: first.ws, delay: () => 60_000, isOnline: () => online });
		chat.name = "alice";
		chat.open("general");
		chat.connect();
		await until(() => chat.room("general").joined);
		online = false;
		await first.stop();
		await until(() => chat.status.kind === "offline");
		expect($("#status").textContent).toBe("Offline: will reconnect when the network is back");
		await using second = startServer({ dbPath, config: { port } });
		expect(second.server.port).toBe(port);
		online = true;
		chat.reconnectNow();
		await until(() => chat.status.kind === "connected" && chat.room("general").joined);
		expect($("#status").textContent).toBe("Connected as alice");
	});

	test("after a reconnect, a name still held by the old connection is asked for again, not given up", async () => {
		using dir = tempDir();
		const dbPath = join(dir.path, "chat.db");
		const first = startServer({ dbPath });
		const port = first.server.port as number;
		const chat = page({ url: first.ws, delay: () => 100 });
		chat.name = "alice";
		chat.open("general");
		chat.connect();
		await until(() => chat.status.kind === "connected");
		await first.stop();
		await until(() => chat.status.kind === "reconnecting");
		await using second = startServer({ dbPath, config: { port } });
		// Someone holds "alice" on the new server, as a not-yet-noticed old connection would.
		const holder = await chatter(second.ws, "alice");
		await until(() => chat.status.kind === "reclaiming");
		expect($("#status").textContent).toMatch(
			/^Waiting for the server to let go of the name alice from your previous connection \(up to \d+ s\)…$/,
		);
		expect(document.querySelector("#hello")).toBeNull();
		expect(chat.name).toBe("alice");
		holder.close();
		await until(() => chat.status.kind === "connected" && chat.room("general").joined, 10_000);
		expect($("#status").textContent).toBe("Connected as alice");
	});

	test("a new epoch clears the rooms and joins them afresh", () => {
		const chat = joinedAsAlice();
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e2" });
		expect(chat.room("general").messages).toEqual([]);
		chat.receive({
			type: "joined",
			room: "general",
			members: ["alice"],
			messages: [message(1, "zed", "new world")],
			more: false,
		});
		expect(texts("#messages .message .text")).toEqual(["new world"]);
	});
});

/** A WebSocket server that welcomes anyone and answers nothing else: a connection whose far end has gone quiet. */
function silentServer() {
	let connections = 0;
	const server = Bun.serve({
		port: 0,
		hostname: "127.0.0.1",
		fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
		websocket: {
			open: () => {
				connections++;
			},
			message: (ws, data) => {
				const frame = JSON.parse(String(data));
				if (frame.type === "hello")
					ws.send(JSON.stringify({ type: "welcome", name: frame.name, version: "1.0.0", epoch: "e1" }));
			},
		},
	});
	return {
		url: `ws://127.0.0.1:${server.port}/ws`,
		connections: () => connections,
		[Symbol.dispose]: () => server.stop(true),
	};
}

describe("the page's own heartbeat", () => {
	test("a ping without an answer drops the connection and reconnects", async () => {
		using quiet = silentServer();
		const chat = page({ url: quiet.url, delay: () => 50, pingEveryMs: 100, pongWithinMs: 200 });
		chat.name = "alice";
		chat.connect();
		await until(() => chat.status.kind === "connected");
		// The socket stays open, but nothing answers: within a ping and a wait the page gives up on it.
		await until(() => quiet.connections() >= 2, 3000);
		expect(["connecting", "connected", "reconnecting"]).toContain(chat.status.kind);
	});

	test("a server that answers pings keeps the one connection", async () => {
		await using server = startServer();
		const chat = page({ url: server.ws, pingEveryMs: 50, pongWithinMs: 1000 });
		chat.name = "alice";
		chat.open("general");
		chat.connect();
		await until(() => chat.room("general").joined);
		await Bun.sleep(400);
		expect(chat.status.kind).toBe("connected");
		expect(server.hub.connectionCount).toBe(1);
	});

	test("offline shows at once, even while the socket still looks open", async () => {
		await using server = startServer();
		const chat = page({ url: server.ws });
		chat.name = "alice";
		chat.open("general");
		chat.connect();
		await until(() => chat.room("general").joined);
		chat.wentOffline();
		expect($("#status").textContent).toBe("Offline: will reconnect when the network is back");
		// The socket answered the ping the offline event sent: it works, so the page says so.
		await until(() => chat.status.kind === "connected");
	});
});

describe("a refused connection says why", () => {
	test("the server's sentence is shown instead of a countdown, and retried at its retryAfter", async () => {
		const message = "This address (http://10.0.0.5:3000) is not allowed by the server's --origin setting.";
		let asked = 0;
		const chat = page({
			url: "ws://127.0.0.1:1/ws",
			checkUpgrade: async () => {
				asked++;
				return { ok: false, message, retryAfter: 60 };
			},
		});
		chat.connect();
		await until(() => chat.status.kind === "refused");
		expect($("#status").textContent).toMatch(/^This address .* --origin setting\. Trying again in \d+ s\.$/);
		expect(asked).toBe(1);
		expect($("#announcer").textContent).toBe(message);
	});

	test("a server without the check (404) or a failed check means an ordinary reconnect", async () => {
		for (const check of [async () => undefined, async () => Promise.reject(new Error("offline"))]) {
			const chat = page({ url: "ws://127.0.0.1:1/ws", delay: () => 60_000, checkUpgrade: check });
			chat.connect();
			await until(() => chat.status.kind === "reconnecting");
			expect($("#status").textContent).toMatch(/^Reconnecting in \d+ s…$/);
			chat.close();
		}
	});

	test("checkUpgrade reads a real 404 as 'no answer'", async () => {
		const { checkUpgrade } = await import("../client/upgrade-check.ts");
		await using server = startServer();
		const answer = await checkUpgrade(server.ws, "http://example.test");
		// Until the server has the route, the page must not invent a reason.
		const route = await fetch(`${server.url}/api/upgrade-check?origin=x`);
		if (route.status === 404) expect(answer).toBeUndefined();
		else expect(typeof answer?.ok).toBe("boolean");
	});
});

describe("unread and drafts", () => {
	test("messages missed while disconnected count as unread in their room", () => {
		const chat = joinedAsAlice();
		chat.open("dev");
		chat.receive({ type: "joined", room: "dev", members: ["alice"], messages: [], more: false });
		chat.receive({ ...message(1, "bob", "first in dev"), room: "dev" });
		chat.open("general");
		chat.markRead("dev");
		// Reconnect: dev resumes with since 1 and four messages arrive in `joined`.
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		chat.receive({
			type: "joined",
			room: "dev",
			members: ["alice", "bob"],
			messages: [2, 3, 4, 5].map((seq) => ({ ...message(seq, "bob", `missed ${seq}`), room: "dev" })),
			more: false,
		});
		expect(chat.room("dev").unread).toBe(4);
		expect(texts("#rooms .room")).toEqual(["#general", "#dev 4"]);
		expect(document.title).toBe("(4) #general · hubbub");
	});

	test("a mention counts in its own badge and is highlighted", () => {
		const chat = joinedAsAlice();
		chat.open("dev");
		chat.receive({ type: "joined", room: "dev", members: ["alice"], messages: [], more: false });
		chat.open("general");
		chat.receive({ ...message(1, "bob", "@alice look"), room: "dev" });
		chat.receive({ ...message(2, "bob", "@alicette is someone else"), room: "dev" });
		expect(chat.room("dev").mentions).toBe(1);
		expect($("#rooms .unread.mention").textContent).toBe("2");
		expect($("#rooms .unread.mention").closest("button")?.getAttribute("aria-label")).toBe(
			"#dev, 2 unread, 1 mentioning you",
		);
		chat.open("dev");
		expect(texts("#messages .mention .text")).toEqual(["@alice look"]);
	});

	test("each room keeps its own draft, also across a reload", () => {
		const storage = new MemoryStorage();
		const chat = page({ storage });
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		const type = (text: string) => {
			const box = $("#text") as HTMLTextAreaElement;
			box.value = text;
			box.dispatchEvent(new Event("input", { bubbles: true }));
		};
		type("for general");
		chat.open("ops");
		expect(($("#text") as HTMLTextAreaElement).value).toBe("");
		type("for ops");
		chat.open("general");
		expect(($("#text") as HTMLTextAreaElement).value).toBe("for general");
		// A reload: a new page on the same storage.
		document.body.innerHTML = BODY;
		const again = new Chat({ url: "ws://127.0.0.1:1/ws", storage });
		chats.push(again);
		new View(again, document, { schedule: (draw) => draw(), storage });
		again.open("ops");
		again.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		expect(($("#text") as HTMLTextAreaElement).value).toBe("for ops");
	});
});

describe("typing", () => {
	test("fast typing between two draws loses no character", async () => {
		const storage = new MemoryStorage();
		const chat = new Chat({ url: "ws://127.0.0.1:1/ws", storage });
		chats.push(chat);
		// Draws come later, as on the page (once per frame).
		new View(chat, document, { schedule: (draw) => setTimeout(draw, 20), storage });
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		await until(() => document.querySelector("#text") !== null);
		const box = $("#text") as HTMLTextAreaElement;
		// Each key adds to what the box holds, as a keyboard does.
		for (const key of "hello") {
			box.value += key;
			box.dispatchEvent(new Event("input", { bubbles: true }));
			await Bun.sleep(1);
		}
		await Bun.sleep(60);
		expect(box.value).toBe("hello");
	});
});

/** A scripted server: welcomes, and answers each join as `answer` says (by room and attempt). */
function scriptedServer(answer: (room: string, attempt: number) => object) {
	const joins: string[] = [];
	let outstanding = 0;
	let overlapped = false;
	const attempts = new Map<string, number>();
	const server = Bun.serve({
		port: 0,
		hostname: "127.0.0.1",
		fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
		websocket: {
			message: (ws, data) => {
				const frame = JSON.parse(String(data));
				if (frame.type === "hello")
					ws.send(JSON.stringify({ type: "welcome", name: frame.name, version: "1.0.0", epoch: "e1" }));
				if (frame.type !== "join") return;
				joins.push(frame.room);
				if (++outstanding > 1) overlapped = true;
				const attempt = attempts.get(frame.room) ?? 0;
				attempts.set(frame.room, attempt + 1);
				// Answered a moment later, as a store read would be.
				setTimeout(() => {
					outstanding--;
					ws.send(JSON.stringify(answer(frame.room, attempt)));
				}, 20);
			},
		},
	});
	return {
		url: `ws://127.0.0.1:${server.port}/ws`,
		joins,
		overlapped: () => overlapped,
		[Symbol.dispose]: () => server.stop(true),
	};
}

describe("joining rooms", () => {
	const joined = (room: string) => ({ type: "joined", room, members: ["alice"], messages: [], more: false });

	test("after a reconnect the rooms are joined one at a time, and a refused join is asked again", async () => {
		using server = scriptedServer((room, attempt) =>
			room === "ops" && attempt === 0
				? // An older server names no room: the page knows it from the join it has out.
					{ type: "error", code: "server_error", message: "the server could not do that; try again" }
				: room === "dev" && attempt === 0
					? { type: "error", code: "rate_limited", message: "slow down", room: "dev" }
					: joined(room),
		);
		const storage = new MemoryStorage();
		storage.setItem("hubbub.rooms", JSON.stringify(["general", "ops", "dev", "music"]));
		const chat = page({ url: server.url, storage, delay: () => 50 });
		chat.name = "alice";
		chat.connect();
		await until(() => [...chat.rooms.values()].every((r) => r.joined));
		expect(server.overlapped()).toBe(false);
		expect(server.joins).toEqual(["general", "ops", "dev", "music", "ops", "dev"]);
		expect($("#compose-error")?.textContent ?? "").toBe("");
	});

	test("a join refused for good is said once, and the other rooms are still joined", async () => {
		using server = scriptedServer((room) =>
			room === "r5"
				? { type: "error", code: "too_many_rooms", message: "you are in too many rooms", room }
				: joined(room),
		);
		const storage = new MemoryStorage();
		storage.setItem("hubbub.rooms", JSON.stringify(["general", "r5", "r6"]));
		const chat = page({ url: server.url, storage, delay: () => 50 });
		chat.name = "alice";
		chat.connect();
		await until(() => chat.room("r6").joined);
		expect(chat.room("r5").joined).toBe(false);
		expect(server.joins).toEqual(["general", "r5", "r6"]);
		expect($("#compose-error").textContent).toBe("you are in too many rooms");
	});
});

describe("formatting (Markdown with raw HTML off)", () => {
	const html = (text: string) => {
		const chat = joinedAsAlice();
		chat.receive(message(3, "bob", text));
		return document.querySelector("#messages li.message:last-child .text") as HTMLElement;
	};

	test("bold, italic, strikethrough, code, code blocks, quotes, lists and links", () => {
		const t = html(
			"**b** *i* ~~s~~ `c`\n\n```\nx = 1\n```\n\n> quoted\n\n- one\n- two\n\n[site](https://example.com)",
		);
		expect(t.querySelector("strong")?.textContent).toBe("b");
		expect(t.querySelector("em")?.textContent).toBe("i");
		expect(t.querySelector("s")?.textContent).toBe("s");
		expect(t.querySelector("p code")?.textContent).toBe("c");
		expect(t.querySelector("pre code")?.textContent).toBe("x = 1\n");
		expect(t.querySelector("blockquote")?.textContent?.trim()).toBe("quoted");
		expect([...t.querySelectorAll("li")].map((li) => li.textContent)).toEqual(["one", "two"]);
		const a = t.querySelector("a") as HTMLAnchorElement;
		expect([a.href, a.rel, a.target]).toEqual(["https://example.com/", "noopener noreferrer", "_blank"]);
	});

	test.each([
		["a javascript: link", "[click](javascript:alert(1))"],
		["a javascript: link with entities", "[click](jav&#x61;script:alert(1))"],
		["a vbscript: link", "[click](vbscript:msgbox(1))"],
		["a data: URL", "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"],
		["an image with a data: URL", "![x](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)"],
		["an autolink to javascript:", "<javascript:alert(1)>"],
		["raw HTML", '<img src=x onerror="alert(1)"><script>alert(2)</script><iframe src="https://x"></iframe>'],
		["nested markup", "**<b>bold</b> _<i onclick=alert(1)>x</i>_**"],
		["attribute injection through a link title", '[x](https://example.com "a\\" onmouseover=\\"alert(1)")'],
		["attribute injection through a URL", '[x](https://example.com/"onmouseover="alert(1))'],
	])("%s creates no script, handler, frame or unsafe link", (_, text) => {
		const t = html(text);
		expect(t.querySelectorAll("script, img, iframe, object, embed, svg, style, b, i")).toHaveLength(0);
		for (const el of t.querySelectorAll("*")) {
			for (const attr of el.attributes) expect(attr.name.startsWith("on")).toBe(false);
		}
		for (const a of t.querySelectorAll("a"))
			expect((a as HTMLAnchorElement).href).toMatch(/^(https?|mailto):/);
		// Whatever was refused is still there to read, as text.
		expect(t.textContent?.length).toBeGreaterThan(0);
	});

	test("a message of only emoji is shown larger; emoji within text are not", () => {
		joinedAsAlice();
		const chat = joinedAsAlice();
		chat.receive(message(3, "bob", "🎉👍🏽"));
		chat.receive(message(4, "bob", "nice 🎉"));
		const texts = [...document.querySelectorAll("#messages .text")].slice(-2);
		expect(texts.map((t) => t.classList.contains("emoji-only"))).toEqual([true, false]);
	});

	test("names and message text are isolated for right-to-left scripts", () => {
		const chat = joinedAsAlice();
		chat.receive(message(3, "\u202enimda", "שלום עולם"));
		const row = document.querySelector("#messages li.message:last-child") as HTMLElement;
		expect(row.querySelector(".from bdi")?.textContent).toBe("\u202enimda");
		expect(row.querySelector(".text")?.getAttribute("dir")).toBe("auto");
		expect($("#text").getAttribute("dir")).toBe("auto");
	});
});

describe("the timeline's shape", () => {
	test("one person's messages in a row share one name; a new day gets a separator; times have the full date", () => {
		const chat = page();
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		const at = (day: number, minute: number) => Date.UTC(2026, 0, day, 12, minute);
		const m = (seq: number, from: string, ts: number) => ({ ...message(seq, from, `m${seq}`), ts });
		chat.receive({
			type: "joined",
			room: "general",
			members: ["alice", "bob"],
			messages: [
				m(1, "bob", at(1, 0)),
				m(2, "bob", at(1, 1)),
				m(3, "carol", at(1, 2)),
				m(4, "carol", at(2, 0)),
			],
			more: false,
		});
		const rows = [...document.querySelectorAll("#messages > li")].map((li) =>
			li.classList.contains("day")
				? `day`
				: li.classList.contains("start")
					? "start"
					: `${li.querySelector(".from")?.textContent ?? "·"} ${li.querySelector(".text")?.textContent}`,
		);
		expect(rows).toEqual(["start", "day", "bob m1", "· m2", "carol m3", "day", "carol m4"]);
		expect($("#messages .start").textContent).toBe("This is the start of #general.");
		const time = $("#messages li.message time");
		expect(time.getAttribute("title")).toContain("2026");
		expect($("#messages li.message .avatar").dataset.initials).toBe("BO");
	});

	test("an empty room says so; leaving the last room shows no room instead of rejoining #general", () => {
		const chat = joinedAsAlice();
		chat.open("dev");
		chat.receive({ type: "joined", room: "dev", members: ["alice"], messages: [], more: false });
		expect($("#messages .start").textContent).toBe("This is the start of #dev. Say hello!");
		chat.leave("dev");
		chat.leave("general");
		expect([...chat.rooms.keys()]).toEqual([]);
		expect($("#room-title").textContent).toBe("No rooms");
	});

	test("the × leaves, and Undo brings the room back", () => {
		const chat = joinedAsAlice();
		chat.open("dev");
		($("#rooms li:nth-child(2) .leave") as HTMLButtonElement).click();
		expect([...chat.rooms.keys()]).toEqual(["general"]);
		expect($(".undo").textContent).toContain("Left #dev.");
		($(".undo button") as HTMLButtonElement).click();
		expect([...chat.rooms.keys()]).toEqual(["general", "dev"]);
		expect(chat.current).toBe("dev");
	});
});

describe("writing, round 2", () => {
	const typeInto = (text: string) => {
		const box = $("#text") as HTMLTextAreaElement;
		box.value = text;
		box.dispatchEvent(new Event("input", { bubbles: true }));
		return box;
	};

	test("a paste over the limit is kept and said; emoji count once, as the server counts", () => {
		const chat = joinedAsAlice();
		typeInto("😀".repeat(4000));
		expect($("#compose-count").textContent).toBe("4,000 of 4,000 characters");
		const box = typeInto("x".repeat(4012));
		expect($("#compose-count").textContent).toContain("Too long by 12 characters");
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
		expect(box.value).toHaveLength(4012);
		expect(chat.room("general").pending).toHaveLength(0);
	});

	test("sending a message lets the next keystroke say 'typing' again at once", () => {
		const chat = joinedAsAlice();
		const sent: string[] = [];
		(chat as unknown as { raw: (f: { type: string }) => boolean }).raw = (f) => {
			sent.push(f.type);
			return true;
		};
		chat.typing(10_000);
		chat.send("hi");
		chat.typing(10_500);
		expect(sent).toEqual(["typing", "send", "typing"]);
	});

	test("@ completes from the room's members", async () => {
		const chat = joinedAsAlice();
		chat.receive({ type: "presence", room: "general", name: "bobby", online: true });
		const box = typeInto("hi @bo");
		await Bun.sleep(0);
		expect(texts("#suggestions [role=option]")).toEqual(["@bob", "@bobby"]);
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
		await Bun.sleep(0);
		box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
		await Bun.sleep(0);
		expect(box.value).toBe("hi @bobby ");
		expect(chat.room("general").pending).toHaveLength(0);
		expect(document.querySelector("#suggestions")).toBeNull();
	});
});

describe("screen readers", () => {
	test("a long outage is announced once, not every second; a message as its sender and first 140 characters", async () => {
		const chat = joinedAsAlice();
		const heard: string[] = [];
		const observer = new MutationObserver(() => heard.push($("#announcer").textContent ?? ""));
		observer.observe($("#announcer"), { childList: true, subtree: true, characterData: true });
		chat.receive(message(3, "bob", "x".repeat(2000)));
		expect($("#announcer").textContent).toBe(`bob: ${"x".repeat(140)}…`);
		// Three reconnect attempts in a row.
		for (let i = 0; i < 3; i++) {
			(chat as unknown as { setStatus: (s: object) => void }).setStatus({
				kind: "reconnecting",
				at: Date.now() + 3000,
			});
			(chat as unknown as { setStatus: (s: object) => void }).setStatus({ kind: "connecting" });
		}
		await Bun.sleep(2100);
		observer.disconnect();
		expect(heard.filter((h) => h.startsWith("Connection lost"))).toHaveLength(1);
	});
});

describe("notifications", () => {
	test("asked for only with the button; a mention while hidden notifies unless the room is muted", () => {
		const shown: string[] = [];
		let permission: "default" | "granted" = "default";
		let asked = 0;
		const notifications = {
			permission: () => permission,
			request: async () => {
				asked++;
				permission = "granted";
			},
			show: (title: string, body: string) => shown.push(`${title}: ${body}`),
		};
		const chat = new Chat({ url: "ws://127.0.0.1:1/ws", storage: new MemoryStorage() });
		chats.push(chat);
		new View(chat, document, { schedule: (draw) => draw(), notifications });
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		chat.receive({ type: "joined", room: "general", members: ["alice"], messages: [], more: false });
		expect(asked).toBe(0);
		const button = [...document.querySelectorAll("button")].find(
			(b) => b.textContent === "Turn on notifications",
		);
		button?.click();
		expect(asked).toBe(1);
		Object.defineProperty(document, "hidden", { value: true, configurable: true });
		try {
			chat.setAttentive(false);
			chat.receive(message(1, "bob", "@alice are you there?"));
			chat.receive(message(2, "bob", "no mention, no notification"));
			expect(shown).toEqual(["bob in #general: bob: @alice are you there?"]);
			chat.receive(message(3, "bob", "@alice again"));
			expect(shown).toHaveLength(2);
			const mute = [...document.querySelectorAll("button")].find((b) => b.textContent === "Mute");
			mute?.click();
			expect(mute?.getAttribute("aria-pressed")).toBe("true");
			chat.receive(message(4, "bob", "@alice muted now"));
			expect(shown).toHaveLength(2);
		} finally {
			Object.defineProperty(document, "hidden", { value: false, configurable: true });
		}
	});
});

describe("notifications refused", () => {
	test("when the browser blocks them, the button gives way to a note saying so", async () => {
		let permission: "default" | "denied" = "default";
		const notifications = {
			permission: () => permission,
			request: async () => {
				permission = "denied";
			},
			show: () => {},
		};
		const chat = new Chat({ url: "ws://127.0.0.1:1/ws", storage: new MemoryStorage() });
		chats.push(chat);
		new View(chat, document, { schedule: (draw) => draw(), notifications });
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		chat.receive({ type: "joined", room: "general", members: ["alice"], messages: [], more: false });
		const button = [...document.querySelectorAll("button")].find(
			(b) => b.textContent === "Turn on notifications",
		);
		button?.click();
		await until(
			() =>
				document.body.textContent?.includes("Notifications are blocked in this browser's settings") ?? false,
			5000,
		);
		expect(
			[...document.querySelectorAll("button")].some((b) => b.textContent === "Turn on notifications"),
		).toBe(false);
	});
});

describe("resuming", () => {
	test("joined with reset: what the page held for the room is dropped, the room starts afresh", () => {
		const chat = joinedAsAlice();
		chat.receive({ type: "presence", room: "general", name: "carol", online: true });
		chat.receive({
			type: "joined",
			room: "general",
			members: ["alice"],
			messages: [message(1, "zed", "the room's real first message")],
			more: false,
			reset: true,
		});
		expect(texts("#messages .message .text")).toEqual(["the room's real first message"]);
		expect(texts("#messages .system")).toEqual([]);
	});

	test("joined with more after a long absence: the newest shown, all of the missed counted unread", () => {
		const chat = joinedAsAlice();
		chat.open("dev");
		chat.receive({ type: "joined", room: "dev", members: ["alice"], messages: [], more: false });
		chat.open("general");
		// general resumes from seq 2; 100 messages were missed and only the newest 3 fit.
		chat.open("dev");
		chat.receive({
			type: "joined",
			room: "general",
			members: ["alice", "bob"],
			messages: [100, 101, 102].map((seq) => message(seq, "bob", `late ${seq}`)),
			more: true,
		});
		expect(chat.room("general").unread).toBe(100);
		chat.open("general");
		expect(texts("#messages .message .text")).toEqual(["late 100", "late 101", "late 102"]);
	});
});

describe("signed in (--auth accounts)", () => {
	test("a server that welcomes at open: the name form never shows", async () => {
		const server = Bun.serve({
			port: 0,
			hostname: "127.0.0.1",
			fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
			websocket: {
				open: (ws) => {
					setTimeout(
						() => ws.send(JSON.stringify({ type: "welcome", name: "Ada", version: "1.0.0", epoch: "e1" })),
						50,
					);
				},
				message: () => {},
			},
		});
		try {
			const chat = page({ url: `ws://127.0.0.1:${server.port}/ws` });
			let sawForm = false;
			chat.on(() => {
				if (document.querySelector("#hello-name")) sawForm = true;
			});
			chat.connect();
			await until(() => chat.status.kind === "connected" && chat.name === "Ada");
			await Bun.sleep(400);
			expect(sawForm).toBe(false);
			expect($("#status").textContent).toBe("Connected as Ada");
		} finally {
			server.stop(true);
		}
	});
});

describe("bounded and calm", () => {
	test("a room with thousands of messages keeps a bounded number of rows in the DOM", async () => {
		const chat = new Chat({ url: "ws://127.0.0.1:1/ws", storage: new MemoryStorage() });
		chats.push(chat);
		new View(chat, document, { schedule: (draw) => setTimeout(draw, 10) });
		chat.open("general");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		chat.receive({ type: "joined", room: "general", members: ["alice"], messages: [], more: false });
		for (let round = 0; round < 4; round++) {
			for (let seq = round * 500 + 1; seq <= (round + 1) * 500; seq++)
				chat.receive(message(seq, seq % 2 ? "bob" : "carol", `m${seq}`));
			await Bun.sleep(30);
		}
		const rows = document.querySelectorAll("#messages li.message").length;
		expect(rows).toBeLessThanOrEqual(300);
		expect(texts("#messages li.message .text").at(-1)).toBe("m2000");
	});

	test("connected without a name says Connected, not Connecting", async () => {
		await using server = startServer();
		const chat = page({ url: server.ws });
		chat.connect();
		await until(() => chat.status.kind === "connected");
		expect($("#status").textContent).toBe("Connected");
		expect($("#hello-name")).not.toBeNull();
	});

	test("Escape marks the room read and closes the room switcher", () => {
		const chat = joinedAsAlice();
		chat.setAttentive(false);
		chat.receive(message(3, "bob", "while you looked away"));
		expect(chat.room("general").unread).toBe(1);
		document.dispatchEvent(new KeyboardEvent("keydown", { key: "k", ctrlKey: true, bubbles: true }));
		expect(document.querySelector("[role=dialog]")).not.toBeNull();
		document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
		expect(document.querySelector("[role=dialog]")).toBeNull();
		expect(chat.room("general").unread).toBe(0);
		expect(document.title).toBe("#general · hubbub");
	});
});

describe("the way to the account pages", () => {
	test("signed in (--auth accounts: welcomed without a hello), the header's account menu opens links to the account screens and a sign-out button", async () => {
		const chat = page();
		expect(document.querySelector(".account-menu")).toBeNull();
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		const toggle = $("header .account-menu > button") as HTMLButtonElement;
		expect(toggle.textContent).toContain("Account");
		expect(toggle.getAttribute("aria-expanded")).toBe("false");
		expect(($("#account-menu") as HTMLElement).hidden).toBe(true);
		toggle.click();
		await until(() => toggle.getAttribute("aria-expanded") === "true");
		expect(($("#account-menu") as HTMLElement).hidden).toBe(false);
		const links = [...document.querySelectorAll("#account-menu a")].map((a) => [
			a.textContent,
			a.getAttribute("href"),
		]);
		expect(links).toEqual([
			["Your account", "/account#account"],
			["Sessions", "/account#sessions"],
		]);
		expect($("#account-menu button")?.textContent).toBe("Sign out");
	});

	test("under --auth none (every welcome answers our hello) there is no account link", async () => {
		await using s = startServer();
		const chat = page({ url: s.ws });
		chat.name = "alice";
		chat.connect();
		await until(() => chat.status.kind === "connected" && chat.name === "alice");
		expect($("#status").textContent).toBe("Connected as alice");
		expect(document.querySelector(".account-menu")).toBeNull();
	});
});
