// Helpers for protocol 1.2 room tests: a device of a signed-in person, a request answered by ref, a join's answer.
import type { ServerFrameOf } from "../protocol.ts";
import type { Browser } from "./accounts-helpers.ts";
import { Client } from "./helpers.ts";

export type Welcome = ServerFrameOf<"welcome">;

/** A connection of `who` (one device), with its welcome. */
export async function device(s: { ws: string }, who: Browser): Promise<{ c: Client; welcome: Welcome }> {
	const c = await Client.connect(s.ws, { headers: who.wsHeaders() });
	const welcome = await c.expect("welcome");
	return { c, welcome };
}

export async function connect(s: { ws: string }, who: Browser): Promise<Client> {
	return (await device(s, who)).c;
}

let refs = 0;
/** Sends a 1.2 frame with a fresh ref and waits for its answer: the frame of `type`, or the error carrying that ref. */
export async function ask<T extends ServerFrameOf<"room" | "directory">["type"]>(
	c: Client,
	type: T,
	frame: Record<string, unknown>,
): Promise<ServerFrameOf<T> | ServerFrameOf<"error">> {
	const ref = `r${++refs}`;
	c.send({ ...frame, ref });
	return (await c.next(
		(f) => (f.type === type || f.type === "error") && "ref" in f && f.ref === ref,
		10_000,
		true,
	)) as ServerFrameOf<T> | ServerFrameOf<"error">;
}

/** The answer to a join: `joined`, or the error naming the room. */
export async function tryJoin(c: Client, room: string, since?: number) {
	c.send(since === undefined ? { type: "join", room } : { type: "join", room, since });
	return c.next(
		(f) => (f.type === "joined" || f.type === "error") && "room" in f && f.room === room,
		10_000,
		true,
	);
}
