// Cluster presence (--redis): names and room members of every process kept in Redis beside each process's heartbeat.
import type { Logger } from "./log.ts";
import { nameKey } from "./names.ts";
import type { Presence, PresenceHooks } from "./presence.ts";
import type { RedisLink } from "./redis-link.ts";

const REAP_EVERY_MS = 2000;

/**
 * Takes a name unless a live process other than this one holds it, in one
 * step, so two processes never both take a name (from a dead holder either).
 * KEYS name, this process's names; ARGV own id, heartbeat key prefix, name key.
 */
const CLAIM = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. holder) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return 1`;

/** Lets a name go if `ARGV[1]` holds it. KEYS name, the holder's names; ARGV holder id, name key. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1`;

/**
 * A room's member record: field name key, value {n: display name, p: [ids of
 * the processes with a socket of that name in the room]}, so one person on
 * several processes is in the room until the last of them leaves.
 */
const PROCS = `
local function procs(v)
	local ok, e = pcall(cjson.decode, v or '')
	if not ok or type(e) ~= 'table' then return {} end
	if type(e.p) == 'string' then return {e.p} end
	if type(e.p) == 'table' then return e.p end
	return {}
end
local function without(list, id)
	local rest = {}
	for _, p in ipairs(list) do if p ~= id then table.insert(rest, p) end end
	return rest
end`;

/**
 * Adds this process to a name's record in a room; 1 when no process had the
 * name there before (its arrival is news to the room), else 0.
 * KEYS members, this process's rooms; ARGV name key, display name, own id, room.
 */
const ENTER = `${PROCS}
local before = procs(redis.call('HGET', KEYS[1], ARGV[1]))
local ps = without(before, ARGV[3])
table.insert(ps, ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({n = ARGV[2], p = ps}))
redis.call('SADD', KEYS[2], ARGV[4])
if #before == 0 then return 1 end
return 0`;

/**
 * Takes process `ARGV[2]` out of a name's record in a room (the name may be on
 * other processes too); 1 when no process is left with it there (it left the room), else 0.
 * KEYS members; ARGV name key, process id.
 */
const EXIT = `${PROCS}
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 1 end
local rest = without(procs(v), ARGV[2])
if #rest == 0 then
	redis.call('HDEL', KEYS[1], ARGV[1])
	return 1
end
local ok, e = pcall(cjson.decode, v)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({n = ok and type(e) == 'table' and e.n or ARGV[1], p = rest}))
return 0`;

/**
 * Removes a dead process's members and names in one step, unless it beats
 * again meanwhile (then it registers everything again itself), and returns
 * the (room, name) pairs that left, for their rooms to be told.
 * KEYS the set of process ids; ARGV prefix, the dead process's id.
 */
const REAP = `${PROCS}
local p, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. ':proc:' .. id) == 1 then return {} end
local gone = {}
for _, room in ipairs(redis.call('SMEMBERS', p .. ':proc:' .. id .. ':rooms')) do
	local key = p .. ':members:' .. room
	local all = redis.call('HGETALL', key)
	for i = 1, #all, 2 do
		local before = procs(all[i + 1])
		local rest = without(before, id)
		if #rest == 0 then
			redis.call('HDEL', key, all[i])
			if #before > 0 then
				table.insert(gone, room)
				table.insert(gone, cjson.decode(all[i + 1]).n)
			end
		elseif #rest < #before then
			redis.call('HSET', key, all[i], cjson.encode({n = cjson.decode(all[i + 1]).n, p = rest}))
		end
	end
end
for _, k in ipairs(redis.call('SMEMBERS', p .. ':proc:' .. id .. ':names')) do
	local key = p .. ':name:' .. k
	if redis.call('GET', key) == id then redis.call('DEL', key) end
end
redis.call('DEL', p .. ':proc:' .. id .. ':rooms', p .. ':proc:' .. id .. ':names')
redis.call('SREM', KEYS[1], id)
-- If it was only stalled, it finds this when it runs again and tells its rooms that its members are back.
redis.call('SET', p .. ':reaped:' .. id, '1', 'EX', '3600')
return gone`;

interface Entry {
	/** Display name. */
	n: string;
	/** The processes with a socket of that name in the room. */
	p: string[];
}

/**
 * This process keeps its own record of what it claimed and entered, and
 * after every reconnect makes Redis hold exactly that: what was released or
 * exited while Redis was away is removed then, not left behind. A process
 * that stops beating is reaped by the others, who tell its rooms that its
 * members left.
 */
export class RedisPresence implements Presence {
	private readonly names = new Map<string, string>();
	private readonly rooms = new Map<string, Map<string, string>>();
	private hooks?: PresenceHooks;
	private reaper?: ReturnType<typeof setInterval>;

	constructor(
		private readonly link: RedisLink,
		private readonly log: Logger,
	) {
		link.onUp(() => this.register());
	}

	private readonly key = {
		name: (k: string) => this.link.key("name", k),
		names: (id: string) => this.link.key("proc", id, "names"),
		rooms: (id: string) => this.link.key("proc", id, "rooms"),
		members: (room: string) => this.link.key("members", room),
		proc: (id: string) => this.link.key("proc", id),
		reaped: (id: string) => this.link.key("reaped", id),
	};

	async start(hooks: PresenceHooks): Promise<void> {
		this.hooks = hooks;
		this.reaper ??= setInterval(() => {
			this.reap().catch((e) => this.log.warn("redis_reap_failed", { error: (e as Error).message }));
		}, REAP_EVERY_MS);
		await this.link.start();
	}

	async claim(name: string): Promise<boolean> {
		const k = nameKey(name);
		const took = await this.take(k);
		// Redis unreachable: this process's own check is all there is, until it registers again.
		if (took === false) return false;
		this.names.set(k, name);
		return true;
	}

	private async take(k: string): Promise<boolean | undefined> {
		const id = this.link.id;
		const took = await this.link.script<number>(
			CLAIM,
			[this.key.name(k), this.key.names(id)],
			[id, `${this.key.proc("")}`, k],
		);
		return took === undefined ? undefined : Number(took) === 1;
	}

	release(name: string): void {
		const k = nameKey(name);
		this.names.delete(k);
		this.untake(k, this.link.id);
	}

	private untake(k: string, holder: string): Promise<unknown> {
		return this.link.script(RELEASE, [this.key.name(k), this.key.names(holder)], [holder, k]);
	}

	async enter(room: string, name: string): Promise<boolean> {
		let here = this.rooms.get(room);
		if (!here) {
			here = new Map();
			this.rooms.set(room, here);
		}
		here.set(nameKey(name), name);
		// Redis unreachable: news as far as this process can tell.
		return (await this.put(room, name)) !== 0;
	}

	private async put(room: string, name: string): Promise<number | undefined> {
		const id = this.link.id;
		const first = await this.link.script<number>(
			ENTER,
			[this.key.members(room), this.key.rooms(id)],
			[nameKey(name), name, id, room],
		);
		return first === undefined ? undefined : Number(first);
	}

	async exit(room: string, name: string): Promise<boolean> {
		const k = nameKey(name);
		const here = this.rooms.get(room);
		here?.delete(k);
		if (here?.size === 0) this.rooms.delete(room);
		// Redis unreachable: gone as far as this process can tell.
		return (await this.remove(room, k, this.link.id)) !== 0;
	}

	private async remove(room: string, k: string, owner: string): Promise<number | undefined> {
		const gone = await this.link.script<number>(EXIT, [this.key.members(room)], [k, owner]);
		return gone === undefined ? undefined : Number(gone);
	}

	async members(room: string): Promise<string[]> {
		// Whoever enters after this read announces it on the room's channel: be listening by then.
		await this.link.whenLive(this.link.roomChannel(room));
		const all = await this.link.send<Record<string, string>>("HGETALL", [this.key.members(room)]);
		return Object.values(all ?? {}).flatMap((value) => {
			const entry = parse(value);
			return entry?.p.some((p) => p !== this.link.id) ? [entry.n] : [];
		});
	}

	/**
	 * Makes Redis hold exactly this process's names and members (after a
	 * reconnect, or after being taken for dead). If the others reaped this
	 * process meanwhile, they told its rooms that its members left: say they are back.
	 */
	private async register(): Promise<void> {
		const id = this.link.id;
		const reaped = Number(await this.link.send<number>("DEL", [this.key.reaped(id)])) === 1;
		// Concurrent commands share one round trip (Bun pipelines them): thousands of members re-register at once.
		const held = (await this.link.send<string[]>("SMEMBERS", [this.key.names(id)])) ?? [];
		await Promise.all(held.filter((k) => !this.names.has(k)).map((k) => this.untake(k, id)));
		await Promise.all(
			[...this.names].map(async ([k, name]) => {
				if ((await this.take(k)) === false) this.log.warn("name_conflict", { name, process: id });
			}),
		);
		const rooms = (await this.link.send<string[]>("SMEMBERS", [this.key.rooms(id)])) ?? [];
		await Promise.all(
			rooms.map(async (room) => {
				const here = this.rooms.get(room);
				const all = (await this.link.send<Record<string, string>>("HGETALL", [this.key.members(room)])) ?? {};
				const stale = Object.entries(all).filter(
					([k, value]) => parse(value)?.p.includes(id) && !here?.has(k),
				);
				await Promise.all(stale.map(([k]) => this.remove(room, k, id)));
				if (!here) await this.link.send("SREM", [this.key.rooms(id), room]);
			}),
		);
		await Promise.all(
			[...this.rooms].flatMap(([room, here]) => [...here.values()].map((name) => this.put(room, name))),
		);
		if (!reaped) return;
		this.log.warn("process_was_reaped", { process: id });
		for (const [room, here] of this.rooms)
			for (const name of here.values())
				this.hooks?.announce(room, { type: "presence", room, name, online: true });
	}

	/** Whether a process's heartbeat is current; unknown (Redis away) counts as alive, so nobody is reaped by mistake. */
	private async alive(id: string): Promise<boolean> {
		const n = await this.link.send<number | boolean>("EXISTS", [this.key.proc(id)]);
		return n === undefined || Number(n) > 0;
	}

	/** Removes the members and names of processes whose heartbeat stopped, telling their rooms. */
	private async reap(): Promise<void> {
		const procs = this.link.key("procs");
		for (const id of (await this.link.send<string[]>("SMEMBERS", [procs])) ?? []) {
			if (id === this.link.id || (await this.alive(id))) continue;
			const gone = await this.link.script<string[]>(REAP, [procs], [this.link.prefix, id]);
			if (!gone) continue;
			this.log.info("process_reaped", { process: id, members: gone.length / 2 });
			for (let i = 0; i + 1 < gone.length; i += 2) {
				const room = gone[i] as string;
				this.hooks?.announce(room, { type: "presence", room, name: gone[i + 1] as string, online: false });
			}
		}
	}

	async close(): Promise<void> {
		clearInterval(this.reaper);
		await this.link.close();
	}
}

function parse(value: string): Entry | undefined {
	try {
		const entry = JSON.parse(value) as { n: unknown; p: unknown };
		if (typeof entry.n !== "string") return undefined;
		// A single id: the record of a version before one name could be on several processes.
		if (typeof entry.p === "string") return { n: entry.n, p: [entry.p] };
		return Array.isArray(entry.p) && entry.p.every((p) => typeof p === "string")
			? { n: entry.n, p: entry.p }
			: undefined;
	} catch {
		return undefined;
	}
}
