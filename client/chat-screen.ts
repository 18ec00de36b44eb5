// The chat screen: one Chat model, one View, and the browser events they need; started by the
// page's entry (main.ts) the first time the chat is shown.
import { ROOM_PATTERN } from "../protocol.ts";
import { Chat } from "./chat.ts";
import { openPicker, shortcodes } from "./emoji.ts";
import { checkUpgrade } from "./upgrade-check.ts";
import { type Notifications, View } from "./view.tsx";

function roomFromHash(): string | undefined {
	const room = decodeURIComponent(location.hash.slice(1)).toLowerCase();
	return ROOM_PATTERN.test(room) ? room : undefined;
}

/** The chat, running, as the entry sees it: told when another screen replaces it and when it is back. */
export interface ChatScreen {
	left(): void;
	back(): void;
}

/** Starts the chat in #app; `shown` says whether the chat is the screen in front (the address is the chat's). */
export function startChat(shown: () => boolean): ChatScreen {
	const url = new URL("/ws", location.href);
	url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
	const chat = new Chat({
		url: url.href,
		storage: localStorage,
		isOnline: () => navigator.onLine,
		checkUpgrade: () => checkUpgrade(url.href, location.origin),
	});

	const notifications: Notifications = {
		permission: () => (typeof Notification === "undefined" ? "unsupported" : Notification.permission),
		request: () => Notification.requestPermission(),
		show: (title, body, tag) => {
			const n = new Notification(title, { body, tag });
			n.onclick = () => {
				focus();
				chat.open(tag);
			};
		},
	};

	chat.attentive = document.visibilityState === "visible";
	new View(chat, document, {
		storage: localStorage,
		notifications,
		emojiPicker: (pick) => {
			openPicker(pick).catch(() => undefined);
		},
		// Once the table has loaded, the word being typed is looked up again.
		shortcodes: (word) =>
			shortcodes(word, () => document.getElementById("text")?.dispatchEvent(new Event("input"))),
	});

	// Under --auth accounts the server's list of rooms wins, except a room this address names: that one is joined.
	chat.linked = roomFromHash();
	chat.open(chat.linked ?? chat.rooms.keys().next().value ?? "general");
	chat.on((change) => {
		if (change.kind === "room" && shown() && chat.current && location.hash !== `#${chat.current}`) {
			history.replaceState(null, "", `#${chat.current}`);
		}
	});
	addEventListener("hashchange", () => {
		if (!shown()) return;
		const room = roomFromHash();
		if (room) chat.open(room);
	});
	addEventListener("online", () => chat.checkConnection());
	addEventListener("offline", () => chat.wentOffline());
	// Messages are read when the tab is in front and has the focus (read positions are kept by the server).
	addEventListener("focus", () => chat.setAttentive(shown() && document.visibilityState === "visible"));
	addEventListener("blur", () => chat.setAttentive(false));
	document.addEventListener("visibilitychange", () => {
		const visible = document.visibilityState === "visible";
		chat.setAttentive(shown() && visible);
		// A tab back from the background (or a laptop from sleep) checks its connection at once.
		if (visible) chat.checkConnection();
	});
	// The composer stays above an on-screen keyboard: the layout follows the visual viewport.
	const viewport = window.visualViewport;
	if (viewport) {
		const fit = () => document.documentElement.style.setProperty("--vvh", `${viewport.height}px`);
		viewport.addEventListener("resize", fit);
		fit();
	}
	chat.connect();
	return {
		left: () => chat.setAttentive(false),
		back: () => {
			chat.setAttentive(document.visibilityState === "visible" && document.hasFocus());
			// The address may name a room (a link to /#room); else it names the room on screen.
			const room = roomFromHash();
			if (room && room !== chat.current) chat.open(room);
			else if (chat.current && location.hash !== `#${chat.current}`)
				history.replaceState(null, "", `#${chat.current}`);
		},
	};
}
