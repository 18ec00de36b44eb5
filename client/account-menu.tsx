// The chat page's account menu (--auth accounts): a button in the header that opens links to the
// account screens (your account, sessions, admin for admins) and signs out. A disclosure, not an
// ARIA menu: its items are ordinary links and a button, reached with Tab; Escape closes it.
import { useEffect, useRef, useState } from "preact/hooks";
import { authState, type Me, signOut } from "./account-api.ts";

export function AccountMenu() {
	const [open, setOpen] = useState(false);
	const [me, setMe] = useState<Me>();
	const root = useRef<HTMLDivElement>(null);
	const toggle = useRef<HTMLButtonElement>(null);
	useEffect(() => {
		// Only to know whether to offer the admin screen: the screen itself checks again.
		authState()
			.then((s) => setMe(s.account))
			.catch(() => {});
	}, []);
	useEffect(() => {
		if (!open) return;
		const away = (e: Event) => {
			if (!root.current?.contains(e.target as Node)) setOpen(false);
		};
		const onKey = (e: KeyboardEvent) => {
			if (e.key !== "Escape") return;
			setOpen(false);
			toggle.current?.focus();
		};
		// A link opens its screen in place (client/main.ts), no page load: the menu closes behind it.
		const followed = (e: Event) => {
			if ((e.target as Element).closest?.("a") && root.current?.contains(e.target as Node)) setOpen(false);
		};
		document.addEventListener("click", followed);
		document.addEventListener("pointerdown", away);
		document.addEventListener("focusin", away);
		document.addEventListener("keydown", onKey);
		return () => {
			document.removeEventListener("click", followed);
			document.removeEventListener("pointerdown", away);
			document.removeEventListener("focusin", away);
			document.removeEventListener("keydown", onKey);
		};
	}, [open]);
	return (
		<div class="account-menu" ref={root}>
			<button
				ref={toggle}
				type="button"
				class="secondary"
				aria-expanded={open}
				aria-controls="account-menu"
				onClick={() => setOpen(!open)}
			>
				Account <span aria-hidden="true">▾</span>
			</button>
			<ul id="account-menu" class="account-menu-list" hidden={!open}>
				<li>
					<a href="/account#account">Your account</a>
				</li>
				<li>
					<a href="/account#sessions">Sessions</a>
				</li>
				{me?.role === "admin" && (
					<li>
						<a href="/account#admin">Admin</a>
					</li>
				)}
				<li>
					<button type="button" class="link" onClick={() => void signOut()}>
						Sign out
					</button>
				</li>
			</ul>
		</div>
	);
}
