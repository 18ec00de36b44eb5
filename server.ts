// Composition root: reads the config, opens the store, wires hub and bus, and serves the page, /ws, /healthz, /metrics and /api/upgrade-check.

import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Server } from "bun";
import page from "./client/index.html";
import { Hub, type HubOptions } from "./hub.ts";
import { Accounts } from "./lib/accounts.ts";
import { PageAssets } from "./lib/assets.ts";
import { AttachmentStore } from "./lib/attachments.ts";
import { AttachmentRoutes, uploadDir } from "./lib/attachments-http.ts";
import { MessageFiles } from "./lib/attachments-index.ts";
import { AuthHttp, readCookie, SESSION_COOKIE } from "./lib/auth-http.ts";
import { bindAccount, LiveSessions } from "./lib/auth-ws.ts";
import type { Bus } from "./lib/bus.ts";
import { LocalBus } from "./lib/bus-local.ts";
import { RedisBus } from "./lib/bus-redis.ts";
import { connectionCap } from "./lib/capacity.ts";
import { COMMANDS_HELP, isCommand, runCommand } from "./lib/cli.ts";
import { type Config, ConfigError, HELP, parseConfig } from "./lib/config.ts";
import { DiskFloor } from "./lib/health.ts";
import { methodNotAllowed, secured } from "./lib/http.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { Metrics } from "./lib/metrics.ts";
import { opsRoutes } from "./lib/ops-routes.ts";
import { clientAddress } from "./lib/origin.ts";
import { localPresence, type Presence } from "./lib/presence.ts";
import { RedisPresence } from "./lib/presence-redis.ts";
import { ForeignStoreError, RedisLink } from "./lib/redis-link.ts";
import { startRetention } from "./lib/retention.ts";
import { RoomFrames } from "./lib/room-frames.ts";
import { Rooms } from "./lib/rooms.ts";
import { Session, websocketHandler } from "./lib/session.ts";
import { type QuotaOptions, type Store, StoreError } from "./lib/store.ts";
import { PostgresStore, redact } from "./lib/store-postgres.ts";
import { type SqliteOptions, SqliteStore } from "./lib/store-sqlite.ts";
import { UpgradeGate } from "./lib/upgrade-gate.ts";
import pkg from "./package.json" with { type: "json" };
import { CLOSE } from "./protocol.ts";

export const VERSION: string = pkg.version;

export interface StartOptions {
	log?: Logger;
	/** An opened store (see openStore); without one, `config.db` is opened as SQLite. */
	store?: Store;
	metrics?: Metrics;
	sqlite?: SqliteOptions;
	/** Cluster mode: the bus and presence of a cluster (see redisCluster); without them, this process is alone. */
	cluster?: { bus: Bus; presence: Presence };
	/** The account tables (see Accounts.open); required with --auth accounts, closed by stop(). */
	accounts?: Accounts;
	/** The room tables (see Rooms.open, after the store and accounts); required with --auth accounts, closed by stop(). */
	rooms?: Rooms;
	/** TLS certificate and key already read (see readTls); otherwise read from config here. */
	tls?: Tls;
	/** Hub tuning for tests (e.g. the room feeds' retry policy, the presence grace). */
	hub?: Pick<HubOptions, "feed" | "presenceGraceMs" | "presence">;
}

export interface Tls {
	cert: string;
	key: string;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** The SQLite file `db` names, or undefined for PostgreSQL and `:memory:`. */
function sqliteFile(db: string): string | undefined {
	return POSTGRES_URL.test(db) || db === ":memory:" || db.startsWith("file:") ? undefined : db;
}

/** `--db /var/lib/hubbub/chat.db` on a fresh machine: make the folder rather than fail to open the file. */
function ensureFolder(db: string): void {
	const file = sqliteFile(db);
	if (!file) return;
	try {
		mkdirSync(dirname(file), { recursive: true });
	} catch (e) {
		throw new StartError(
			`cannot create the folder ${JSON.stringify(dirname(file))} for the database: ${(e as Error).message}`,
		);
	}
}

/** Opens `db`: a postgres:// URL is PostgreSQL, anything else a SQLite file. Throws StoreError or StartError. */
export async function openStore(
	db: string,
	metrics: Metrics,
	log?: Logger,
	quota: QuotaOptions = {},
): Promise<Store> {
	const onCommit = (seconds: number) => metrics.commitSeconds.observe(seconds);
	if (POSTGRES_URL.test(db)) return PostgresStore.open(db, { onCommit, ...quota });
	ensureFolder(db);
	return new SqliteStore(db, { onCommit, onBusy: log && storeRetryLog(log), ...quota });
}

function storeRetryLog(log: Logger) {
	return (waitMs: number, messages: number) => log.debug("store_busy_retry", { waitMs, messages });
}

/**
 * Cluster mode: one Redis link shared by the bus and presence, in a namespace
 * of this database's own (or `prefix`), so deployments sharing a Redis server
 * never meet. Call `link.start()` before serving: it refuses a namespace whose
 * processes serve another database.
 */
export function redisCluster(
	url: string,
	prefix: string | undefined,
	store: Store,
	log: Logger,
	metrics: Metrics,
	backoffMs?: { min: number; max: number },
): { link: RedisLink; bus: RedisBus; presence: RedisPresence } {
	const link = new RedisLink({
		url,
		prefix: prefix ?? `hubbub:${store.id}`,
		store: `${store.id}/${store.epoch}`,
		log,
		metrics,
		backoffMs,
	});
	metrics.gauge(
		"hubbub_bus_channels",
		"Room channels this process listens to on Redis.",
		() => link.listening,
	);
	return { link, bus: new RedisBus(link, metrics), presence: new RedisPresence(link, log) };
}

export interface Running {
	server: Server<Session>;
	hub: Hub;
	metrics: Metrics;
	/** Base URL, e.g. http://127.0.0.1:3000 */
	url: string;
	/** Closes every socket with 1001, commits pending writes, stops listening. */
	stop(): Promise<void>;
}

/** A startup problem worth one clear sentence and exit status 2. */
export class StartError extends Error {
	override name = "StartError";
}

const PEM = {
	certificate: /-----BEGIN (X509 |TRUSTED )?CERTIFICATE-----/,
	key: /-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/,
};

function readPem(path: string, what: "certificate" | "key"): string {
	let text: string;
	try {
		text = readFileSync(path, "utf8");
	} catch (e) {
		throw new StartError(`cannot read the TLS ${what} ${JSON.stringify(path)}: ${(e as Error).message}`);
	}
	if (!PEM[what].test(text)) {
		const line = what === "certificate" ? "-----BEGIN CERTIFICATE-----" : "-----BEGIN PRIVATE KEY-----";
		throw new StartError(
			`the TLS ${what} ${JSON.stringify(path)} is not a PEM ${what === "key" ? "private key" : "certificate"} (it has no "${line}" line)`,
		);
	}
	return text;
}

/** Why an upgrade would be refused, in words the page can show (GET /api/upgrade-check). */
/** Reads the TLS files the config names; throws StartError. Done before anything is written, so a bad path leaves no database behind. */
export function readTls(config: Config): Tls | undefined {
	return config.tlsCert
		? { cert: readPem(config.tlsCert, "certificate"), key: readPem(config.tlsKey as string, "key") }
		: undefined;
}

/** Starts one hubbub server. Throws StoreError or StartError with a sentence fit for a user. */
export function start(config: Config, options: StartOptions = {}): Running {
	const metrics = options.metrics ?? new Metrics();
	const log = options.log ?? createLogger(config.logLevel, undefined, () => metrics.logWriteFailures.inc());
	const tls = options.tls ?? readTls(config);
	const capacity = connectionCap(config.maxConns);
	if (!capacity.ok) throw new StartError(capacity.message);
	const { cap, limit: openFiles } = capacity;
	if (!options.store) ensureFolder(config.db);
	const store =
		options.store ??
		new SqliteStore(config.db, {
			onCommit: (seconds) => metrics.commitSeconds.observe(seconds),
			onBusy: storeRetryLog(log),
			// The search-erasure thread retries on its own; a failure that repeats (disk full) must be seen.
			onSearchThreadError: (message) => log.error("search_thread_failed", { message }),
			dailyQuota: config.quotaPerDay,
			...options.sqlite,
		});
	const bus = options.cluster?.bus ?? new LocalBus();
	const presence = options.cluster?.presence ?? localPresence;
	// Bun.serve needs the hub's socket handlers, the hub needs the server's topics: the server is
	// assigned in this same turn, before any socket can open.
	let server: Server<Session> | undefined;
	const rooms = config.auth === "accounts" ? options.rooms : undefined;
	if (config.auth === "accounts" && options.accounts && !rooms)
		throw new StartError("--auth accounts needs the room tables (Rooms.open) to be opened first");
	// Files in messages: uploads need accounts (--auth none has none to name), kept in a folder beside the database.
	const messageFiles = new MessageFiles(
		store,
		config.auth === "accounts" ? new AttachmentStore(uploadDir(config), config.maxUpload) : undefined,
		// A download has no connection that knows its rooms: the room store is asked (every process agrees).
		{ log, mayRead: rooms && ((reader, room) => rooms.mayRead(reader, room)) },
	);
	const hub = new Hub({
		// What the edit/delete rules ask of a room (lib/message-changes.ts): its kind, creator, whether archived.
		roomFacts:
			rooms &&
			(async (room) => {
				const row = await rooms.store.room(room);
				return (
					row && { kind: row.kind, creatorId: row.creator ?? undefined, archived: row.archived !== null }
				);
			}),
		messageChanged: rooms && ((message) => rooms.messageChanged(message)),
		files: messageFiles,
		store,
		metrics,
		log,
		bus,
		presence,
		topics: {
			publish: (topic, data) => (server as Server<Session>).publish(topic, data),
			subscriberCount: (topic) => server?.subscriberCount(topic) ?? 0,
		},
		// Half the buffer a slow client may hold: a reply never alone closes it for backpressure.
		maxReplyBytes: Math.floor(config.maxBuffer / 2),
		...options.hub,
	});
	const disk = new DiskFloor(sqliteFile(config.db), config.minFreeDisk, (problem) => {
		if (problem) log.warn("disk_low", { problem });
		else log.info("disk_ok", {});
	});
	metrics.gauge("hubbub_connections", "Open WebSocket connections.", () => hub.connectionCount);
	metrics.gauge(
		"hubbub_connections_max",
		"Connections this process accepts (--max-conns, or what the open-file limit allows).",
		() => (Number.isFinite(cap) ? cap : -1),
	);
	metrics.gauge("hubbub_rooms", "Rooms with members on this process.", () => hub.roomCount);
	metrics.gauge("hubbub_memory_rss_bytes", "Resident memory of this process.", () =>
		process.memoryUsage.rss(),
	);
	const files = new PageAssets(page);
	const gate = new UpgradeGate(config, cap, hub);

	const accounts = config.auth === "accounts" ? options.accounts : undefined;
	if (config.auth === "accounts" && !accounts)
		throw new StartError("--auth accounts needs the account tables (Accounts.open) to be opened first");
	const live = accounts ? new LiveSessions<Session>(accounts) : undefined;
	const auth = new AuthHttp({
		accounts,
		config,
		tls: tls !== undefined,
		log,
		post: async (from, room, id, text) => {
			const appended = await hub.post(from, room, id, text);
			rooms
				?.mentions(appended.message)
				.catch((e: Error) => log.warn("mentions_failed", { error: e.message }));
			return appended;
		},
		mayPost: rooms && ((bot, room) => rooms.botMayPost(bot, room)),
		refuseSends: () => disk.problem,
	});
	/** The live session a request's cookie names (--auth accounts). */
	const sessionOf = (req: Request, address: string) =>
		(accounts as Accounts).authenticate(readCookie(req.headers.get("cookie"), SESSION_COOKIE), {
			address,
			userAgent: req.headers.get("user-agent") ?? "",
		});
	const attachments = new AttachmentRoutes({
		config,
		files: messageFiles,
		log,
		signedIn: async (req, address) => (accounts ? (await sessionOf(req, address))?.account : undefined),
	});

	const routeNames = new Set(["/ws", "/healthz", "/metrics", "/api/upgrade-check"]);

	let listening: Server<Session>;
	try {
		listening = Bun.serve<Session>({
			port: config.port,
			hostname: config.host,
			development: false,
			// Always explicit: with development off, Bun 1.4 otherwise lets a second server bind the same port.
			reusePort: config.reusePort,
			// Bun refuses larger bodies itself (128 MiB by default); uploads are bounded by --max-upload instead.
			maxRequestBodySize: Math.max(128 * 1024 ** 2, config.maxUpload + 1024 ** 2),
			tls,
			routes: {
				"/ws": {
					GET: async (req: Request, srv: Server<Session>) => {
						const origin = req.headers.get("origin");
						const address = clientAddress(srv.requestIP(req)?.address, req.headers, config.trustProxy);
						log.debug("upgrade", { origin, host: req.headers.get("host"), address });
						const refused = gate.admit(origin, req.headers.get("host"), address);
						if (refused) {
							const reason = { 403: "origin", 429: "per_address", 503: "server_full" }[refused.status];
							metrics.connectionsRefused.inc(1, reason);
							log.info("upgrade_refused", { reason, origin, address });
							return secured(
								new Response(`${refused.message}\n`, {
									status: refused.status,
									// Closed at once: a refused client must not keep a descriptor in keep-alive.
									headers: {
										connection: "close",
										...(refused.retryAfter ? { "retry-after": String(refused.retryAfter) } : {}),
									},
								}),
							);
						}
						const data = new Session(address, config);
						if (accounts) {
							// --auth accounts: no valid session cookie, no socket (the origin check above stays).
							const session = await sessionOf(req, address);
							if (!session) {
								metrics.connectionsRefused.inc(1, "unauthenticated");
								log.info("upgrade_refused", { reason: "unauthenticated", origin, address });
								return secured(
									new Response("sign in first\n", { status: 401, headers: { connection: "close" } }),
								);
							}
							bindAccount(data, session);
						}
						if (srv.upgrade(req, { data })) return;
						return secured(new Response("expected a WebSocket upgrade\n", { status: 426 }));
					},
				},
				"/api/upgrade-check": {
					GET: async (req: Request, srv: Server<Session>) => {
						const origin = new URL(req.url).searchParams.get("origin") ?? req.headers.get("origin");
						const address = clientAddress(srv.requestIP(req)?.address, req.headers, config.trustProxy);
						const refused = gate.refusal(origin, req.headers.get("host"), address);
						log.debug("upgrade_check", { origin, address, refused: refused?.code });
						if (!refused && accounts && !(await sessionOf(req, address))) {
							return secured(
								Response.json(
									{
										ok: false,
										code: "not_signed_in",
										message:
											"sign in first: your session has ended or you have not signed in on this browser",
										signIn: "/account",
									},
									{ status: 401 },
								),
							);
						}
						if (!refused) return secured(Response.json({ ok: true }));
						const { status, retryAfter, ...body } = refused;
						return secured(
							Response.json(
								{ ok: false, ...body, ...(retryAfter ? { retryAfter } : {}) },
								{ status, headers: retryAfter ? { "retry-after": String(retryAfter) } : {} },
							),
						);
					},
				},
				"/api/uploads": {
					POST: (req: Request, srv: Server<Session>) =>
						attachments.upload(
							req,
							clientAddress(srv.requestIP(req)?.address, req.headers, config.trustProxy),
						),
					GET: () => methodNotAllowed("POST"),
					PUT: () => methodNotAllowed("POST"),
					DELETE: () => methodNotAllowed("POST"),
				},
				"/api/files/:id": {
					GET: (req: Request & { params: { id: string } }, srv: Server<Session>) =>
						attachments.download(
							req,
							req.params.id,
							clientAddress(srv.requestIP(req)?.address, req.headers, config.trustProxy),
						),
				},
				...opsRoutes({
					store,
					disk,
					metrics,
					metricsToken: config.metricsToken,
					version: VERSION,
					cluster: options.cluster ? () => bus.health() : undefined,
					counts: () => ({ connections: hub.connectionCount, rooms: hub.roomCount }),
				}),
			},
			fetch: async (req: Request, srv: Server<Session>) => {
				const path = new URL(req.url).pathname;
				if (path.startsWith("/api/")) {
					const answer = await auth.handle(req, srv as Server<unknown>);
					if (answer) return answer;
				}
				if (req.method === "GET" || req.method === "HEAD") {
					if (accounts && path === "/") {
						const address = clientAddress(srv.requestIP(req)?.address, req.headers, config.trustProxy);
						// Signed out, the chat page could do nothing: the sign-in (or first-run) screen instead.
						if (!(await sessionOf(req, address)))
							return secured(new Response(null, { status: 303, headers: { location: "/account" } }));
						const chat = await files.serve(path, req);
						const cookie = auth.refreshedCookie(req, srv as Server<unknown>);
						if (chat && cookie) chat.headers.append("set-cookie", cookie);
						if (chat) return chat;
					}
					// The account screens are the same single-page app (client/main.ts picks the screen by address).
					const file = await files.serve(path === "/account" ? "/" : path, req);
					if (file) return file;
				} else if (routeNames.has(path) || files.has(path) || path === "/account") {
					return methodNotAllowed(path === "/ws" || path.startsWith("/api/") ? "GET" : "GET, HEAD");
				}
				return secured(new Response("not found\n", { status: 404 }));
			},
			error: (e: Error) => {
				log.error("request_failed", { error: e.message });
				return secured(new Response("internal error\n", { status: 500 }));
			},
			websocket: withAccounts(
				websocketHandler(
					hub,
					config,
					log,
					() =>
						disk.problem
							? "the server's disk is nearly full, so it cannot store messages; try again later"
							: undefined,
					(address) => gate.punish(address),
					rooms && new RoomFrames(rooms),
				),
				live,
				rooms,
			),
		});
	} catch (e) {
		files.stop();
		disk.stop();
		store.close().catch((err: unknown) => log.error("store_close_failed", { error: (err as Error).message }));
		const code = (e as { code?: string }).code;
		if (code === "EADDRINUSE")
			throw new StartError(`port ${config.port} on ${config.host} is already in use`);
		if (tls)
			throw new StartError(
				`cannot listen on ${config.host}:${config.port} with the TLS certificate ${JSON.stringify(config.tlsCert)} and key ${JSON.stringify(config.tlsKey)}: ${(e as Error).message}`,
			);
		throw new StartError(`cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`);
	}
	server = listening;
	bus.start(hub).catch((e: unknown) => log.error("bus_start_failed", { error: (e as Error).message }));
	presence
		.start({
			announce: (room, frame) => {
				hub.deliverEvent(room, frame);
				bus.publishEvent(room, frame);
			},
		})
		.catch((e: unknown) => log.error("presence_start_failed", { error: (e as Error).message }));
	if (rooms) {
		hub.roomsChanged = () => rooms.heard();
		rooms
			.start(hub, (room) => hub.nudgeRooms(room))
			.catch((e: Error) => log.error("room_events_start_failed", { error: e.message }));
	}
	if (accounts) {
		accounts
			.watchRevocations((e) => log.warn("revocation_poll_failed", { error: e.message }))
			.catch((e) => log.error("revocation_watch_failed", { error: (e as Error).message }));
	}
	const idleMs = config.idleTimeout * 1000;
	const sweeper = setInterval(() => hub.sweep(idleMs), Math.max(250, idleMs / 4));
	const retention = startRetention(store, config, log, metrics, 60_000, () => messageFiles.sweep());
	// Uploads never sent are deleted after a day; files of deleted messages go at once (releaseMessage).
	const fileSweep = messageFiles.blobs ? messageFiles.startSweeping() : { stop: () => {} };
	const scheme = tls ? "https" : "http";
	const url = `${scheme}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${listening.port}`;
	log.info("listening", {
		url,
		port: listening.port,
		db: redact(config.db),
		epoch: store.epoch,
		version: VERSION,
		pid: process.pid,
		maxConnections: Number.isFinite(cap) ? cap : null,
		openFileLimit: openFiles ?? null,
	});
	if (config.origins.length === 0 && !/^(127\.|::1$|localhost$)/.test(config.host)) {
		log.warn("no_origin", {
			message:
				"no --origin given: the page is accepted only when opened at an IP address or localhost; set --origin to the address people type",
		});
	}

	if (accounts) {
		accounts
			.needsSetup()
			.then((needed) => {
				if (needed)
					log.warn("setup_needed", {
						url: `${url}/account`,
						message:
							"no account exists yet: open this address (with this server's real host name) to create the first admin",
					});
			})
			.catch((e) => log.error("account_check_failed", { error: (e as Error).message }));
	}

	let stopping: Promise<void> | undefined;
	return {
		server: listening,
		hub,
		metrics,
		url,
		stop: () => {
			stopping ??= (async () => {
				clearInterval(sweeper);
				retention.stop();
				fileSweep.stop();
				disk.stop();
				files.stop();
				listening.stop();
				await hub.closeAll(CLOSE.goingAway, "server shutting down");
				await bus.close();
				await presence.close();
				await rooms?.close();
				await store.close();
				await accounts?.close();
				await listening.stop(true);
				log.info("stopped", {});
			})();
			return stopping;
		},
	};
}

/**
 * --auth accounts: the account names the connection at open, and `welcome`
 * (with the account's rooms, lib/rooms.ts) goes out as soon as they are read,
 * no `hello` needed; an ended session's sockets are closed.
 */
function withAccounts(
	handler: ReturnType<typeof websocketHandler>,
	live: LiveSessions<Session> | undefined,
	rooms: Rooms | undefined,
): ReturnType<typeof websocketHandler> {
	if (!live || !rooms) return handler;
	const { open, close } = handler;
	return {
		...handler,
		open(ws) {
			open?.(ws);
			const account = live.add(ws);
			if (!account || ws.data.closed) return;
			ws.data.name = account.name;
			rooms.connect(ws, account);
		},
		close(ws, code, reason) {
			live.remove(ws);
			rooms.disconnect(ws);
			close?.(ws, code, reason);
		},
	};
}

/**
 * A promise rejection nothing handled would end the process (Bun's default):
 * every caller has its own catch, and this is the net under them: it logs and
 * counts the bug and keeps serving everyone else.
 */
export function guardProcess(log: Logger, metrics: Metrics): () => void {
	const onRejection = (reason: unknown) => {
		metrics.unhandledRejections.inc();
		log.error("unhandled_rejection", {
			error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason),
		});
	};
	process.on("unhandledRejection", onRejection);
	return () => process.off("unhandledRejection", onRejection);
}

function exitWith(status: number, message: string): never {
	process.stderr.write(`hubbub: ${message}\n`);
	process.exit(status);
}

async function main(): Promise<void> {
	// `hubbub backup …` and the other subcommands work on the database and exit; no server starts.
	if (isCommand(process.argv[2])) {
		const io = {
			out: (line: string) => process.stdout.write(`${line}\n`),
			err: (line: string) => process.stderr.write(`${line}\n`),
			env: process.env,
		};
		process.exit(await runCommand(process.argv.slice(2), io));
	}
	let parsed: ReturnType<typeof parseConfig>;
	try {
		parsed = parseConfig(process.argv.slice(2), process.env);
	} catch (e) {
		if (e instanceof ConfigError) exitWith(2, `${e.message}\nTry 'hubbub --help'.`);
		throw e;
	}
	if (parsed.kind === "help") {
		process.stdout.write(`${HELP}\n${COMMANDS_HELP}`);
		return;
	}
	if (parsed.kind === "version") {
		process.stdout.write(`hubbub ${VERSION} (protocol 1)\n`);
		return;
	}
	let running: Running;
	let log: Logger;
	try {
		const config = parsed.config;
		const metrics = new Metrics();
		log = createLogger(config.logLevel, undefined, () => metrics.logWriteFailures.inc());
		guardProcess(log, metrics);
		// Everything the config names is checked before the database is opened (and maybe created).
		const tls = readTls(config);
		const store = await openStore(config.db, metrics, log, { dailyQuota: config.quotaPerDay });
		// The first Redis attempt comes before the port opens, so the first clients already see the whole cluster.
		const cluster = config.redis
			? redisCluster(config.redis, config.redisPrefix, store, log, metrics)
			: undefined;
		if (cluster) cluster.link.onForeignStore = (e) => exitWith(2, e.message);
		await cluster?.link.start();
		const accounts = config.auth === "accounts" ? await Accounts.open(config.db) : undefined;
		const rooms = accounts
			? await Rooms.open(config.db, accounts.store, (what, e) => log.warn(what, { error: e.message }))
			: undefined;
		running = start(config, { store, metrics, log, cluster, accounts, rooms, tls });
	} catch (e) {
		if (e instanceof StoreError || e instanceof StartError || e instanceof ForeignStoreError)
			exitWith(2, e.message);
		exitWith(2, `cannot start: ${(e as Error).message}`);
	}
	const shutdown = (signal: string) => {
		// A shutdown that hangs must still end: systemd and the user expect the process gone within 5 s.
		const timer = setTimeout(() => process.exit(1), 5000);
		log.info("shutdown", { signal });
		running.stop().then(
			() => {
				clearTimeout(timer);
				process.exit(0);
			},
			(e: unknown) => {
				process.stderr.write(`hubbub: shutdown failed: ${(e as Error).message}\n`);
				process.exit(1);
			},
		);
	};
	process.on("SIGTERM", () => shutdown("SIGTERM"));
	process.on("SIGINT", () => shutdown("SIGINT"));
}

if (import.meta.main) await main();
