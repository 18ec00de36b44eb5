// The page's entry, one single-page app: the chat at / and the account screens at /account (sign-in,
// setup, invite, reset, your account, sessions, admin). The chat's code loads with the page; the
// account screens' code is a chunk of its own, fetched with import() the first time they are shown,
// so the chat's first load carries none of it. Links between the two change the address with
// history.pushState and swap the screen in place: the chat keeps its socket while the account
// screens are open.
import { type ChatScreen, startChat } from "./chat-screen.ts";

type Screen = "chat" | "account";

const chatRoot = document.getElementById("app") as HTMLElement;
const accountRoot = document.getElementById("account") as HTMLElement;

const screenOf = (path: string): Screen | undefined =>
	path === "/" ? "chat" : path === "/account" ? "account" : undefined;

let shown: Screen | undefined;
let chat: ChatScreen | undefined;
/** The chat's title, put back when the chat returns (the account screens set their own). */
let chatTitle = document.title;
/** Which import() is the latest: a slow one must not draw over a screen shown since. */
let opening = 0;

function show(screen: Screen): void {
	if (screen === shown) return;
	const before = shown;
	shown = screen;
	if (screen === "chat") {
		accountRoot.hidden = true;
		chatRoot.hidden = false;
		if (before === "account") {
			import("./account-app.tsx").then((a) => a.unmount(accountRoot)).catch(() => {});
			document.title = chatTitle;
		}
		if (chat) chat.back();
		else chat = startChat(() => shown === "chat");
		return;
	}
	if (chat) {
		chatTitle = document.title;
		chat.left();
	}
	chatRoot.hidden = true;
	accountRoot.hidden = false;
	const mine = ++opening;
	import("./account-app.tsx")
		.then((a) => {
			if (mine === opening && shown === "account") a.mount(accountRoot);
		})
		.catch((e: Error) => {
			// The chunk could not be fetched (the server was updated or is gone): a full load tries again.
			if (mine === opening) accountRoot.textContent = `The account screens could not be loaded: ${e.message}`;
		});
}

// A click on a link to the other screen changes the address and the screen without a page load; a link
// that only changes the hash (#sessions, #room) is left to the browser, which fires hashchange.
document.addEventListener("click", (e) => {
	if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
	const link = (e.target as Element | null)?.closest?.("a[href]");
	if (!(link instanceof HTMLAnchorElement) || (link.target && link.target !== "_self") || link.download)
		return;
	const to = new URL(link.href);
	const screen = screenOf(to.pathname);
	if (to.origin !== location.origin || !screen || to.pathname === location.pathname) return;
	e.preventDefault();
	history.pushState(null, "", to.href);
	show(screen);
});
addEventListener("popstate", () => {
	const screen = screenOf(location.pathname);
	if (screen) show(screen);
});

show(screenOf(location.pathname) ?? "chat");
