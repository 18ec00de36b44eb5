// The account screens at /account (--auth accounts), loaded by the page's entry (main.ts) on first use, drawn by Preact in the chat page's design:
// first-run setup, sign-in, sign-up from an invite, a reset link, and once signed in your account,
// your sessions and (for admins) the admin screen. The hash picks the screen: #account, #sessions,
// #admin; #invite=CODE and #reset=CODE open those links. Text people typed is always rendered as text.
import type { ComponentChildren } from "preact";
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { type AuthState, api, type Me, must, Refused, signOut } from "./account-api.ts";

type Tab = "account" | "sessions" | "admin";

type Screen =
	| { kind: "loading" }
	| { kind: "unreachable"; message: string }
	| { kind: "none" }
	| { kind: "setup" }
	| { kind: "invite"; code: string; usable: boolean; signup?: string }
	| { kind: "reset"; code: string; name?: string; message?: string }
	| { kind: "signin"; signup: string }
	| { kind: "home"; me: Me; tab: Tab };

const when = (ms: number) => new Date(ms).toLocaleString();

/** Which screen the address and the server's answers call for. */
async function resolve(): Promise<Screen> {
	const { data } = await api("GET", "/api/auth/state");
	if (!data.ok) return { kind: "unreachable", message: data.message ?? "the server refused" };
	const state = data as unknown as AuthState;
	if (state.auth !== "accounts") return { kind: "none" };
	if (state.setup) return { kind: "setup" };
	const params = new URLSearchParams(location.hash.slice(1));
	const invite = params.get("invite");
	const reset = params.get("reset");
	if (invite && !state.account) {
		const usable =
			(await api("GET", `/api/auth/invite?code=${encodeURIComponent(invite)}`)).data.usable === true;
		return { kind: "invite", code: invite, usable };
	}
	if (reset) {
		const who = await api("GET", `/api/auth/reset?code=${encodeURIComponent(reset)}`);
		return who.data.ok
			? { kind: "reset", code: reset, name: String(who.data.name) }
			: { kind: "reset", code: reset, message: String(who.data.message) };
	}
	if (!state.account) return { kind: "signin", signup: state.signup ?? "invite" };
	const asked = location.hash.slice(1);
	const tab: Tab =
		asked === "sessions" || (asked === "admin" && state.account.role === "admin") ? asked : "account";
	return { kind: "home", me: state.account, tab };
}

interface Field {
	name: string;
	label: string;
	type?: "text" | "password" | "number";
	autocomplete?: string;
	value?: string;
	min?: number;
}

const NEW_PASSWORD = (label = "Password (at least 8 characters)"): Field => ({
	name: "password",
	label,
	type: "password",
	autocomplete: "new-password",
});

let uid = 0;

/** A labelled form whose submit calls `send`; a refusal is shown in its alert line. */
function Form(props: {
	fields: Field[];
	submit: string;
	send: (values: Record<string, string>) => Promise<void>;
	autofocus?: boolean;
}) {
	const [error, setError] = useState("");
	const [busy, setBusy] = useState(false);
	const ids = useRef(props.fields.map(() => `f${++uid}`));
	const form = useRef<HTMLFormElement>(null);
	useEffect(() => {
		if (props.autofocus) form.current?.querySelector("input")?.focus();
	}, []);
	return (
		<form
			ref={form}
			class="account-form"
			onSubmit={(e) => {
				e.preventDefault();
				const f = e.currentTarget;
				const values = Object.fromEntries(
					props.fields.map((x) => [x.name, (f.elements.namedItem(x.name) as HTMLInputElement).value]),
				);
				setError("");
				setBusy(true);
				props
					.send(values)
					.catch((err: Error) => setError(err.message))
					.finally(() => setBusy(false));
			}}
		>
			{props.fields.map((field, i) => (
				<>
					<label for={ids.current[i]}>{field.label}</label>
					<input
						id={ids.current[i]}
						name={field.name}
						// The union narrows per type in Preact's JSX types; every field here takes these attributes.
						type={(field.type ?? "text") as "text"}
						required
						autocomplete={field.autocomplete}
						defaultValue={field.value}
						min={field.min}
						minLength={field.autocomplete === "new-password" ? 8 : undefined}
					/>
				</>
			))}
			<button type="submit" disabled={busy}>
				{props.submit}
			</button>
			<p class="error" role="alert">
				{error}
			</p>
		</form>
	);
}

function Card(props: { title: string; children?: ComponentChildren; id?: string }) {
	return (
		<section class="account-card" aria-labelledby={`${props.id ?? "card"}-title`} id={props.id}>
			<h2 id={`${props.id ?? "card"}-title`} tabIndex={-1}>
				{props.title}
			</h2>
			{props.children}
		</section>
	);
}

/** A table whose cells wrap, so it fits a phone's width (375 px) without scrolling sideways. */
function Table(props: { label: string; head: string[]; rows: ComponentChildren[][] }) {
	return (
		<div class="table-wrap">
			<table aria-label={props.label}>
				<thead>
					<tr>
						{props.head.map((h) => (
							<th scope="col">{h || <span class="visually-hidden">Actions</span>}</th>
						))}
					</tr>
				</thead>
				<tbody>
					{props.rows.map((r) => (
						<tr>
							{r.map((c) => (
								<td>{c}</td>
							))}
						</tr>
					))}
				</tbody>
			</table>
		</div>
	);
}

/** A button that runs `action`, disabled meanwhile; a refusal goes to `onError`. */
function Action(props: {
	label: string;
	action: () => Promise<unknown>;
	onError: (message: string) => void;
	primary?: boolean;
}) {
	const [busy, setBusy] = useState(false);
	return (
		<button
			type="button"
			class={props.primary ? undefined : "secondary"}
			disabled={busy}
			onClick={() => {
				setBusy(true);
				props
					.action()
					.catch((e: Error) => props.onError(e.message))
					.finally(() => setBusy(false));
			}}
		>
			{props.label}
		</button>
	);
}

/** Something shown once (a new invite link, a token, a reset link): the person copies it now, with a button. */
function Secret(props: { shown?: { label: string; value: string } }) {
	const [copied, setCopied] = useState("");
	const text = useRef<HTMLParagraphElement>(null);
	const value = props.shown?.value;
	useEffect(() => setCopied(""), [value]);
	const copy = () => {
		const clip = navigator.clipboard as Clipboard | undefined;
		// Without a clipboard (a page served over plain http), the text is selected for Ctrl+C.
		const select = () => {
			const range = document.createRange();
			if (text.current) range.selectNodeContents(text.current);
			getSelection()?.removeAllRanges();
			getSelection()?.addRange(range);
			setCopied("Selected: press Ctrl+C (⌘C) to copy");
		};
		if (!clip || value === undefined) return select();
		clip.writeText(value).then(() => setCopied("Copied"), select);
	};
	return (
		<div role="status">
			{props.shown && (
				<>
					<p>{props.shown.label}</p>
					<p class="secret" ref={text}>
						{props.shown.value}
					</p>
					<button type="button" class="secondary" onClick={copy}>
						Copy
					</button>{" "}
					<span class="hint">{copied}</span>
				</>
			)}
		</div>
	);
}

function Header(props: { me?: Me }) {
	return (
		<header class="top account-top">
			<h1>hubbub</h1>
			{props.me && (
				<>
					<p class="account-who">
						Signed in as {props.me.name}
						{props.me.role === "admin" ? " (admin)" : ""}.
					</p>
					<a class="account-link" href="/">
						Open the chat
					</a>
					<button type="button" class="secondary" onClick={() => void signOut()}>
						Sign out
					</button>
				</>
			)}
		</header>
	);
}

function Tabs(props: { me: Me; tab: Tab }) {
	const tabs: [Tab, string][] = [
		["account", "Account"],
		["sessions", "Sessions"],
		...(props.me.role === "admin" ? [["admin", "Admin"] as [Tab, string]] : []),
	];
	return (
		<nav class="account-tabs" aria-label="Account screens">
			{tabs.map(([tab, label]) => (
				<a href={`#${tab}`} aria-current={props.tab === tab ? "page" : undefined}>
					{label}
				</a>
			))}
		</nav>
	);
}

function AccountTab(props: { me: Me }) {
	const [done, setDone] = useState("");
	return (
		<Card title="Your account" id="account">
			<p>
				You are <strong>{props.me.name}</strong>, {props.me.role === "admin" ? "an admin" : "a member"} of
				this server. <a href="/">Open the chat</a>.
			</p>
			<h3>Change your password</h3>
			<p class="hint">Your other sessions end; this one stays signed in.</p>
			<Form
				fields={[
					{ name: "current", label: "Current password", type: "password", autocomplete: "current-password" },
					NEW_PASSWORD("New password (at least 8 characters)"),
				]}
				submit="Change the password"
				send={async (v) => {
					setDone("");
					await must("POST", "/api/auth/password", v);
					setDone("Your password is changed; your other sessions are ended.");
				}}
			/>
			<p role="status">{done}</p>
		</Card>
	);
}

interface SessionInfo {
	id: string;
	created: number;
	lastUsed: number;
	userAgent: string;
	address: string;
	current: boolean;
}

function SessionsTab(props: { reload: () => void }) {
	const [sessions, setSessions] = useState<SessionInfo[]>();
	const [error, setError] = useState("");
	const load = () =>
		must("GET", "/api/auth/sessions")
			.then((d) => setSessions(d.sessions as SessionInfo[]))
			.catch((e: Error) => (e instanceof Refused && e.status === 401 ? props.reload() : setError(e.message)));
	useEffect(() => {
		void load();
	}, []);
	return (
		<Card title="Your sessions" id="sessions">
			<p class="hint">Every browser and device signed in as you. End any you do not know.</p>
			{sessions && (
				<Table
					label="Your sessions"
					head={["Device", "Address", "Last used", ""]}
					rows={sessions.map((s) => [
						<span class="long">{s.userAgent || "unknown"}</span>,
						<span class="long">{s.address}</span>,
						when(s.lastUsed),
						s.current ? (
							"this one"
						) : (
							<Action
								label="End"
								onError={setError}
								action={() => must("DELETE", `/api/auth/sessions/${s.id}`).then(load)}
							/>
						),
					])}
				/>
			)}
			<div class="account-actions">
				<Action
					label="Sign out everywhere"
					onError={setError}
					action={() => must("POST", "/api/auth/sessions/end-all", {}).then(props.reload)}
				/>
			</div>
			<p class="error" role="alert">
				{error}
			</p>
		</Card>
	);
}

interface AccountInfo {
	name: string;
	role: string;
	bot: boolean;
	active: boolean;
	created: number;
}

interface InviteInfo {
	id: string;
	expires: number;
	maxUses: number;
	uses: number;
	revoked: boolean;
	usedBy: string[];
}

function AdminTab(props: { reload: () => void }) {
	const [accounts, setAccounts] = useState<AccountInfo[]>([]);
	const [invites, setInvites] = useState<InviteInfo[]>([]);
	const [shown, setShown] = useState<{ label: string; value: string }>();
	const [error, setError] = useState("");
	const load = async () => {
		try {
			const [a, i] = await Promise.all([
				must("GET", "/api/admin/accounts"),
				must("GET", "/api/admin/invites"),
			]);
			setAccounts(a.accounts as AccountInfo[]);
			setInvites(i.invites as InviteInfo[]);
		} catch (e) {
			if (e instanceof Refused && (e.status === 401 || e.status === 403)) props.reload();
			else setError((e as Error).message);
		}
	};
	useEffect(() => {
		void load();
	}, []);
	const path = (name: string) => `/api/admin/accounts/${encodeURIComponent(name)}`;
	const act = (method: string, url: string, body?: unknown) => () => must(method, url, body).then(load);
	return (
		<>
			<Card title="Accounts" id="admin">
				<Table
					label="Accounts"
					head={["Name", "Role", "State", ""]}
					rows={accounts.map((a) => [
						<span class="long">{a.name}</span>,
						a.bot ? "bot" : a.role,
						a.active ? "active" : "deactivated",
						<span class="account-actions">
							<Action
								label={a.active ? "Deactivate" : "Reactivate"}
								onError={setError}
								action={
									a.active
										? async () => {
												// Deactivating signs the person out everywhere at once: ask first.
												if (!confirm(`Deactivate ${a.name}? They are signed out everywhere at once.`)) return;
												await act("POST", path(a.name), { active: false })();
											}
										: act("POST", path(a.name), { active: true })
								}
							/>
							{!a.bot && (
								<>
									<Action
										label={a.role === "admin" ? "Unmake admin" : "Make admin"}
										onError={setError}
										action={act("POST", path(a.name), { role: a.role === "admin" ? "member" : "admin" })}
									/>
									<Action
										label="Password reset link"
										onError={setError}
										action={async () => {
											const r = await must("POST", `${path(a.name)}/reset`, {});
											setShown({
												label: `One-time link for ${a.name} (24 hours); give it only to them:`,
												value: String(r.link),
											});
										}}
									/>
								</>
							)}
						</span>,
					])}
				/>
				<p class="error" role="alert">
					{error}
				</p>
				<Secret shown={shown} />
			</Card>
			<Card title="Invite links" id="invites">
				<p class="hint">Whoever opens a link may make an account, as many times as its uses allow.</p>
				<Form
					fields={[
						{ name: "uses", label: "Uses", type: "number", value: "1", min: 1 },
						{ name: "hours", label: "Valid for (hours)", type: "number", value: "168", min: 1 },
					]}
					submit="Make an invite link"
					send={async (v) => {
						const r = await must("POST", "/api/admin/invites", {
							uses: Number(v.uses),
							hours: Number(v.hours),
						});
						setShown({ label: "New invite link (shown once; copy it now):", value: String(r.link) });
						await load();
					}}
				/>
				<Table
					label="Invite links"
					head={["Uses", "Expires", "Used by", ""]}
					rows={invites.map((i) => [
						`${i.uses} of ${i.maxUses}`,
						when(i.expires),
						<span class="long">{i.usedBy.join(", ") || "nobody yet"}</span>,
						i.revoked ? (
							"revoked"
						) : i.uses >= i.maxUses ? (
							"used up"
						) : (
							<Action
								label="Revoke"
								onError={setError}
								action={act("DELETE", `/api/admin/invites/${i.id}`)}
							/>
						),
					])}
				/>
			</Card>
			<Card title="Bots" id="bots">
				<p class="hint">
					A bot posts with an API token: <code>POST /api/rooms/ROOM/messages</code> (see the README).
				</p>
				<Form
					fields={[{ name: "name", label: "Bot name" }]}
					submit="Make a bot and its API token"
					send={async (v) => {
						const r = await must("POST", "/api/admin/bots", { name: v.name });
						setShown({ label: `API token for ${v.name} (shown once; copy it now):`, value: String(r.token) });
						await load();
					}}
				/>
			</Card>
		</>
	);
}

export function AccountApp() {
	const [screen, setScreen] = useState<Screen>({ kind: "loading" });
	const reload = () => {
		resolve()
			.then(setScreen)
			.catch((e: Error) => setScreen({ kind: "unreachable", message: e.message }));
	};
	useEffect(() => {
		reload();
		addEventListener("hashchange", reload);
		return () => removeEventListener("hashchange", reload);
	}, []);
	const go = (hash: string) => {
		if (location.hash === `#${hash}`) reload();
		else location.hash = hash;
	};
	const title = screenTitle(screen);
	useEffect(() => {
		document.title = `hubbub: ${title}`;
		// A screen of its own each time: the keyboard and a screen reader start at its first field, or its heading.
		const main = document.querySelector("main");
		if (screen.kind === "home") main?.querySelector<HTMLElement>("h2")?.focus();
		else (main?.querySelector<HTMLElement>("input") ?? main?.querySelector<HTMLElement>("h2"))?.focus();
	}, [screen.kind, screen.kind === "home" ? screen.tab : ""]);
	return (
		<>
			<Header me={screen.kind === "home" ? screen.me : undefined} />
			<main class="account-screen">
				{screen.kind === "home" && <Tabs me={screen.me} tab={screen.tab} />}
				{body(screen, reload, go)}
			</main>
		</>
	);
}

function screenTitle(screen: Screen): string {
	switch (screen.kind) {
		case "loading":
			return "loading";
		case "unreachable":
			return "server not reachable";
		case "none":
			return "no accounts here";
		case "setup":
			return "Set up this server";
		case "invite":
			return screen.usable ? "Join this chat" : "Invite not valid";
		case "reset":
			return screen.name ? `New password for ${screen.name}` : "Link not valid";
		case "signin":
			return "Sign in";
		case "home":
			return { account: "Your account", sessions: "Your sessions", admin: "Admin" }[screen.tab];
	}
}

function body(screen: Screen, reload: () => void, go: (hash: string) => void) {
	switch (screen.kind) {
		case "loading":
			return <p class="hint">Loading…</p>;
		case "unreachable":
			return (
				<Card title="The server could not be reached">
					<p class="error" role="alert">
						{screen.message}
					</p>
				</Card>
			);
		case "none":
			return (
				<Card title="No accounts here">
					<p>
						This server runs without accounts: <a href="/">open the chat</a> and pick a name.
					</p>
				</Card>
			);
		case "setup":
			return (
				<Card title="Set up this server">
					<p>No account exists yet. The one you make now is the first admin.</p>
					<Form
						fields={[{ name: "name", label: "Your name", autocomplete: "username" }, NEW_PASSWORD()]}
						submit="Create the admin account"
						send={async (v) => {
							await must("POST", "/api/auth/setup", v);
							// The first admin's next step is inviting people.
							go("admin");
						}}
					/>
				</Card>
			);
		case "invite":
			if (!screen.usable)
				return (
					<Card title="Invite not valid">
						<p>This invite link is used up, expired or revoked. Ask for a new one.</p>
					</Card>
				);
			return (
				<Card title="Join this chat">
					<Form
						fields={[{ name: "name", label: "Your name", autocomplete: "username" }, NEW_PASSWORD()]}
						submit="Create my account"
						send={async (v) => {
							await must("POST", "/api/auth/signup", { ...v, invite: screen.code });
							// Someone who has just joined came to talk: straight into the chat, as signing in does.
							location.assign("/");
						}}
					/>
				</Card>
			);
		case "reset":
			if (!screen.name)
				return (
					<Card title="Link not valid">
						<p>{screen.message}</p>
					</Card>
				);
			return (
				<Card title={`New password for ${screen.name}`}>
					<Form
						fields={[NEW_PASSWORD("New password (at least 8 characters)")]}
						submit="Set the password"
						send={async (v) => {
							await must("POST", "/api/auth/reset", { code: screen.code, password: v.password });
							history.replaceState(null, "", "/account");
							reload();
						}}
					/>
				</Card>
			);
		case "signin":
			return (
				<>
					<Card title="Sign in">
						<Form
							fields={[
								{ name: "name", label: "Name", autocomplete: "username" },
								{ name: "password", label: "Password", type: "password", autocomplete: "current-password" },
							]}
							submit="Sign in"
							send={async (v) => {
								await must("POST", "/api/auth/signin", v);
								location.assign("/");
							}}
						/>
						{screen.signup === "invite" && (
							<p class="hint">New here? Ask an admin of this server for an invite link.</p>
						)}
					</Card>
					{screen.signup === "open" && (
						<Card title="New here?">
							<Form
								fields={[{ name: "name", label: "Your name", autocomplete: "username" }, NEW_PASSWORD()]}
								submit="Create my account"
								send={async (v) => {
									await must("POST", "/api/auth/signup", v);
									location.assign("/");
								}}
							/>
						</Card>
					)}
				</>
			);
		case "home":
			if (screen.tab === "sessions") return <SessionsTab reload={reload} />;
			if (screen.tab === "admin") return <AdminTab reload={reload} />;
			return <AccountTab me={screen.me} />;
	}
}

/** Draws the account screens in `root` (afresh: each time they are opened, the server is asked again). */
export function mount(root: HTMLElement): void {
	render(<AccountApp />, root);
}

/** Takes them away (their listeners with them) when the chat replaces them. */
export function unmount(root: HTMLElement): void {
	render(null, root);
}
