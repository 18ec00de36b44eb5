// The page's model of protocol 1.2 without a server: the room list from the server, changed messages, read positions and counts.
import { afterEach, describe, expect, test } from "bun:test";
import { Chat } from "../client/chat.ts";
import { applyUpdates, mayDelete, mayEdit, mayManage } from "../client/rooms-model.ts";
import type { ClientFrame, Message, RoomInfo } from "../protocol.ts";
import { until } from "./until.ts";

class MemoryStorage {
	readonly items = new Map<string, string>();
	getItem(key: string): string | null {
		return this.items.get(key) ?? null;
	}
	setItem(key: string, value: string): void {
		this.items.set(key, value);
	}
}

/** A socket stand-in: open at once, and what the page sends is kept. */
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
		members: 2,
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
	return { type: "message", room, seq, from, text, ts: 1_700_000_000_000 + seq, ...over };
}

/** A chat connected to a fake socket, welcomed as alice under --auth accounts with these rooms. */
function signedIn(rooms: RoomInfo[], storage = new MemoryStorage()) {
	const socket = new FakeSocket();
	const chat = new Chat({ url: "ws://fake/ws", storage, socket: () => socket as unknown as WebSocket });
	chats.push(chat);
	chat.connect();
	socket.onopen?.();
	chat.receive({ type: "welcome", name: "alice", version: "1.2.0", epoch: "e1", rooms, role: "member" });
	const sent = (type: string) => socket.sent.filter((f) => f.type === type);
	return { chat, socket, sent };
}

/** Answers the join the page has out for `room`. */
function joined(chat: Chat, room: string, messages: Message[], extra: Record<string, unknown> = {}) {
	chat.receive({ type: "joined", room, members: ["alice"], messages, more: false, ...extra });
}

describe("the room list comes from the server", () => {
	test("welcome.rooms replaces what the page remembered; each listed room is joined, with counts from the server", () => {
		const storage = new MemoryStorage();
		storage.setItem("hubbub.rooms", JSON.stringify(["general", "left-elsewhere"]));
		const { chat, sent } = signedIn(
			[info("general"), info("dev", { lastSeq: 9, lastRead: 5, unread: 4, mentions: 1 })],
			storage,
		);
		expect([...chat.rooms.keys()]).toEqual(["general", "dev"]);
		expect(chat.rooms.get("dev")).toMatchObject({ unread: 4, mentions: 1, lastRead: 5 });
		expect(JSON.parse(storage.items.get("hubbub.rooms") ?? "")).toEqual(["general", "dev"]);
		// One join at a time: general first, dev once general is answered.
		expect(sent("join")).toEqual([{ type: "join", room: "general" }]);
		joined(chat, "general", []);
		expect(sent("join").map((f) => (f as { room: string }).room)).toEqual(["general", "dev"]);
		expect(chat.current).toBe("general");
	});

	test("the current room, when the account left it elsewhere, gives way to the first listed", () => {
		const storage = new MemoryStorage();
		storage.setItem("hubbub.rooms", JSON.stringify(["gone"]));
		const socket = new FakeSocket();
		const chat = new Chat({ url: "ws://fake/ws", storage, socket: () => socket as unknown as WebSocket });
		chats.push(chat);
		chat.open("gone");
		chat.connect();
		socket.onopen?.();
		chat.receive({ type: "welcome", name: "alice", version: "1.2.0", epoch: "e1", rooms: [info("general")] });
		expect(chat.current).toBe("general");
		expect(chat.rooms.has("gone")).toBe(false);
	});

	test("a room frame adds a room and joins it; the one we created opens; room_gone drops it", () => {
		const { chat, sent } = signedIn([info("general")]);
		joined(chat, "general", []);
		chat.receive({ type: "room", room: info("ops", { kind: "private", title: "Ops" }) });
		expect(chat.rooms.get("ops")?.info?.title).toBe("Ops");
		expect(chat.current).toBe("general");
		expect(sent("join").at(-1)).toEqual({ type: "join", room: "ops" });
		const ref = chat.create("plans", "private", "Plans", "what next") as string;
		expect(sent("create")).toEqual([
			{ type: "create", ref, room: "plans", kind: "private", title: "Plans", topic: "what next" },
		]);
		const answers: unknown[] = [];
		chat.on((c) => c.kind === "answer" && answers.push(c));
		chat.receive({ type: "room", ref, room: info("plans", { kind: "private", title: "Plans" }) });
		expect(chat.current).toBe("plans");
		expect(answers).toEqual([{ kind: "answer", ref, error: undefined, code: undefined }]);
		// Joined like any new room, once the join before it is answered.
		joined(chat, "ops", []);
		expect(sent("join").at(-1)).toEqual({ type: "join", room: "plans" });
		chat.receive({ type: "room_gone", room: "plans" });
		expect(chat.rooms.has("plans")).toBe(false);
		expect(chat.current).toBe("general");
	});

	test("a refused request is told to its asker, not taken for a refused join", () => {
		const { chat } = signedIn([info("general")]);
		joined(chat, "general", []);
		const answers: { error?: string }[] = [];
		chat.on((c) => c.kind === "answer" && answers.push(c));
		const ref = chat.create("general", "open") as string;
		chat.receive({
			type: "error",
			code: "room_taken",
			message: "that room name cannot be used",
			ref,
			room: "general",
		});
		expect(answers).toEqual([
			{ kind: "answer", ref, error: "that room name cannot be used", code: "room_taken" },
		] as never);
		expect(chat.rooms.get("general")?.joined).toBe(true);
	});

	test("errors naming a joined room: too many typing frames is no refused join; a read-only send gives its text back", () => {
		const { chat, sent } = signedIn([info("general")]);
		joined(chat, "general", []);
		const errors: unknown[] = [];
		chat.on((c) => c.kind === "error" && errors.push(c));
		const joins = sent("join").length;
		chat.receive({
			type: "error",
			code: "rate_limited",
			message: "too many typing frames; slow down",
			room: "general",
		});
		expect(chat.rooms.get("general")?.joined).toBe(true);
		expect(errors).toEqual([]);
		chat.send("hello");
		const id = (sent("send")[0] as { id: string }).id;
		chat.receive({
			type: "error",
			code: "read_only",
			message: "#general is archived",
			ref: id,
			room: "general",
		});
		expect(chat.rooms.get("general")?.pending).toEqual([]);
		expect(errors).toEqual([
			{ kind: "error", room: "general", text: "#general is archived", restore: "hello" },
		]);
		expect(sent("join").length).toBe(joins);
	});

	test("a join answered not_found (a private room, or none) leaves the list", () => {
		const { chat } = signedIn([info("general")]);
		joined(chat, "general", []);
		chat.open("secret");
		chat.receive({
			type: "error",
			code: "not_found",
			message: "no room #secret that you can see",
			room: "secret",
		});
		expect(chat.rooms.has("secret")).toBe(false);
		expect(chat.current).toBe("general");
	});

	test("people: all members from joined; a changed member count asks for the list again", () => {
		const { chat, sent } = signedIn([info("general", { members: 2 })]);
		joined(chat, "general", [], { people: ["bob", "alice"], change: 0 });
		expect(chat.rooms.get("general")?.people).toEqual(["alice", "bob"]);
		const joins = sent("join").length;
		chat.receive({ type: "room", room: info("general", { members: 3 }) });
		expect(sent("join").length).toBe(joins + 1);
	});
});

describe("changed messages", () => {
	test("update frames replace what is held: an edit, then a deletion; the highest change is kept", () => {
		const { chat } = signedIn([info("general")]);
		joined(
			chat,
			"general",
			[message("general", 1, "bob", "secret token"), message("general", 2, "bob", "hi")],
			{
				change: 3,
			},
		);
		chat.receive({
			type: "update",
			room: "general",
			change: 4,
			message: message("general", 2, "bob", "hello", { edited: 5, change: 4 }),
		});
		chat.receive({
			type: "update",
			room: "general",
			change: 5,
			message: message("general", 1, "bob", "", { deleted: true, change: 5 }),
		});
		const r = chat.rooms.get("general");
		expect(r?.messages.map((m) => [m.seq, m.text, m.deleted ?? false])).toEqual([
			[1, "", true],
			[2, "hello", false],
		]);
		expect(r?.change).toBe(5);
		// A late copy of an older change (around a join the same change can come twice) brings nothing back.
		chat.receive({
			type: "update",
			room: "general",
			change: 4,
			message: message("general", 2, "bob", "hello", { edited: 5, change: 4 }),
		});
		chat.receive({
			type: "joined",
			room: "general",
			members: ["alice"],
			messages: [],
			more: false,
			change: 5,
			updates: [message("general", 1, "bob", "secret token", { change: 3 })],
		});
		expect(r?.messages.map((m) => m.text)).toEqual(["", "hello"]);
	});

	test("after a reconnect the page resumes with since and changes, and joined.updates replace old texts", () => {
		const { chat, socket, sent } = signedIn([info("general")]);
		joined(chat, "general", [message("general", 1, "bob", "old text"), message("general", 2, "bob", "b")], {
			change: 7,
		});
		// The connection drops; a new one is welcomed.
		const again = new FakeSocket();
		(chat as unknown as { options: { socket: () => unknown } }).options.socket = () => again;
		(socket as unknown as { onclose: (e: { code: number }) => void }).onclose({ code: 1006 });
		chat.reconnectNow();
		again.onopen?.();
		chat.receive({ type: "welcome", name: "alice", version: "1.2.0", epoch: "e1", rooms: [info("general")] });
		expect(again.sent.filter((f) => f.type === "join")).toEqual([
			{ type: "join", room: "general", since: 2, changes: 7 },
		]);
		expect(sent("join").length).toBe(1);
		joined(chat, "general", [message("general", 3, "bob", "c")], {
			change: 9,
			updates: [message("general", 1, "bob", "new text", { edited: 8, change: 9 })],
		});
		const r = chat.rooms.get("general");
		expect(r?.messages.map((m) => m.text)).toEqual(["new text", "b", "c"]);
		expect(r?.change).toBe(9);
	});

	test("react sends on for a new reaction and off for one of ours", () => {
		const { chat, sent } = signedIn([info("general")]);
		joined(chat, "general", [
			message("general", 1, "bob", "x", { reactions: [{ emoji: "👍", names: ["alice", "bob"] }] }),
		]);
		chat.react("general", 1, "👍");
		chat.react("general", 1, "🎉");
		expect(sent("react").map((f) => [(f as { emoji: string }).emoji, (f as { on: boolean }).on])).toEqual([
			["👍", false],
			["🎉", true],
		]);
	});

	test("who may edit, delete and manage", () => {
		const open = info("general", { creator: "carol" });
		const priv = info("ops", { kind: "private", creator: "alice" });
		const bobs = message("general", 1, "bob", "x");
		const mine = message("general", 2, "alice", "y");
		expect(mayEdit(mine, "alice", open)).toBe(true);
		expect(mayEdit(bobs, "alice", open)).toBe(false);
		expect(mayEdit(mine, "alice", undefined)).toBe(false);
		expect(mayEdit(mine, "alice", { ...open, archived: 1 })).toBe(false);
		expect(mayDelete(bobs, "alice", "member", open)).toBe(false);
		expect(mayDelete(bobs, "alice", "admin", open)).toBe(true);
		expect(mayDelete(bobs, "alice", "member", priv)).toBe(true);
		expect(mayDelete({ ...mine, deleted: true }, "alice", "member", open)).toBe(false);
		expect(mayManage("alice", "member", open)).toBe(false);
		expect(mayManage("carol", "member", open)).toBe(true);
		expect(mayManage("alice", "admin", info("dm-x", { kind: "direct" }))).toBe(false);
		expect(applyUpdates([bobs], [message("general", 9, "bob", "not held")])).toBe(0);
		// An older version (a repeated or late answer) never replaces a newer one held.
		const held = [{ ...bobs, text: "edited twice", change: 5 }];
		expect(applyUpdates(held, [{ ...bobs, text: "edited once", change: 4 }])).toBe(0);
		expect(held[0]?.text).toBe("edited twice");
		expect(applyUpdates(held, [{ ...bobs, text: "", deleted: true, change: 6 }])).toBe(1);
		expect(held[0]?.deleted).toBe(true);
	});
});

describe("read positions and counts", () => {
	test("others' messages count while the person looks elsewhere; read frames from another device set the counts", () => {
		const { chat } = signedIn([info("general"), info("dev", { lastSeq: 2, lastRead: 2 })]);
		joined(chat, "general", []);
		joined(chat, "dev", [message("dev", 1, "bob", "a"), message("dev", 2, "bob", "b")]);
		chat.receive(message("dev", 3, "bob", "hey @alice"));
		chat.receive(message("dev", 4, "alice", "mine does not count"));
		chat.receive(message("dev", 5, "bob", "c"));
		expect(chat.rooms.get("dev")).toMatchObject({ unread: 2, mentions: 1 });
		chat.receive({ type: "read", room: "dev", seq: 5, unread: 0, mentions: 0 });
		expect(chat.rooms.get("dev")).toMatchObject({ unread: 0, mentions: 0, lastRead: 5 });
		// An older position (a late frame) does not move it back.
		chat.receive({ type: "read", room: "dev", seq: 3, unread: 2, mentions: 1 });
		expect(chat.rooms.get("dev")?.unread).toBe(0);
	});

	test("read is sent when the newest message is seen, at most once a second; not while scrolled up or away", async () => {
		const { chat, sent } = signedIn([info("general", { lastSeq: 1, lastRead: 1 })]);
		joined(chat, "general", [message("general", 1, "bob", "a")]);
		expect(sent("read")).toEqual([]);
		chat.receive(message("general", 2, "bob", "b"));
		chat.receive(message("general", 3, "bob", "c"));
		// The first at once, the second within the next second, carrying the newest.
		expect(sent("read")).toEqual([{ type: "read", room: "general", seq: 2 }]);
		await until(() => sent("read").length === 2, 3000);
		expect(sent("read")[1]).toEqual({ type: "read", room: "general", seq: 3 });
		expect(chat.rooms.get("general")?.unread).toBe(0);
		// Scrolled up: new messages are unread (the "jump to newest" count) until the reader is back at the bottom.
		chat.setAtNewest(false);
		chat.receive(message("general", 4, "bob", "d"));
		chat.setAttentive(false);
		chat.setAtNewest(true);
		chat.receive(message("general", 5, "bob", "e"));
		expect(chat.rooms.get("general")?.unread).toBe(2);
		await Bun.sleep(1200);
		expect(sent("read").length).toBe(2);
		chat.setAttentive(true);
		await until(() => sent("read").length === 3, 3000);
		expect(sent("read")[2]).toEqual({ type: "read", room: "general", seq: 5 });
		expect(chat.rooms.get("general")?.unread).toBe(0);
	});

	test("a room opened with unread messages gets the line above the first of them", () => {
		const { chat } = signedIn([info("general"), info("dev", { lastSeq: 6, lastRead: 4, unread: 2 })]);
		joined(chat, "general", []);
		chat.open("dev");
		const dev = chat.rooms.get("dev");
		expect(dev?.lineAfter).toBe(4);
		expect(dev?.unread).toBe(0);
		chat.open("general");
		expect(dev?.lineAfter).toBeUndefined();
	});

	test("the room shown when the page loads gets the line from the server's read position", () => {
		const { chat } = signedIn([info("general", { lastSeq: 9, lastRead: 6, unread: 3 })]);
		expect(chat.rooms.get("general")?.lineAfter).toBe(6);
		expect(chat.rooms.get("general")?.unread).toBe(0);
	});
});
