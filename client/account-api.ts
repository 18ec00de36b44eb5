// The account routes as the page calls them (--auth accounts): JSON, same origin, the session cookie.

export type Answer = { ok: boolean; code?: string; message?: string; [k: string]: unknown };

export interface Me {
	name: string;
	role: string;
}

/** What GET /api/auth/state says. */
export interface AuthState {
	auth: "accounts" | "none";
	setup?: boolean;
	signup?: "open" | "invite" | "closed";
	account?: Me;
}

export async function api(
	method: string,
	path: string,
	body?: unknown,
): Promise<{ status: number; data: Answer }> {
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

/** A refusal, with the server's sentence as its message. */
export class Refused extends Error {
	constructor(
		readonly status: number,
		message: string,
	) {
		super(message);
	}
}

/** The answer when the server agreed; throws Refused with its sentence otherwise. */
export async function must(method: string, path: string, body?: unknown): Promise<Answer> {
	const { status, data } = await api(method, path, body);
	if (!data.ok) throw new Refused(status, data.message ?? `refused (${status})`);
	return data;
}

export async function authState(): Promise<AuthState> {
	return (await must("GET", "/api/auth/state")) as unknown as AuthState;
}

/** Ends this browser's session; the page then goes to the sign-in screen. */
export async function signOut(): Promise<void> {
	await api("POST", "/api/auth/signout", {});
	location.assign("/account");
}
