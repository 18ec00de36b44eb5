// Who is connecting: the browser's Origin checked against the config, and the client address behind a trusted proxy.

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

/**
 * The client's address: the peer's, unless the peer is a trusted proxy, in
 * which case the last X-Forwarded-For entry (the one that proxy added).
 * Anyone else's X-Forwarded-For is ignored, so it cannot dodge per-address limits.
 */
export function clientAddress(peer: string | undefined, headers: Headers, trusted: string[]): string {
	const direct = normalize(peer ?? "unknown");
	if (!trusted.some((t) => normalize(t) === direct)) return direct;
	const forwarded = headers.get("x-forwarded-for")?.split(",").at(-1)?.trim();
	return forwarded ? normalize(forwarded) : direct;
}

/** IPv4 peers can show up as IPv4-mapped IPv6 (::ffff:1.2.3.4); one spelling per client. */
function normalize(address: string): string {
	return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
