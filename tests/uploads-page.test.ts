// The page's files under happy-dom: uploads with progress, cancel and the server's refusals; a message of files;
// images and videos inline at their size, everything else (SVG too) a card; file names are text.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Chat } from "../client/chat.ts";
import { humanSize, type Request, Uploads } from "../client/uploads.ts";
import { View } from "../client/view.tsx";
import type { ClientFrame, FileRef, Message } from "../protocol.ts";
import { ROOT } from "./helpers.ts";

const BODY =
	readFileSync(join(ROOT, "client", "index.html"), "utf8").match(/<body>([\s\S]*)<\/body>/)?.[1] ?? "";
const ID = "a".repeat(64);
const ID2 = "b".repeat(64);

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

/** A stand-in for XMLHttpRequest that the test answers by hand. */
class FakeRequest implements Request {
	method = "";
	url = "";
	headers: Record<string, string> = {};
	body?: Blob;
	aborted = false;
	status = 0;
	responseText = "";
	upload: Request["upload"] = { onprogress: null };
	onload: (() => void) | null = null;
	onerror: (() => void) | null = null;
	open(method: string, url: string) {
		this.method = method;
		this.url = url;
	}
	setRequestHeader(name: string, value: string) {
		this.headers[name] = value;
	}
	send(body: Blob) {
		this.body = body;
	}
	abort() {
		this.aborted = true;
	}
	progress(loaded: number) {
		this.upload.onprogress?.({ loaded, total: this.body?.size ?? 0 });
	}
	answer(status: number, body: object) {
		this.status = status;
		this.responseText = JSON.stringify(body);
		this.onload?.();
	}
}

function png(name = "shot.png", bytes = 2000): File {
	return new File([new Uint8Array(bytes)], name, { type: "image/png" });
}

/** A signed-in page (the welcome came unasked: accounts mode) with a stand-in socket and upload requests. */
function signedIn() {
	const chat = new Chat({ url: "ws://127.0.0.1:1/ws" });
	chats.push(chat);
	const sent: ClientFrame[] = [];
	(chat as unknown as { socket: unknown }).socket = {
		readyState: WebSocket.OPEN,
		send: (s: string) => sent.push(JSON.parse(s)),
		close() {},
	};
	const requests: FakeRequest[] = [];
	new View(chat, document, {
		schedule: (draw) => draw(),
		uploadRequest: () => {
			const r = new FakeRequest();
			requests.push(r);
			return r;
		},
	});
	chat.open("general");
	chat.receive({ type: "welcome", name: "alice", version: "1.1.0", epoch: "e1" });
	chat.receive({ type: "joined", room: "general", members: ["alice", "bob"], messages: [], more: false });
	sent.length = 0;
	return { chat, sent, requests };
}

function paste(target: HTMLElement, files: File[]): Event {
	const e = new Event("paste", { bubbles: true, cancelable: true });
	Object.defineProperty(e, "clipboardData", { value: { files, types: ["Files"] } });
	target.dispatchEvent(e);
	return e;
}

function stored(id: string, name: string, extra: Partial<FileRef> = {}) {
	return {
		ok: true,
		id,
		size: 2000,
		type: "image/png",
		inline: true,
		width: 640,
		height: 480,
		name,
		...extra,
	};
}

function withFiles(seq: number, files: FileRef[], text = ""): Message {
	return {
		type: "message",
		room: "general",
		seq,
		from: "bob",
		text,
		ts: Date.UTC(2026, 0, 1, 12, seq),
		files,
	};
}

describe("sizes", () => {
	test("as people read them", () => {
		expect([0, 999, 1000, 12_500, 3_200_000, 25 * 1024 * 1024].map(humanSize)).toEqual([
			"0 B",
			"999 B",
			"1.0 KB",
			"13 KB",
			"3.2 MB",
			"26 MB",
		]);
	});
});

describe("uploading", () => {
	test("a pasted screenshot: posted as bytes to /api/uploads with its name, progress shown, then sent as a message of files", () => {
		const { sent, requests } = signedIn();
		const e = paste($("#text"), [png("Screenshot 2026.png")]);
		expect(e.defaultPrevented).toBe(true);
		expect(requests).toHaveLength(1);
		const r = requests[0] as FakeRequest;
		expect([r.method, r.url]).toEqual(["POST", "/api/uploads?name=Screenshot%202026.png"]);
		expect(r.body?.size).toBe(2000);
		r.progress(500);
		const bar = $(".uploads progress") as HTMLProgressElement;
		expect([bar.getAttribute("max"), bar.getAttribute("value")]).toEqual(["2000", "500"]);
		expect(bar.getAttribute("aria-label")).toBe("Uploading Screenshot 2026.png");
		// Sending while it is on its way is refused, and says why.
		($("#compose") as HTMLFormElement).requestSubmit();
		expect(sent).toEqual([]);
		r.answer(201, stored(ID, "Screenshot 2026.png"));
		expect($(".uploads .upload-state").textContent).toBe("Ready");
		($("#compose") as HTMLFormElement).requestSubmit();
		expect(sent).toMatchObject([{ type: "send", room: "general", text: "", files: [ID] }]);
		expect(document.querySelector(".uploads")).toBeNull();
		// Shown at once as pending, with its image.
		expect($("#messages li.pending img").getAttribute("src")).toBe(
			`/api/files/${ID}?name=Screenshot%202026.png`,
		);
	});

	test("several files at once, with text; cancelling one aborts it and nothing of it is sent", () => {
		const { sent, requests } = signedIn();
		const input = $("#compose input[type=file]") as HTMLInputElement;
		Object.defineProperty(input, "files", {
			value: [png("one.png"), png("two.png"), png("three.png")],
			configurable: true,
		});
		input.dispatchEvent(new Event("change", { bubbles: true }));
		expect(requests.map((r) => r.url)).toEqual([
			"/api/uploads?name=one.png",
			"/api/uploads?name=two.png",
			"/api/uploads?name=three.png",
		]);
		const [one, two, three] = requests as [FakeRequest, FakeRequest, FakeRequest];
		(
			all(".uploads button").find((b) => b.getAttribute("aria-label") === "Cancel two.png") as HTMLElement
		).click();
		expect(two.aborted).toBe(true);
		expect(all(".uploads .upload-name bdi").map((b) => b.textContent)).toEqual(["one.png", "three.png"]);
		one.answer(201, stored(ID, "one.png"));
		three.answer(201, stored(ID2, "three.png"));
		const box = $("#text") as HTMLTextAreaElement;
		box.value = "two screenshots";
		box.dispatchEvent(new Event("input", { bubbles: true }));
		($("#compose") as HTMLFormElement).requestSubmit();
		expect(sent.filter((f) => f.type === "send")).toMatchObject([
			{ type: "send", text: "two screenshots", files: [ID, ID2] },
		]);
	});

	test("the server's refusals are said in a sentence; a failed file is not sent", () => {
		const uploads = new Uploads(
			() => {},
			() => new FakeRequest(),
		);
		const made: FakeRequest[] = [];
		const u = new Uploads(
			() => {},
			() => {
				const r = new FakeRequest();
				made.push(r);
				return r;
			},
		);
		u.add("general", [png("big.mov"), png("full.png"), png("quota.png"), png("gone.png"), png("many.png")]);
		const [big, full, quota, gone, many] = made as [
			FakeRequest,
			FakeRequest,
			FakeRequest,
			FakeRequest,
			FakeRequest,
		];
		big.answer(413, { ok: false, code: "too_large", message: "at most 25 MiB" });
		full.answer(507, { ok: false, code: "disk_full", message: "the disk is full" });
		quota.answer(413, {
			ok: false,
			code: "upload_quota",
			message: "your files take 1 GiB, the most allowed",
		});
		gone.onerror?.();
		many.answer(429, { ok: false, code: "too_many_uploads", message: "slow down", retryAfter: 1 });
		expect(u.of("general").map((x) => x.error)).toEqual([
			"big.mov is too large: at most 25 MiB.",
			"The server has no room for full.png right now: the disk is full.",
			"quota.png is too large: your files take 1 GiB, the most allowed.",
			"gone.png could not be sent: the connection failed.",
			"Too many files at once: remove many.png and add it again in a few seconds.",
		]);
		expect(u.ready("general")).toEqual([]);
		expect(u.busy("general")).toBe(false);
		// At most ten files to a message.
		expect(
			uploads.add(
				"general",
				Array.from({ length: 12 }, (_, i) => png(`${i}.png`)),
			),
		).toBe("A message carries at most 10 files.");
		expect(uploads.of("general")).toHaveLength(10);
	});

	test("under --auth none there is nothing to attach", () => {
		const chat = new Chat({ url: "ws://127.0.0.1:1/ws" });
		chats.push(chat);
		(chat as unknown as { socket: unknown }).socket = { readyState: WebSocket.OPEN, send() {}, close() {} };
		new View(chat, document, { schedule: (draw) => draw() });
		chat.identify("alice");
		chat.receive({ type: "welcome", name: "alice", version: "1.0.0", epoch: "e1" });
		expect(chat.accounts).toBe(false);
		expect(document.querySelector("#compose input[type=file], .attach")).toBeNull();
	});
});

describe("files in the timeline", () => {
	test("an image inline at the message's size, linked to the full file; other files as cards; SVG never inline", () => {
		const { chat } = signedIn();
		const evil = "<img src=x onerror=alert(1)>.png";
		chat.receive(
			withFiles(1, [
				{ id: ID, name: evil, type: "image/png", size: 2000, width: 640, height: 480, inline: true },
				{ id: ID2, name: "report.pdf", type: "application/pdf", size: 1_234_567 },
				{ id: "c".repeat(64), name: "logo.svg", type: "image/svg+xml", size: 900, inline: true },
				{
					id: "d".repeat(64),
					name: "clip.mp4",
					type: "video/mp4",
					size: 5_000_000,
					width: 320,
					height: 240,
					inline: true,
				},
			]),
		);
		const img = $("#messages .attachments img");
		expect(all("#messages img")).toHaveLength(1);
		expect([img.getAttribute("width"), img.getAttribute("height"), img.getAttribute("alt")]).toEqual([
			"640",
			"480",
			evil,
		]);
		expect(img.getAttribute("src")).toBe(`/api/files/${ID}?name=${encodeURIComponent(evil)}`);
		expect(img.closest("a")?.getAttribute("href")).toBe(img.getAttribute("src"));
		const cards = all("#messages .file-card");
		expect(cards.map((c) => c.querySelector(".file-name")?.textContent)).toEqual(["report.pdf", "logo.svg"]);
		expect(cards.map((c) => c.querySelector(".file-meta")?.textContent)).toEqual([
			"application/pdf · 1.2 MB · Download",
			"image/svg+xml · 900 B · Download",
		]);
		expect(cards[0]?.getAttribute("download")).toBe("report.pdf");
		const video = $("#messages video");
		expect([video.getAttribute("width"), video.getAttribute("height")]).toEqual(["320", "240"]);
	});

	test("a file name with markup is text in a card", () => {
		const { chat } = signedIn();
		const evil = '<img src=x onerror="window.pwned=1">.zip';
		chat.receive(withFiles(1, [{ id: ID, name: evil, type: "application/zip", size: 10 }], "see this"));
		expect($("#messages .file-name").textContent).toBe(evil);
		expect(document.querySelector("#messages img")).toBeNull();
		expect($("#messages .text").textContent).toBe("see this");
	});
});
