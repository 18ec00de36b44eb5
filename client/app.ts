// The chat page: pick a name, chat in #general. Everything a user wrote is shown with textContent.
import { type ClientFrame, type Message, parseServerFrame, type ServerFrame } from "../protocol.ts";

const ROOM = "general";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLSpanElement>("status");
const helloForm = $<HTMLFormElement>("hello");
const nameInput = $<HTMLInputElement>("name");
const helloError = $<HTMLParagraphElement>("hello-error");
const chat = $<HTMLElement>("chat");
const list = $<HTMLOListElement>("messages");
const compose = $<HTMLFormElement>("compose");
const textBox = $<HTMLTextAreaElement>("text");

let socket: WebSocket | undefined;
let myName: string | undefined;
let lastSeq: number | undefined;
let retry = 0;

function send(frame: ClientFrame): boolean {
	if (socket?.readyState !== WebSocket.OPEN) return false;
	socket.send(JSON.stringify(frame));
	return true;
}

function line(className: string, ...parts: [string, string][]): void {
	const li = document.createElement("li");
	li.className = className;
	for (const [cls, text] of parts) {
		const span = document.createElement("span");
		span.className = cls;
		span.textContent = text;
		li.append(span);
	}
	const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
	list.append(li);
	if (atBottom) li.scrollIntoView({ block: "end" });
}

function showMessage(m: Message): void {
	if (lastSeq !== undefined && m.seq <= lastSeq) return;
	lastSeq = m.seq;
	const time = new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
	line(
		m.from === myName ? "message mine" : "message",
		["time", `${time} `],
		["from", m.from],
		["text", m.text],
	);
}

function onFrame(frame: ServerFrame): void {
	switch (frame.type) {
		case "welcome":
			myName = frame.name;
			localStorage.setItem("hubbub.name", frame.name);
			helloForm.hidden = true;
			chat.hidden = false;
			status.textContent = `connected as ${frame.name}`;
			send(
				lastSeq === undefined ? { type: "join", room: ROOM } : { type: "join", room: ROOM, since: lastSeq },
			);
			return;
		case "joined":
			for (const m of frame.messages) showMessage(m);
			return;
		case "message":
			showMessage(frame);
			return;
		case "presence":
			line("system", ["text", `${frame.name} ${frame.online ? "joined" : "left"}`]);
			return;
		case "error":
			if (frame.code === "invalid_name" || frame.code === "name_taken") {
				helloForm.hidden = false;
				helloError.textContent = frame.message;
			} else {
				line("system error", ["text", frame.message]);
			}
			return;
		default:
			return;
	}
}

function connect(): void {
	const url = new URL("/ws", location.href);
	url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
	socket = new WebSocket(url);
	socket.onopen = () => {
		retry = 0;
		status.textContent = "connected";
		const saved = myName ?? localStorage.getItem("hubbub.name");
		if (saved) send({ type: "hello", name: saved });
	};
	socket.onmessage = (event) => {
		const frame = typeof event.data === "string" ? parseServerFrame(event.data) : undefined;
		if (frame) onFrame(frame);
	};
	socket.onclose = () => {
		const delay = Math.min(30_000, 500 * 2 ** retry++);
		status.textContent = `reconnecting in ${Math.ceil(delay / 1000)} s`;
		setTimeout(connect, delay);
	};
}

helloForm.addEventListener("submit", (event) => {
	event.preventDefault();
	helloError.textContent = "";
	send({ type: "hello", name: nameInput.value });
});

compose.addEventListener("submit", (event) => {
	event.preventDefault();
	const text = textBox.value;
	if (text.trim() === "") return;
	if (send({ type: "send", room: ROOM, id: crypto.randomUUID(), text })) textBox.value = "";
});

textBox.addEventListener("keydown", (event) => {
	if (event.key === "Enter" && !event.shiftKey) {
		event.preventDefault();
		compose.requestSubmit();
	}
});

nameInput.value = localStorage.getItem("hubbub.name") ?? "";
connect();
