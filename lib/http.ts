// What every HTTP response carries, and the answer to a method a route does not take.

/**
 * The page loads only its own script and styles (Bun's HTML bundle emits no
 * inline script), talks only to its own server, and may not be framed.
 */
export const SECURITY_HEADERS: Record<string, string> = {
	"content-security-policy":
		"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"x-content-type-options": "nosniff",
	"referrer-policy": "no-referrer",
	"x-frame-options": "DENY",
	"cross-origin-opener-policy": "same-origin",
};

/** Adds the security headers to a response (in place: Bun's responses from handlers are ours to change). */
export function secured(response: Response): Response {
	for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
		if (!response.headers.has(name)) response.headers.set(name, value);
	}
	return response;
}

export function methodNotAllowed(allow: string): Response {
	return secured(new Response("method not allowed\n", { status: 405, headers: { allow } }));
}
