// The page's entry: one Chat model, one View, and the browser events they need.
import { ROOM_PATTERN } from "../protocol.ts";
import { Chat } from "./chat.ts";
import { View } from "./view.ts";

function roomFromHash(): string | undefined {
	const room = decodeURIComponent(location.hash.slice(1)).toLowerCase();
	return ROOM_PATTERN.test(room) ? room : undefined;
}

const url = new URL("/ws", location.href);
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const chat = new Chat({ url: url.href, storage: localStorage, isOnline: () => navigator.onLine });
new View(chat, document);

chat.open(roomFromHash() ?? "general");
chat.on((change) => {
	if (change.kind === "room" && location.hash !== `#${chat.current}`) {
		history.replaceState(null, "", `#${chat.current}`);
	}
});
addEventListener("hashchange", () => {
	const room = roomFromHash();
	if (room) chat.open(room);
});
addEventListener("online", () => chat.reconnectNow());
addEventListener("offline", () => chat.wentOffline());
chat.connect();
