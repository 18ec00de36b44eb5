// Asks the server why it refused this page's WebSocket upgrade (GET /api/upgrade-check), so the page can say it.
import { z } from "zod";
import type { UpgradeCheck } from "./chat.ts";

const Answer = z.object({
	ok: z.boolean(),
	code: z.string().optional(),
	message: z.string().max(500).optional(),
	retryAfter: z.number().nonnegative().max(3600).optional(),
});

/**
 * The check for the socket at `wsUrl` as seen from `origin`. Undefined when the
 * server has no such route (404, an older server) or the answer is not one:
 * the page then reconnects as usual.
 */
export async function checkUpgrade(wsUrl: string, origin: string): Promise<UpgradeCheck | undefined> {
	const url = new URL("/api/upgrade-check", wsUrl);
	url.protocol = url.protocol === "wss:" ? "https:" : "http:";
	url.searchParams.set("origin", origin);
	const response = await fetch(url, { cache: "no-store" });
	if (response.status === 404) return undefined;
	const answer = Answer.safeParse(await response.json().catch(() => undefined));
	return answer.success ? answer.data : undefined;
}
