// The account screens at /account (--auth accounts): first-run setup, sign-in, sign-up from an
// invite, a reset link, your sessions and password, and the admin's accounts, invites and bots.
// Everything people typed is shown with textContent, never as HTML.

export {};

type Answer = { ok: boolean; code?: string; message?: string; [k: string]: unknown };

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; data: Answer }> {
	const r = await fetch(path, {
		method,
		headers: body === undefined ? {} : { "content-type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
		credentials: "same-origin",
	});
	let data: Answer;
	try {
		data = (await r.json()) as Answer;
	} catch {
		data = { ok: false, message: `the server answered ${r.status}` };
	}
	return { status: r.status, data };
}

type Child = Node | string;
function el<K extends keyof HTMLElementTagNameMap>(
	tag: K,
	props: Record<string, string> = {},
	...children: Child[]
): HTMLElementTagNameMap[K] {
	const node = document.createElement(tag);
	for (const [k, v] of Object.entries(props)) node.setAttribute(k, v);
	for (const c of children) node.append(c);
	return node;
}

const main = document.getElementById("main") as HTMLElement;
let uid = 0;

function screen(title: string, ...children: Child[]): void {
	main.replaceChildren(el("h1", {}, "hubbub"), el("h2", {}, title), ...children);
	document.title = `hubbub: ${title}`;
	main.querySelector<HTMLElement>("input, button")?.focus();
}

interface Field {
	name: string;
	label: string;
	type?: string;
	autocomplete?: string;
	value?: string;
}

/** A labelled form whose submit calls `send`; a refusal is shown in its alert line. */
function form(
	fields: Field[],
	submit: string,
	send: (values: Record<string, string>) => Promise<void>,
): HTMLFormElement {
	const f = el("form");
	const error = el("p", { class: "error", role: "alert" });
	for (const field of fields) {
		const id = `f${++uid}`;
		const input = el("input", {
			id,
			name: field.name,
			type: field.type ?? "text",
			required: "",
			...(field.autocomplete ? { autocomplete: field.autocomplete } : {}),
		});
		if (field.value !== undefined) input.value = field.value;
		if (field.type === "password" && field.autocomplete === "new-password") input.minLength = 8;
		f.append(el("label", { for: id }, field.label), input);
	}
	const button = el("button", { type: "submit" }, submit);
	f.append(button, error);
	f.addEventListener("submit", (e) => {
		e.preventDefault();
		error.textContent = "";
		button.disabled = true;
		const values = Object.fromEntries(
			fields.map((x) => [x.name, (f.elements.namedItem(x.name) as HTMLInputElement).value]),
		);
		send(values)
			.catch((err: Error) => {
				error.textContent = err.message;
			})
			.finally(() => {
				button.disabled = false;
			});
	});
	return f;
}

/** Throws the server's sentence when it refused. */
async function must(method: string, path: string, body?: unknown): Promise<Answer> {
	const { status, data } = await api(method, path, body);
	if (!data.ok) {
		if (status === 401 && path !== "/api/auth/signin") void show();
		throw new Error(data.message ?? `refused (${status})`);
	}
	return data;
}

const hashParams = () => new URLSearchParams(location.hash.slice(1));
const when = (ms: number) => new Date(ms).toLocaleString();

async function show(): Promise<void> {
	const { data: state } = await api("GET", "/api/auth/state");
	const params = hashParams();
	if (state.auth !== "accounts") {
		screen(
			"No accounts here",
			el(
				"p",
				{},
				"This server runs without accounts: ",
				el("a", { href: "/" }, "open the chat"),
				" and pick a name.",
			),
		);
		return;
	}
	if (state.setup) {
		screen(
			"Set up this server",
			el("p", {}, "No account exists yet. The one you make now is the first admin."),
			form(
				[
					{ name: "name", label: "Your name", autocomplete: "username" },
					{
						name: "password",
						label: "Password (at least 8 characters)",
						type: "password",
						autocomplete: "new-password",
					},
				],
				"Create the admin account",
				async (v) => {
					await must("POST", "/api/auth/setup", v);
					await show();
				},
			),
		);
		return;
	}
	const invite = params.get("invite");
	const reset = params.get("reset");
	if (invite && !state.account) {
		const usable = (await api("GET", `/api/auth/invite?code=${encodeURIComponent(invite)}`)).data.usable;
		if (!usable) {
			screen(
				"Invite not valid",
				el("p", {}, "This invite link is used up, expired or revoked. Ask for a new one."),
			);
			return;
		}
		screen(
			"Join this chat",
			form(
				[
					{ name: "name", label: "Your name", autocomplete: "username" },
					{
						name: "password",
						label: "Password (at least 8 characters)",
						type: "password",
						autocomplete: "new-password",
					},
				],
				"Create my account",
				async (v) => {
					await must("POST", "/api/auth/signup", { ...v, invite });
					history.replaceState(null, "", "/account");
					await show();
				},
			),
		);
		return;
	}
	if (reset) {
		const who = await api("GET", `/api/auth/reset?code=${encodeURIComponent(reset)}`);
		if (!who.data.ok) {
			screen("Link not valid", el("p", {}, String(who.data.message)));
			return;
		}
		screen(
			`New password for ${String(who.data.name)}`,
			form(
				[
					{
						name: "password",
						label: "New password (at least 8 characters)",
						type: "password",
						autocomplete: "new-password",
					},
				],
				"Set the password",
				async (v) => {
					await must("POST", "/api/auth/reset", { code: reset, password: v.password });
					history.replaceState(null, "", "/account");
					await show();
				},
			),
		);
		return;
	}
	if (!state.account) {
		const parts: Child[] = [
			form(
				[
					{ name: "name", label: "Name", autocomplete: "username" },
					{ name: "password", label: "Password", type: "password", autocomplete: "current-password" },
				],
				"Sign in",
				async (v) => {
					await must("POST", "/api/auth/signin", v);
					location.assign("/");
				},
			),
		];
		if (state.signup === "open") {
			parts.push(
				el("h2", {}, "New here?"),
				form(
					[
						{ name: "name", label: "Your name", autocomplete: "username" },
						{
							name: "password",
							label: "Password (at least 8 characters)",
							type: "password",
							autocomplete: "new-password",
						},
					],
					"Create my account",
					async (v) => {
						await must("POST", "/api/auth/signup", v);
						await show();
					},
				),
			);
		}
		screen("Sign in", ...parts);
		return;
	}
	await signedIn(state.account as { name: string; role: string });
}

async function signedIn(me: { name: string; role: string }): Promise<void> {
	const signout = el("button", { type: "button" }, "Sign out");
	signout.addEventListener("click", async () => {
		await api("POST", "/api/auth/signout", {});
		await show();
	});
	const parts: Child[] = [
		el(
			"p",
			{},
			`Signed in as ${me.name}${me.role === "admin" ? " (admin)" : ""}. `,
			el("a", { href: "/" }, "Open the chat"),
			" ",
		),
		signout,
		el("h2", {}, "Your sessions"),
		await sessionsTable(),
		el("h2", {}, "Change your password"),
		form(
			[
				{ name: "current", label: "Current password", type: "password", autocomplete: "current-password" },
				{
					name: "password",
					label: "New password (at least 8 characters)",
					type: "password",
					autocomplete: "new-password",
				},
			],
			"Change the password",
			async (v) => {
				await must("POST", "/api/auth/password", v);
				await show();
			},
		),
	];
	if (me.role === "admin") parts.push(...(await adminParts()));
	screen("Your account", ...parts);
}

function button(label: string, action: () => Promise<unknown>): HTMLButtonElement {
	const b = el("button", { type: "button" }, label);
	b.addEventListener("click", () => {
		b.disabled = true;
		action()
			.then(() => show())
			.catch((e: Error) => alert(e.message))
			.finally(() => {
				b.disabled = false;
			});
	});
	return b;
}

function table(head: string[], rows: Child[][]): HTMLTableElement {
	return el(
		"table",
		{},
		el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
		el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))),
	);
}

async function sessionsTable(): Promise<Node> {
	const data = await must("GET", "/api/auth/sessions");
	const sessions = data.sessions as {
		id: string;
		created: number;
		lastUsed: number;
		userAgent: string;
		address: string;
		current: boolean;
	}[];
	const wrap = el("div");
	wrap.append(
		table(
			["Device", "Address", "Last used", ""],
			sessions.map((s) => [
				s.userAgent || "unknown",
				s.address,
				when(s.lastUsed),
				s.current ? "this one" : button("End", () => must("DELETE", `/api/auth/sessions/${s.id}`)),
			]),
		),
		button("Sign out everywhere", () => must("POST", "/api/auth/sessions/end-all", {})),
	);
	return wrap;
}

async function adminParts(): Promise<Child[]> {
	const accounts = (await must("GET", "/api/admin/accounts")).accounts as {
		name: string;
		role: string;
		bot: boolean;
		active: boolean;
		created: number;
	}[];
	const invites = (await must("GET", "/api/admin/invites")).invites as {
		id: string;
		expires: number;
		maxUses: number;
		uses: number;
		revoked: boolean;
		usedBy: string[];
	}[];
	const path = (name: string) => `/api/admin/accounts/${encodeURIComponent(name)}`;
	const shown = el("div", { role: "status" });
	const reveal = (label: string, secret: string) =>
		shown.replaceChildren(el("p", {}, label), el("p", { class: "secret" }, secret));
	return [
		el("h2", {}, "Accounts"),
		table(
			["Name", "Role", "State", ""],
			accounts.map((a) => [
				a.name,
				a.bot ? "bot" : a.role,
				a.active ? "active" : "deactivated",
				el(
					"span",
					{},
					button(a.active ? "Deactivate" : "Reactivate", () =>
						must("POST", path(a.name), { active: !a.active }),
					),
					" ",
					...(a.bot
						? []
						: [
								button(a.role === "admin" ? "Unmake admin" : "Make admin", () =>
									must("POST", path(a.name), { role: a.role === "admin" ? "member" : "admin" }),
								),
								" ",
								(() => {
									const b = el("button", { type: "button" }, "Password reset link");
									b.addEventListener("click", async () => {
										const r = await must("POST", `${path(a.name)}/reset`, {}).catch((e: Error) => ({
											link: e.message,
										}));
										reveal(`One-time link for ${a.name} (24 hours); give it only to them:`, String(r.link));
									});
									return b;
								})(),
							]),
				),
			]),
		),
		shown,
		el("h2", {}, "Invite links"),
		form(
			[
				{ name: "uses", label: "Uses", type: "number", value: "1" },
				{ name: "hours", label: "Valid for (hours)", type: "number", value: "168" },
			],
			"Make an invite link",
			async (v) => {
				const r = await must("POST", "/api/admin/invites", { uses: Number(v.uses), hours: Number(v.hours) });
				await show();
				const again = main.querySelector('[role="status"]');
				again?.replaceChildren(
					el("p", {}, "New invite link (shown once; copy it now):"),
					el("p", { class: "secret" }, String(r.link)),
				);
			},
		),
		table(
			["Uses", "Expires", "Used by", ""],
			invites.map((i) => [
				`${i.uses} of ${i.maxUses}`,
				when(i.expires),
				i.usedBy.join(", ") || "nobody yet",
				i.revoked ? "revoked" : button("Revoke", () => must("DELETE", `/api/admin/invites/${i.id}`)),
			]),
		),
		el("h2", {}, "Bots"),
		form([{ name: "name", label: "Bot name" }], "Make a bot and its API token", async (v) => {
			const r = await must("POST", "/api/admin/bots", { name: v.name });
			await show();
			main
				.querySelector('[role="status"]')
				?.replaceChildren(
					el("p", {}, `API token for ${v.name} (shown once; copy it now):`),
					el("p", { class: "secret" }, String(r.token)),
				);
		}),
	];
}

window.addEventListener("hashchange", () => void show());
show().catch((e: Error) => {
	main.replaceChildren(
		el("h1", {}, "hubbub"),
		el("p", { class: "error", role: "alert" }, `The server could not be reached: ${e.message}`),
	);
});
