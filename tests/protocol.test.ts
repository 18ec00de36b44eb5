// Every frame and error code of PROTOCOL.md, through a real server and real sockets.
import { Database } from "bun:sqlite";
import { describe, expect, test } from "bun:test";
import { PROTOCOL_VERSION, parseClientFrame } from "../protocol.ts";
import { Client, chatter, startServer } from "./helpers.ts";

describe("identity", () => {
	test("hello is answered with welcome carrying the trimmed name, version and epoch", async () => {
		await using s = startServer();
		const c = await Client.connect(s.ws);
		const welcome = await c.hello("  alice  ");
		expect(welcome).toEqual({
			type: "welcome",
			name: "alice",
			version: PROTOCOL_VERSION,
			epoch: s.hub.store.epoch,
		});
		expect(welcome.epoch).toMatch(/^[a-z0-9]{4,16}$/);
	});

	test("any frame before hello gets not_identified, and the connection stays usable", async () => {
		await using s = startServer();
		const c = await Client.connect(s.ws);
		for (const frame of [
			{ type: "join", room: "general" },
			{ type: "send", room: "general", id: "m1", text: "hi" },
			{ type: "history", room: "general" },
			{ type: "typing", room: "general" },
			{ type: "leave", room: "general" },
			{ type: "ping" },
		]) {
			c.send(frame);
			const error = await c.next();
			expect(error).toMatchObject({ type: "error", code: "not_identified" });
		}
		expect((await c.hello("alice")).type).toBe("welcome");
	});

	test("ping is answered with pong once identified", async () => {
		await using s = startServer();
		const c = await Client.connect(s.ws);
		await c.hello("alice");
		c.send({ type: "ping" });
		expect(await c.next()).toEqual({ type: "pong" });
	});

	test.each([
		["empty", ""],
		["only spaces", "   "],
		["too long", "x".repeat(33)],
		["a control character", "al\u0007ice"],
		["a newline", "al\nice"],
	])("a name that is %s gets invalid_name and may try again", async (_, name) => {
		await using s = startServer();
		const c = await Client.connect(s.ws);
		expect(await c.hello(name)).toMatchObject({ type: "error", code: "invalid_name" });
		expect(c.isOpen).toBe(true);
		expect(await c.hello("alice")).toMatchObject({ type: "welcome", name: "alice" });
	});

	test("32 characters, counting an emoji as one, is a valid name", async () => {
		await using s = startServer();
		const c = await Client.connect(s.ws);
		const name = `${"x".repeat(31)}🦊`;
		expect(await c.hello(name)).toMatchObject({ type: "welcome", name });
	});

	test("a name held by another open connection is name_taken, case-insensitively; freed on close", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "Alice");
		const b = await Client.connect(s.ws);
		expect(await b.hello("alice")).toMatchObject({ type: "error", code: "name_taken" });
		expect(await b.hello("ALICE ")).toMatchObject({ type: "error", code: "name_taken" });
		expect(b.isOpen).toBe(true);
		a.close();
		await a.closed;
		// The server notices the close on its own schedule; retry until it has.
		for (;;) {
			const answer = await b.hello("alice");
			if (answer.type === "welcome") break;
			expect(answer).toMatchObject({ code: "name_taken" });
			await Bun.sleep(10);
		}
	});

	test("a second hello after welcome gets already_identified and keeps the first name", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		expect(await c.hello("bob")).toMatchObject({ type: "error", code: "already_identified" });
		c.send({ type: "send", room: "general", text: "still alice" });
		expect(await c.expect("message")).toMatchObject({ from: "alice" });
	});
});

describe("rooms", () => {
	test("join answers joined with members, messages and more; others get presence", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice");
		const joinedA = await a.join("general");
		expect(joinedA).toEqual({
			type: "joined",
			room: "general",
			members: ["alice"],
			messages: [],
			more: false,
		});
		const b = await chatter(s.ws, "bob");
		const joinedB = await b.join("general");
		expect(joinedB.members.sort()).toEqual(["alice", "bob"]);
		expect(await a.next()).toEqual({ type: "presence", room: "general", name: "bob", online: true });
		// The joiner does not get its own presence.
		b.send({ type: "ping" });
		expect(await b.next()).toEqual({ type: "pong" });
	});

	test.each([
		["upper case", "General"],
		["a leading dash", "-general"],
		["a space", "gen eral"],
		["too long", "r".repeat(33)],
		["empty", ""],
	])("a room name with %s is bad_frame naming the field", async (_, room) => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice");
		c.send({ type: "join", room });
		const error = await c.next();
		expect(error).toMatchObject({ type: "error", code: "bad_frame" });
		expect((error as { message: string }).message).toContain("room");
	});

	test("leave answers left; others get presence offline; frames to the room then get not_joined", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		b.send({ type: "leave", room: "general" });
		expect(await b.next()).toEqual({ type: "left", room: "general" });
		expect(await a.next()).toEqual({ type: "presence", room: "general", name: "bob", online: false });
		b.send({ type: "send", room: "general", id: "late", text: "hello?" });
		expect(await b.next()).toMatchObject({ type: "error", code: "not_joined", ref: "late" });
	});

	test("a disconnect sends presence offline to the room", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		b.close();
		expect(await a.next()).toEqual({ type: "presence", room: "general", name: "bob", online: false });
		const c = await chatter(s.ws, "carol");
		expect((await c.join("general")).members.sort()).toEqual(["alice", "carol"]);
	});

	test("send, typing, history and leave to a room not joined get not_joined", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		for (const frame of [
			{ type: "send", room: "other", id: "m1", text: "hi" },
			{ type: "typing", room: "other" },
			{ type: "history", room: "other" },
			{ type: "leave", room: "other" },
		]) {
			c.send(frame);
			expect(await c.next()).toMatchObject({ type: "error", code: "not_joined" });
		}
		c.send({ type: "ping" });
		expect(await c.next()).toEqual({ type: "pong" });
	});

	test("a connection can be in several rooms at once", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "one");
		await c.join("two");
		c.send({ type: "send", room: "one", text: "to one" });
		c.send({ type: "send", room: "two", text: "to two" });
		expect(await c.next()).toMatchObject({ type: "message", room: "one", seq: 1, text: "to one" });
		expect(await c.next()).toMatchObject({ type: "message", room: "two", seq: 1, text: "to two" });
	});
});

describe("messages", () => {
	test("every member, the sender included, gets the message with seq, id, from, text and ts", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		const before = Date.now();
		a.send({ type: "send", room: "general", id: "m-7f3a", text: "hi" });
		const echo = await a.next();
		const got = await b.next();
		expect(echo).toEqual(got);
		expect(echo).toMatchObject({
			type: "message",
			room: "general",
			seq: 1,
			id: "m-7f3a",
			from: "alice",
			text: "hi",
		});
		const ts = (echo as { ts: number }).ts;
		expect(ts).toBeGreaterThanOrEqual(before - 5);
		expect(ts).toBeLessThanOrEqual(Date.now() + 5);
	});

	test("a message without id has no id", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		a.send({ type: "send", room: "general", text: "no id" });
		const m = await a.next();
		expect(m.type).toBe("message");
		expect("id" in m).toBe(false);
	});

	test.each([
		["empty text", { text: "" }, "text"],
		["only whitespace", { text: " \n\t " }, "text"],
		["text over 4000 characters", { text: "x".repeat(4001) }, "text"],
		["text of the wrong type", { text: 42 }, "text"],
		["an id over 64 characters", { id: "i".repeat(65), text: "hi" }, "id"],
		["an empty id", { id: "", text: "hi" }, "id"],
		["a missing room", { room: undefined, text: "hi" }, "room"],
	])("a send with %s is bad_frame naming the field", async (_, fields, field) => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "send", room: "general", ...fields });
		const error = await c.next();
		expect(error).toMatchObject({ type: "error", code: "bad_frame" });
		expect((error as { message: string }).message).toContain(`'${field}'`);
	});

	test("4000 characters of text is accepted", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "send", room: "general", text: "é".repeat(4000) });
		expect(await c.next()).toMatchObject({ type: "message", seq: 1 });
	});

	test("bad_frame carries the offending frame's id as ref", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "send", room: "general", id: "m-1", text: "" });
		expect(await c.next()).toMatchObject({ type: "error", code: "bad_frame", ref: "m-1" });
	});

	test("typing reaches the other members only, and is not stored", async () => {
		await using s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await chatter(s.ws, "bob", "general");
		await a.expect("presence");
		a.send({ type: "typing", room: "general" });
		expect(await b.next()).toEqual({ type: "typing", room: "general", name: "alice" });
		a.send({ type: "ping" });
		expect(await a.next()).toEqual({ type: "pong" });
		b.send({ type: "history", room: "general" });
		expect(await b.next()).toEqual({ type: "history", room: "general", messages: [], more: false });
	});
});

describe("history", () => {
	test("pages backwards with before and limit, ascending, with more", async () => {
		await using s = startServer({ config: { sendBurst: 1000 } });
		const c = await chatter(s.ws, "alice", "general");
		for (let i = 1; i <= 120; i++) c.send({ type: "send", room: "general", text: `m${i}` });
		await c.expect("message", (m) => m.seq === 120);
		c.send({ type: "history", room: "general", before: 58, limit: 50 });
		const page = await c.expect("history");
		expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 8));
		expect(page.more).toBe(true);
		c.send({ type: "history", room: "general", before: 8, limit: 50 });
		const first = await c.expect("history");
		expect(first.messages.map((m) => m.text)).toEqual(["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);
		expect(first.more).toBe(false);
	});

	test("limit defaults to 50; without before it gives the latest", async () => {
		await using s = startServer({ config: { sendBurst: 1000 } });
		const c = await chatter(s.ws, "alice", "general");
		for (let i = 1; i <= 60; i++) c.send({ type: "send", room: "general", text: `m${i}` });
		await c.expect("message", (m) => m.seq === 60);
		c.send({ type: "history", room: "general" });
		const page = await c.expect("history");
		expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 11));
		expect(page.more).toBe(true);
	});

	test.each([0, 201, 1.5, "10"])("limit %p is bad_frame naming limit", async (limit) => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "history", room: "general", before: 10, limit });
		const error = await c.next();
		expect(error).toMatchObject({ type: "error", code: "bad_frame" });
		expect((error as { message: string }).message).toContain("'limit'");
	});
});

describe("bad input", () => {
	test("room titles and topics (1.2) refuse control, bidi and other invisible formatting characters", () => {
		const frame = (fields: Record<string, string>) =>
			parseClientFrame(JSON.stringify({ type: "room_update", ref: "u1", room: "dev", ...fields }));
		for (const hidden of [
			"\u202E",
			"\u202A",
			"\u2066",
			"\u2069",
			"\u200E",
			"\u200F",
			"\u061C",
			"\u00AD",
			"\uFEFF",
			"\u200B",
			"\n",
			"\u2028",
		])
			for (const field of ["title", "topic"]) {
				const parsed = frame({ [field]: `invoice${hidden}fdp.exe` });
				expect(parsed).toMatchObject({ ok: false, code: "bad_frame", ref: "u1" });
				if (!parsed.ok) expect(parsed.message).toContain("invisible formatting");
			}
		// Letters of every script, emoji with joiners, a subdivision flag and Persian's non-joiner stay.
		for (const title of [
			"Design crit",
			"Équipe 👩‍💻",
			"🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
			"زن\u200Cها",
			"חדשות",
		])
			expect(frame({ title, topic: title })).toMatchObject({ ok: true });
	});

	test("not JSON, not an object, unknown type, missing type: bad_frame, connection stays open", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		const cases: [string, string][] = [
			["{not json", "JSON"],
			["[1,2,3]", "object"],
			["null", "object"],
			['"hello"', "object"],
			['{"type":"shout"}', "shout"],
			['{"name":"x"}', "'type'"],
			['{"type":7}', "'type'"],
		];
		for (const [raw, mention] of cases) {
			c.send(raw);
			const error = await c.next();
			expect(error).toMatchObject({ type: "error", code: "bad_frame" });
			expect((error as { message: string }).message).toContain(mention);
		}
		c.send({ type: "send", room: "general", text: "still here" });
		expect(await c.next()).toMatchObject({ type: "message", text: "still here" });
	});

	test("protocol 1.2's frames are not_available under --auth none, with their ref, and change nothing", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		const frames = [
			{ type: "create", ref: "r1", room: "dev", kind: "private" },
			{ type: "direct", ref: "r2", names: ["bob"] },
			{ type: "directory", ref: "r3" },
			{ type: "room_update", ref: "r4", room: "general", topic: "x" },
			{ type: "member_add", ref: "r5", room: "general", name: "bob" },
			{ type: "member_remove", ref: "r6", room: "general", name: "bob" },
			{ type: "read", room: "general", seq: 1 },
			{ type: "edit", ref: "r8", room: "general", seq: 1, text: "x" },
			{ type: "delete", ref: "r9", room: "general", seq: 1 },
			{ type: "react", ref: "r10", room: "general", seq: 1, emoji: "👍", on: true },
		];
		for (const frame of frames) {
			c.send(frame);
			const error = await c.next();
			expect(error).toMatchObject({ type: "error", code: "not_available" });
			expect((error as { ref?: string }).ref).toBe((frame as { ref?: string }).ref);
			expect((error as { message: string }).message).toContain("--auth accounts");
		}
		c.send({ type: "send", room: "general", text: "still v1" });
		const message = await c.next();
		expect(message).toMatchObject({ type: "message", text: "still v1" });
		expect(Object.keys(message).sort()).toEqual(["from", "room", "seq", "text", "ts", "type"]);
	});

	test("a binary frame is refused with bad_frame", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice");
		c.sendRaw(new TextEncoder().encode(JSON.stringify({ type: "ping" })));
		const error = await c.next();
		expect(error).toMatchObject({ type: "error", code: "bad_frame" });
		expect((error as { message: string }).message).toContain("binary");
	});

	test("wrong field types name the field", async () => {
		await using s = startServer();
		const c = await chatter(s.ws, "alice", "general");
		const cases: [unknown, string][] = [
			[{ type: "hello", name: 5 }, "'name'"],
			[{ type: "join", room: "general", since: -1 }, "'since'"],
			[{ type: "join", room: "general", since: "3" }, "'since'"],
			[{ type: "join", room: 12 }, "'room'"],
			[{ type: "history", room: "general", before: "x" }, "'before'"],
			[{ type: "send", room: "general", id: 5, text: "x" }, "'id'"],
		];
		for (const [frame, mention] of cases) {
			c.send(frame);
			const error = await c.next();
			expect(error).toMatchObject({ type: "error", code: "bad_frame" });
			expect((error as { message: string }).message).toContain(mention);
		}
	});

	test("a frame over the maximum payload closes the connection with 1009; others are unaffected", async () => {
		await using s = startServer();
		const other = await chatter(s.ws, "bob", "general");
		const c = await chatter(s.ws, "alice", "general");
		c.send({ type: "send", room: "general", text: "x".repeat(70 * 1024) });
		expect((await c.closed).code).toBe(1009);
		other.send({ type: "send", room: "general", text: "fine" });
		expect(await other.expect("message")).toMatchObject({ text: "fine" });
	});

	test("sends past the rate limit get rate_limited and are not stored; too many more close with 1008", async () => {
		await using s = startServer({ config: { sendRate: 1, sendBurst: 3, floodClose: 5 } });
		const c = await chatter(s.ws, "alice", "general");
		for (let i = 0; i < 5; i++) c.send({ type: "send", room: "general", id: `m${i}`, text: `m${i}` });
		const frames = [await c.next(), await c.next(), await c.next(), await c.next(), await c.next()];
		const limited = frames.filter((f) => f.type === "error");
		expect(limited).toHaveLength(2);
		expect(limited[0]).toMatchObject({ code: "rate_limited", ref: "m3" });
		expect(frames.filter((f) => f.type === "message")).toHaveLength(3);
		// Bob connects first: after a flood close the address is refused new connections (--flood-ban).
		const d = await chatter(s.ws, "bob", "general");
		for (let i = 0; i < 10; i++) c.send({ type: "send", room: "general", text: "flood" });
		expect((await c.closed).code).toBe(1008);
		d.send({ type: "history", room: "general" });
		expect((await d.expect("history")).messages).toHaveLength(3);
	});

	test("a store that cannot write answers server_error with ref; the same id later is stored once", async () => {
		await using s = startServer({ sqlite: { busyTimeoutMs: 200 } });
		const c = await chatter(s.ws, "alice", "general");
		// Another process holding the write lock is the real way a SQLite write fails for a while.
		const locker = new Database(s.dbPath);
		locker.run("BEGIN EXCLUSIVE");
		c.send({ type: "send", room: "general", id: "m-1", text: "first try" });
		expect(await c.next()).toMatchObject({ type: "error", code: "server_error", ref: "m-1" });
		locker.run("COMMIT");
		locker.close();
		c.send({ type: "send", room: "general", id: "m-1", text: "first try" });
		expect(await c.next()).toMatchObject({ type: "message", seq: 1, id: "m-1" });
		c.send({ type: "send", room: "general", id: "m-1", text: "first try" });
		expect(await c.next()).toMatchObject({ type: "message", seq: 1, id: "m-1" });
		c.send({ type: "history", room: "general" });
		expect((await c.expect("history")).messages).toHaveLength(1);
	});
});

describe("http", () => {
	test("an upgrade from a foreign Origin is refused with 403; same host and no Origin are accepted", async () => {
		await using s = startServer();
		const foreign = await fetch(`${s.url}/ws`, {
			headers: {
				upgrade: "websocket",
				connection: "Upgrade",
				origin: "https://evil.example",
				"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
				"sec-websocket-version": "13",
			},
		});
		expect(foreign.status).toBe(403);
		await expect(Client.connect(s.ws, { headers: { origin: "https://evil.example" } })).rejects.toThrow();
		const same = await Client.connect(s.ws, { headers: { origin: s.url } });
		expect((await same.hello("alice")).type).toBe("welcome");
		const bot = await Client.connect(s.ws);
		expect((await bot.hello("bot")).type).toBe("welcome");
	});

	test("--origin allows the listed origins only; * allows any", async () => {
		await using s = startServer({ config: { origins: ["https://chat.example.com"] } });
		await Client.connect(s.ws, { headers: { origin: "https://chat.example.com" } });
		await expect(Client.connect(s.ws, { headers: { origin: s.url } })).rejects.toThrow();
		await using any = startServer({ config: { origins: ["*"] } });
		await Client.connect(any.ws, { headers: { origin: "https://anywhere.example" } });
	});

	test("/healthz answers 200 with JSON; /metrics answers Prometheus text; unknown paths 404", async () => {
		await using s = startServer();
		await chatter(s.ws, "alice", "general");
		const health = await fetch(`${s.url}/healthz`);
		expect(health.status).toBe(200);
		expect(await health.json()).toMatchObject({ status: "ok", connections: 1, rooms: 1, database: true });
		const metrics = await fetch(`${s.url}/metrics`);
		expect(metrics.headers.get("content-type")).toContain("text/plain");
		expect(await metrics.text()).toContain("hubbub_connections 1\n");
		expect((await fetch(`${s.url}/nope`)).status).toBe(404);
	});

	test("stopping the server closes every connection with 1001", async () => {
		const s = startServer();
		const a = await chatter(s.ws, "alice", "general");
		const b = await Client.connect(s.ws);
		await s[Symbol.asyncDispose]();
		expect((await a.closed).code).toBe(1001);
		expect((await b.closed).code).toBe(1001);
	});
});

test("a reaction is read in one form: extra or missing U+FE0F variation selectors make the same emoji", () => {
	const emojiOf = (emoji: string) => {
		const parsed = parseClientFrame(
			JSON.stringify({ type: "react", ref: "r", room: "general", seq: 1, emoji, on: true }),
		);
		return parsed.ok && parsed.frame.type === "react" ? parsed.frame.emoji : undefined;
	};
	expect(emojiOf("👍\ufe0f\ufe0f\ufe0f")).toBe("👍");
	expect(emojiOf("👍")).toBe("👍");
	// A pictograph that looks like text without it keeps exactly one.
	expect(emojiOf("❤")).toBe("❤\ufe0f");
	expect(emojiOf("❤\ufe0f\ufe0f")).toBe("❤\ufe0f");
	expect(emojiOf("1\u20e3")).toBe("1\ufe0f\u20e3");
	expect(emojiOf(":party:")).toBe(":party:");
});
