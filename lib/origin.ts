// Who is connecting: the browser's Origin checked against the config, and the client address behind a trusted proxy.
import { isIP } from "node:net";

/**
 * An `--origin` value in the one spelling browsers send (`URL.origin`), or a
 * sentence saying why it can never match. Browsers leave a default port out
 * and never send a wildcard, a path or a user name, so those are errors.
 */
export function parseOrigin(raw: string): { ok: true; origin: string } | { ok: false; message: string } {
	if (raw === "*") return { ok: true, origin: "*" };
	const bad = (why: string) => ({ ok: false as const, message: why });
	if (raw.includes("*")) return bad('wildcards are not supported: list each origin, or give "*" alone');
	if (!/^https?:\/\//i.test(raw)) return bad("an origin starts with http:// or https://");
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		return bad("it is not a valid URL");
	}
	if (url.username || url.password) return bad("an origin has no user name or password");
	if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash)
		return bad("an origin has no path, query or fragment: scheme, host and port only");
	const explicitPort = /^https?:\/\/(\[[^\]]*\]|[^/:]*):(\d*)/i.exec(raw)?.[2];
	if (explicitPort !== undefined && url.port === "") {
		return bad(
			`browsers leave the default port out of the Origin they send, so this never matches: write ${url.origin}`,
		);
	}
	return { ok: true, origin: url.origin };
}

/** Host names that only ever mean this machine or a literal address: a rebinding page cannot use them. */
function isLiteralHost(hostname: string): boolean {
	const bare = hostname.replace(/^\[|\]$/g, "");
	return isIP(bare) !== 0 || bare === "localhost" || bare.endsWith(".localhost");
}

export type OriginVerdict = { ok: true } | { ok: false; message: string };

/**
 * No Origin (a bot, a CLI) is allowed. With `--origin` the Origin must be one
 * of those listed. Without it, the Origin's host must be the request's Host
 * *and* a literal address or localhost: a DNS-rebinding page controls both
 * Origin and Host (`evil.com`), so a named host must be listed with --origin.
 */
export function checkOrigin(origin: string | null, host: string | null, allowed: string[]): OriginVerdict {
	if (origin === null) return { ok: true };
	if (allowed.includes("*")) return { ok: true };
	const parsed = parseOrigin(origin);
	const normalized = parsed.ok ? parsed.origin : origin.toLowerCase();
	if (allowed.length > 0) {
		if (allowed.includes(normalized)) return { ok: true };
		return {
			ok: false,
			message: `this server only accepts pages from ${allowed.join(", ")} (its --origin setting), not from ${normalized}; open it at that address, or ask the operator to add --origin ${normalized}`,
		};
	}
	let url: URL | undefined;
	try {
		url = new URL(origin);
	} catch {}
	if (!url || host === null || url.host !== host.toLowerCase()) {
		return {
			ok: false,
			message: `this server accepts pages only from its own address, and ${normalized} is not it; the operator can allow it with --origin ${normalized}`,
		};
	}
	if (!isLiteralHost(url.hostname)) {
		return {
			ok: false,
			message: `this server has no --origin setting, so it accepts pages only at an IP address or localhost, not at ${url.host}; the operator should start it with --origin ${url.origin}`,
		};
	}
	return { ok: true };
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

/**
 * The key per-address limits count on: an IPv4 address itself, an IPv6
 * address's /64 (one subscriber usually gets a whole /64, so counting single
 * IPv6 addresses would give one person unlimited connections).
 */
export function addressGroup(address: string): string {
	if (isIP(address) !== 6) return address;
	const [head = "", tail] = address.split("::");
	const left = head ? head.split(":") : [];
	const right = tail ? tail.split(":") : [];
	const groups =
		tail === undefined
			? left
			: [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
	if (groups.some((g) => g.includes("."))) return address;
	return `${groups
		.slice(0, 4)
		.map((g) => (Number.parseInt(g || "0", 16) || 0).toString(16))
		.join(":")}::/64`;
}
