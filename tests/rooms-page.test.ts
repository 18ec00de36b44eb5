// The protocol 1.2 screens under happy-dom: grouped room list, header, members, dialogs, edit/delete/react, the unread line.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Chat } from "../client/chat.ts";
import { roomId } from "../client/room-dialogs.tsx";
import { View } from "../client/view.tsx";
import type { ClientFrame, Message, RoomInfo } from "../protocol.ts";
import { ROOT } from "./helpers.ts";
import { until } from "./until.ts";

/** Dialogs load on first use: waits for one to be drawn. */
const shown = (selector: string) => until(() => document.querySelector(selector) !== null, 5000);

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

class FakeSocket {
	readyState: number = WebSocket.OPEN;
	readonly sent: ClientFrame[] = [];
	onopen: (() => void) | null = null;
	onmessage: unknown = null;
	onclose: unknown = null;
	send(data: string): void {
		this.sent.push(JSON.parse(data));
	}
	close(): void {
		this.readyState = WebSocket.CLOSED;
	}
}

let chats: Chat[] = [];
beforeEach(() => {
	document.body.innerHTML = BODY;
});
afterEach(() => {
	for (const c of chats) c.close();
	chats = [];
});

function info(room: string, over: Partial<RoomInfo> = {}): RoomInfo {
	return {
		room,
		kind: "open",
		title: room,
		topic: "",
		created: 1,
		members: 3,
		lastSeq: 0,
		lastRead: 0,
		unread: 0,
		mentions: 0,
		...over,
	};
}

function message(
	room: string,
	seq: number,
	from: string,
	text: string,
	over: Partial<Message> = {},
): Message {
	return { type: "message", room, seq, from, text, ts: Date.UTC(2026, 0, 1, 12, seq), ...over };
}

const $ = (selector: string) => document.querySelector(selector) as HTMLElement;
const texts = (selector: string) => [...document.querySelectorAll(selector)].map((e) => e.textContent ?? "");
const press = (el: Element, key: string) =>
	el.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true }));
function button(name: string, within: ParentNode = document): HTMLButtonElement {
	const found = [...within.querySelectorAll("button")].find(
		(b) => (b.getAttribute("aria-label") ?? b.textContent)?.trim() === name,
	);
	if (!found) throw new Error(`no button "${name}"`);
	return found as HTMLButtonElement;
}

/** Alice signed in (accounts mode) with #general (open), Ops (private, hers), a direct room with bob. */
function alice(role: "admin" | "member" = "member") {
	const socket = new FakeSocket();
	const storage = new MemoryStorage();
	const chat = new Chat({ url: "ws://fake/ws", storage, socket: () => socket as unknown as WebSocket });
	chats.push(chat);
	const picks: ((emoji: string) => void)[] = [];
	new View(chat, document, { schedule: (draw) => draw(), storage, emojiPicker: (pick) => picks.push(pick) });
	chat.connect();
	socket.onopen?.();
	chat.receive({
		type: "welcome",
		name: "alice",
		version: "1.2.0",
		epoch: "e1",
		role,
		rooms: [
			info("general", { topic: "Everything else", lastSeq: 2, lastRead: 2 }),
			info("ops", {
				kind: "private",
				title: "Ops",
				creator: "alice",
				members: 2,
				lastSeq: 5,
				lastRead: 3,
				unread: 2,
				mentions: 1,
			}),
			info("dm-abc", { kind: "direct", title: "bob", members: 2, people: ["alice", "bob"] }),
		],
	});
	chat.receive({
		type: "joined",
		room: "general",
		members: ["alice", "bob"],
		people: ["alice", "bob", "carol"],
		messages: [message("general", 1, "bob", "hello"), message("general", 2, "alice", "hi bob")],
		more: false,
		change: 0,
		info: info("general", { topic: "Everything else", lastSeq: 2, lastRead: 2 }),
	});
	const sent = (type: string) =>
		socket.sent.filter((f) => f.type === type) as (ClientFrame & Record<string, unknown>)[];
	return { chat, socket, sent, picks };
}

describe("the room list and header", () => {
	test("rooms and direct messages in two groups, with unread and mention badges", () => {
		alice();
		expect(texts("#rooms .room")).toEqual(["#general", "Ops 2"]);
		expect($("#rooms .room[data-room=ops]").getAttribute("aria-label")).toBe(
			"Ops, 2 unread, 1 mentioning you",
		);
		expect($("#rooms .room[data-room=ops] .unread").classList.contains("mention")).toBe(true);
		expect(texts("#directs .room")).toEqual(["bob"]);
		expect(document.querySelector("#join-form")).toBeNull();
	});

	test("a count the server stopped at 100 shows as 99+", () => {
		const { chat } = alice();
		chat.receive({
			type: "room",
			room: info("ops", {
				kind: "private",
				title: "Ops",
				members: 2,
				lastSeq: 500,
				lastRead: 3,
				unread: 100,
				mentions: 100,
			}),
		});
		expect(texts("#rooms .room")).toEqual(["#general", "Ops 99+"]);
		expect($("#rooms .room[data-room=ops]").getAttribute("aria-label")).toBe(
			"Ops, 99+ unread, 99+ mentioning you",
		);
	});

	test("with every room left, the directory and a new room are still a click away", () => {
		const socket = new FakeSocket();
		const storage = new MemoryStorage();
		const chat = new Chat({ url: "ws://fake/ws", storage, socket: () => socket as unknown as WebSocket });
		chats.push(chat);
		new View(chat, document, { schedule: (draw) => draw(), storage });
		chat.connect();
		socket.onopen?.();
		chat.receive({ type: "welcome", name: "dave", version: "1.2.0", epoch: "e1", role: "member", rooms: [] });
		expect(chat.current).toBe("");
		button("Browse rooms");
		button("New room");
	});

	test("Alt+↑/↓ walk the list as shown: rooms by name, then direct messages, not the order they were joined in", () => {
		const socket = new FakeSocket();
		const storage = new MemoryStorage();
		const chat = new Chat({ url: "ws://fake/ws", storage, socket: () => socket as unknown as WebSocket });
		chats.push(chat);
		new View(chat, document, { schedule: (draw) => draw(), storage });
		chat.connect();
		socket.onopen?.();
		chat.receive({
			type: "welcome",
			name: "alice",
			version: "1.2.0",
			epoch: "e1",
			role: "member",
			rooms: [
				info("dm-abc", { kind: "direct", title: "bob", members: 2, people: ["alice", "bob"] }),
				info("zeta", { title: "Zeta" }),
				info("alpha", { title: "Alpha" }),
			],
		});
		expect(
			[...document.querySelectorAll("#rooms .room, #directs .room")].map((b) => b.getAttribute("data-room")),
		).toEqual(["alpha", "zeta", "dm-abc"]);
		const alt = (key: string) =>
			document.body.dispatchEvent(
				new KeyboardEvent("keydown", { key, altKey: true, bubbles: true, cancelable: true }),
			);
		chat.open("zeta");
		alt("ArrowUp");
		expect(chat.current).toBe("alpha");
		alt("ArrowDown");
		expect(chat.current).toBe("zeta");
		alt("ArrowDown");
		expect(chat.current).toBe("dm-abc");
		alt("ArrowDown");
		expect(chat.current).toBe("alpha");
	});

	test("the header has the title, topic and member count; members lists everyone with who is online", () => {
		alice();
		expect($("#room-title").textContent).toBe("#general");
		expect($(".room-title .topic").textContent).toBe("Everything else");
		expect($(".room-header .members-count").textContent).toBe("3 members · 2 online");
		expect(texts("#members li bdi")).toEqual(["alice (you)", "bob", "carol"]);
		expect([...document.querySelectorAll("#members li")].map((li) => li.className)).toEqual([
			"online",
			"online",
			"away",
		]);
		// Not its creator, not an admin: no settings, no adding.
		expect(document.querySelector("#add-member")).toBeNull();
		expect([...document.querySelectorAll(".room-header button")].map((b) => b.textContent)).not.toContain(
			"Settings",
		);
	});

	test("the header's member count follows people joining, as the Members panel does", () => {
		const { chat } = alice();
		expect($(".room-header .members-count").textContent).toBe("3 members · 2 online");
		chat.receive({ type: "presence", room: "general", name: "dave", online: true });
		chat.receive({ type: "presence", room: "general", name: "carol", online: true });
		expect(texts("#members li bdi")).toEqual(["alice (you)", "bob", "carol", "dave"]);
		expect($(".room-header .members-count").textContent).toBe("4 members · 4 online");
	});

	test("opening a room with unread messages draws the line above the first of them", async () => {
		const { chat, sent } = alice();
		button("Ops, 2 unread, 1 mentioning you").click();
		chat.receive({
			type: "joined",
			room: "ops",
			members: ["alice"],
			people: ["alice", "dave"],
			messages: [1, 2, 3, 4, 5].map((seq) => message("ops", seq, "dave", `m${seq}`)),
			more: false,
			change: 0,
			info: info("ops", {
				kind: "private",
				title: "Ops",
				creator: "alice",
				members: 2,
				lastSeq: 5,
				lastRead: 3,
				unread: 2,
			}),
		});
		const rows = [...document.querySelectorAll("#messages > li")].map((li) =>
			li.classList.contains("new-line") ? "LINE" : (li.querySelector(".text")?.textContent ?? ""),
		);
		expect(rows.filter((t) => t !== "")).toEqual(["m1", "m2", "m3", "LINE", "m4", "m5"]);
		expect(sent("read").at(-1)).toEqual({ type: "read", room: "ops", seq: 5 });
		// The creator of a private room sees its settings and may add people.
		expect($("#add-member")).not.toBeNull();
		button("Settings").click();
		await shown("#room-settings");
	});
});

describe("the timeline", () => {
	test("the first row names the room; a presence line between messages of one day is no new day", () => {
		const { chat } = alice();
		expect($("#messages .start").textContent).toBe("This is the start of #general.");
		chat.receive({ type: "presence", room: "general", name: "carol", online: true });
		chat.receive(message("general", 3, "bob", "later that day"));
		expect(texts("#messages .day").length).toBe(1);
		chat.receive({
			type: "joined",
			room: "dm-abc",
			members: ["alice"],
			messages: [],
			more: false,
			info: info("dm-abc", { kind: "direct", title: "bob", members: 2, people: ["alice", "bob"] }),
		});
		chat.open("dm-abc");
		expect($("#messages .start").textContent).toBe(
			"This is the start of your conversation with bob. Say hello!",
		);
	});
});

describe("messages: edit, delete, react", () => {
	test("Up in an empty box edits the last own message; Enter saves it as an edit frame, Escape cancels", () => {
		const { chat, sent } = alice();
		press($("#text"), "ArrowUp");
		const box = $("#messages .edit-box textarea") as HTMLTextAreaElement;
		expect(box.value).toBe("hi bob");
		press(box, "Escape");
		expect(document.querySelector(".edit-box")).toBeNull();
		expect(sent("edit")).toEqual([]);
		press($("#text"), "ArrowUp");
		const again = $("#messages .edit-box textarea") as HTMLTextAreaElement;
		again.value = "hi bob!";
		press(again, "Enter");
		const edit = sent("edit")[0];
		expect(edit).toMatchObject({ type: "edit", room: "general", seq: 2, text: "hi bob!" });
		chat.receive({
			type: "update",
			room: "general",
			change: 1,
			ref: edit?.ref as string,
			message: message("general", 2, "alice", "hi bob!", { edited: Date.UTC(2026, 0, 1, 13), change: 1 }),
		});
		expect(texts("#messages .message .text")).toEqual(["hello", "hi bob!"]);
		expect($("#messages .edited").textContent).toBe("(edited)");
		expect($("#messages .edited").getAttribute("title")).toStartWith("Edited ");
	});

	test("delete asks first; a deletion shows a tombstone; only own messages have edit and delete", async () => {
		const { chat, sent } = alice();
		const [bobs, mine] = [...document.querySelectorAll("#messages li.message")] as HTMLElement[];
		expect(() => button("Delete message", bobs)).toThrow();
		expect(() => button("Edit message", bobs)).toThrow();
		button("Message bob", bobs as HTMLElement);
		button("Delete message", mine as HTMLElement).click();
		await shown("#confirm");
		expect($("#confirm").getAttribute("role")).toBe("alertdialog");
		button("Cancel", $("#confirm")).click();
		expect(sent("delete")).toEqual([]);
		button("Delete message", mine as HTMLElement).click();
		button("Delete", $("#confirm")).click();
		expect(sent("delete")).toMatchObject([{ type: "delete", room: "general", seq: 2 }]);
		chat.receive({
			type: "update",
			room: "general",
			change: 1,
			message: message("general", 2, "alice", "", { deleted: true, change: 1 }),
		});
		expect(texts("#messages .message .text")).toEqual(["hello", "This message was deleted."]);
		expect(() => button("Delete message", $("#messages li.message[data-seq='2']"))).toThrow();
	});

	test("an admin may delete anyone's message", () => {
		alice("admin");
		button("Delete message", $("#messages li.message[data-seq='1']"));
	});

	test("reactions: counts, ours highlighted, a click toggles; the picker adds one", () => {
		const { chat, sent, picks } = alice();
		chat.receive({
			type: "update",
			room: "general",
			change: 1,
			message: message("general", 1, "bob", "hello", {
				reactions: [
					{ emoji: "👍", names: ["bob", "alice"] },
					{ emoji: "🎉", names: ["carol"] },
				],
				change: 1,
			}),
		});
		const reactions = [...document.querySelectorAll("#messages .reaction")] as HTMLElement[];
		expect(reactions.map((b) => [b.textContent, b.getAttribute("aria-pressed")])).toEqual([
			["👍 2", "true"],
			["🎉 1", "false"],
		]);
		expect(reactions[0]?.getAttribute("title")).toBe("bob, you reacted with 👍");
		reactions[0]?.click();
		reactions[1]?.click();
		button("Add reaction", $("#messages li.message[data-seq='1']")).click();
		picks[0]?.("🚀");
		expect(sent("react").map((f) => [f.emoji, f.on])).toEqual([
			["👍", false],
			["🎉", true],
			["🚀", true],
		]);
	});

	test("an archived room shows read-only: no composer, no edit, delete or reactions", () => {
		const { chat } = alice();
		chat.receive({ type: "room", room: info("general", { archived: 5 }) });
		expect(($("#text") as HTMLTextAreaElement).disabled).toBe(true);
		// Every control of the composer, not only the box and Send.
		expect(button("Insert emoji").disabled).toBe(true);
		for (const b of document.querySelectorAll<HTMLButtonElement>("#composer button, form.composer button"))
			expect({ b: b.getAttribute("aria-label") ?? b.textContent, disabled: b.disabled }).toMatchObject({
				disabled: true,
			});
		expect($(".archived-note").textContent).toContain("archived");
		// Only writing to the author is left.
		expect(texts("#messages .actions button").length).toBe(1);
		button("Message bob", $("#messages .actions"));
	});
});

describe("dialogs", () => {
	test("the directory searches, lists open rooms with topic and members, and joins one", async () => {
		const { chat, sent } = alice();
		button("Browse rooms").click();
		await shown("#directory");
		expect(document.activeElement?.id).toBe("directory-query");
		const ask = sent("directory")[0];
		chat.receive({
			type: "directory",
			ref: ask?.ref as string,
			rooms: [
				{ room: "general", title: "general", topic: "Everything else", members: 3 },
				{ room: "design", title: "Design", topic: "Pixels", members: 1 },
			],
		});
		expect(texts("#directory .directory-title")).toEqual(["#general", "#Design"]);
		expect(texts("#directory .directory-topic")).toEqual(["Everything else", "Pixels"]);
		const input = $("#directory-query") as HTMLInputElement;
		input.value = "des";
		input.dispatchEvent(new Event("input", { bubbles: true }));
		await Bun.sleep(300);
		expect(sent("directory").at(-1)).toMatchObject({ query: "des" });
		button("Join #Design").click();
		expect(document.querySelector("#directory")).toBeNull();
		expect(chat.current).toBe("design");
	});

	test("create a private room: the frame carries its address and title; the room opens when the server says so", async () => {
		const { chat, sent } = alice();
		button("New room").click();
		await shown("#create-room");
		($("#create-title") as HTMLInputElement).value = "Design Reviews";
		($("#create-topic") as HTMLInputElement).value = "Fridays";
		($("#create-room input[value=private]") as HTMLInputElement).checked = true;
		button("Create room").click();
		const create = sent("create")[0];
		expect(create).toMatchObject({
			room: "design-reviews",
			kind: "private",
			title: "Design Reviews",
			topic: "Fridays",
		});
		chat.receive({
			type: "room",
			ref: create?.ref as string,
			room: info("design-reviews", {
				kind: "private",
				title: "Design Reviews",
				creator: "alice",
				members: 1,
			}),
		});
		expect(document.querySelector("#create-room")).toBeNull();
		expect(chat.current).toBe("design-reviews");
		expect($("#room-title").textContent).toContain("Design Reviews");
	});

	test("a refused create says why in the dialog", async () => {
		const { chat, sent } = alice();
		button("New room").click();
		await shown("#create-room");
		($("#create-title") as HTMLInputElement).value = "general";
		button("Create room").click();
		chat.receive({
			type: "error",
			code: "room_taken",
			message: "that room name cannot be used",
			ref: sent("create")[0]?.ref as string,
		});
		expect($("#create-room .error").textContent).toBe("that room name cannot be used");
	});

	test("'Message bob' from the members panel sends direct and opens the conversation", () => {
		const { chat, sent } = alice();
		button("Message bob", $("#members")).click();
		const direct = sent("direct")[0];
		expect(direct).toMatchObject({ names: ["bob"] });
		chat.receive({
			type: "room",
			ref: direct?.ref as string,
			room: info("dm-abc", { kind: "direct", title: "bob", people: ["alice", "bob"] }),
		});
		expect(chat.current).toBe("dm-abc");
		expect($("#room-title").textContent).toBe("bob");
		// Named by the people in it everywhere, never by its id.
		expect(document.title).toBe("(2) bob · hubbub"); // two unread in Ops
		expect($("#text").getAttribute("placeholder")).toBe("Message bob");
		expect($("#messages").getAttribute("aria-label")).toBe("Messages in bob");
	});

	test("leaving a private room asks first; an open one leaves at once with Undo", async () => {
		const { chat, sent } = alice();
		button("Leave Ops").click();
		await shown("#confirm");
		expect($("#confirm-title").textContent).toBe("Leave Ops?");
		expect(sent("leave")).toEqual([]);
		button("Leave", $("#confirm")).click();
		expect(sent("leave")).toEqual([{ type: "leave", room: "ops" }]);
		chat.receive({ type: "room", room: info("general", { title: "General chat" }) });
		button("Leave #General chat").click();
		expect(sent("leave").at(-1)).toEqual({ type: "leave", room: "general" });
		// The undo note names the room as the list did, not by its address.
		expect($(".undo").textContent).toContain("Left #General chat.");
		expect(chat.rooms.has("general")).toBe(false);
	});

	test("a room's address is made from its name", () => {
		expect(roomId("Design Reviews")).toBe("design-reviews");
		expect(roomId("  Café  Crème! ")).toBe("cafe-creme");
		expect(roomId("日本")).toBe("");
	});
});
