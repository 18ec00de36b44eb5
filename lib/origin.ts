// Which pages may open a WebSocket: the browser's Origin header checked against the config.

/**
 * No Origin (a bot, a CLI) is allowed. With no list, the Origin's host must be
 * the request's Host, so only the page this server served can connect.
 */
export function isOriginAllowed(origin: string | null, host: string | null, allowed: string[]): boolean {
	if (origin === null) return true;
	if (allowed.includes("*")) return true;
	if (allowed.length > 0) return allowed.includes(origin.toLowerCase().replace(/\/$/, ""));
	try {
		return host !== null && new URL(origin).host === host.toLowerCase();
	} catch {
		return false;
	}
}
