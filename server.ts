// Composition root: reads the config, opens the store, wires hub and bus, and serves the page, /ws, /healthz and /metrics.
import type { Server } from "bun";
import page from "./client/index.html";
import { type Conn, Hub } from "./hub.ts";
import { LocalBus } from "./lib/bus-local.ts";
import { type Config, ConfigError, HELP, parseConfig } from "./lib/config.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { isOriginAllowed } from "./lib/origin.ts";
import { DEFAULT_SESSION_LIMITS, newConn, type SessionLimits, websocketHandler } from "./lib/session.ts";
import { StoreError } from "./lib/store.ts";
import { type SqliteOptions, SqliteStore } from "./lib/store-sqlite.ts";
import pkg from "./package.json" with { type: "json" };
import { CLOSE } from "./protocol.ts";

export const VERSION: string = pkg.version;

export interface StartOptions {
	log?: Logger;
	limits?: Partial<SessionLimits>;
	sqlite?: SqliteOptions;
}

export interface Running {
	server: Server<Conn>;
	hub: Hub;
	/** Base URL, e.g. http://127.0.0.1:3000 */
	url: string;
	/** Closes every socket with 1001, commits pending writes, stops listening. */
	stop(): Promise<void>;
}

/** Starts one hubbub server. Throws StoreError when the database cannot be opened, and Bun's error when the port cannot be bound. */
export function start(config: Config, options: StartOptions = {}): Running {
	const log = options.log ?? createLogger(config.logLevel);
	const limits = { ...DEFAULT_SESSION_LIMITS, ...options.limits };
	const store = new SqliteStore(config.db, options.sqlite);
	const hub = new Hub(store);
	const startedAt = Date.now();
	let server: Server<Conn>;
	try {
		server = Bun.serve<Conn>({
			port: config.port,
			hostname: config.host,
			development: false,
			// Explicit: with development off, Bun 1.4 otherwise lets a second server bind the same port.
			reusePort: false,
			routes: {
				"/": page,
				"/ws": (req: Request, srv: Server<Conn>) => {
					if (!isOriginAllowed(req.headers.get("origin"), req.headers.get("host"), config.origins)) {
						log.info("upgrade_refused", { origin: req.headers.get("origin") });
						return new Response("origin not allowed\n", { status: 403 });
					}
					const address = srv.requestIP(req)?.address ?? "unknown";
					if (srv.upgrade(req, { data: newConn(address, limits) })) return;
					return new Response("expected a WebSocket upgrade\n", { status: 426 });
				},
				"/healthz": async () => {
					const database = await store.healthy();
					return Response.json(
						{
							status: database ? "ok" : "failing",
							version: VERSION,
							uptime: Math.round((Date.now() - startedAt) / 1000),
							connections: hub.connectionCount,
							rooms: hub.roomCount,
							database,
						},
						{ status: database ? 200 : 503 },
					);
				},
				"/metrics": () =>
					new Response(
						[
							"# HELP hubbub_connections Open WebSocket connections.",
							"# TYPE hubbub_connections gauge",
							`hubbub_connections ${hub.connectionCount}`,
							"# HELP hubbub_rooms Rooms with members on this process.",
							"# TYPE hubbub_rooms gauge",
							`hubbub_rooms ${hub.roomCount}`,
							"",
						].join("\n"),
						{ headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } },
					),
			},
			fetch: () => new Response("not found\n", { status: 404 }),
			websocket: websocketHandler(hub, limits, log),
		});
	} catch (e) {
		void store.close();
		throw e;
	}
	hub.attach(server, new LocalBus((m) => hub.deliver(m)));
	const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
	log.info("listening", { url, port: server.port, db: config.db, epoch: store.epoch, version: VERSION });

	let stopping: Promise<void> | undefined;
	return {
		server,
		hub,
		url,
		stop: () => {
			stopping ??= (async () => {
				server.stop();
				hub.closeAll(CLOSE.goingAway, "server shutting down");
				await store.close();
				await server.stop(true);
				log.info("stopped", {});
			})();
			return stopping;
		},
	};
}

function exitWith(status: number, message: string): never {
	process.stderr.write(`hubbub: ${message}\n`);
	process.exit(status);
}

async function main(): Promise<void> {
	let parsed: ReturnType<typeof parseConfig>;
	try {
		parsed = parseConfig(process.argv.slice(2), process.env);
	} catch (e) {
		if (e instanceof ConfigError) exitWith(2, `${e.message}\nTry 'hubbub --help'.`);
		throw e;
	}
	if (parsed.kind === "help") {
		process.stdout.write(HELP);
		return;
	}
	if (parsed.kind === "version") {
		process.stdout.write(`hubbub ${VERSION} (protocol 1)\n`);
		return;
	}
	const config = parsed.config;
	let running: Running;
	try {
		running = start(config);
	} catch (e) {
		if (e instanceof StoreError) exitWith(2, e.message);
		const code = (e as { code?: string }).code;
		if (code === "EADDRINUSE") exitWith(2, `port ${config.port} on ${config.host} is already in use`);
		exitWith(2, `cannot start: ${(e as Error).message}`);
	}
	const shutdown = () => {
		const timer = setTimeout(() => process.exit(1), 5000);
		running.stop().then(() => {
			clearTimeout(timer);
			process.exit(0);
		});
	};
	process.on("SIGTERM", shutdown);
	process.on("SIGINT", shutdown);
}

if (import.meta.main) await main();
