// Composition root: reads the config, opens the store, wires hub and bus, and serves the page, /ws, /healthz and /metrics.

import { readFileSync } from "node:fs";
import type { Server } from "bun";
import page from "./client/index.html";
import { type Conn, Hub } from "./hub.ts";
import { LocalBus } from "./lib/bus-local.ts";
import { RedisCluster } from "./lib/cluster-redis.ts";
import { type Config, ConfigError, HELP, parseConfig } from "./lib/config.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { Metrics } from "./lib/metrics.ts";
import { clientAddress, isOriginAllowed } from "./lib/origin.ts";
import { newConn, websocketHandler } from "./lib/session.ts";
import { type Store, StoreError } from "./lib/store.ts";
import { PostgresStore, redact } from "./lib/store-postgres.ts";
import { type SqliteOptions, SqliteStore } from "./lib/store-sqlite.ts";
import pkg from "./package.json" with { type: "json" };
import { CLOSE } from "./protocol.ts";

export const VERSION: string = pkg.version;

export interface StartOptions {
	log?: Logger;
	/** An opened store (see openStore); without one, `config.db` is opened as SQLite. */
	store?: Store;
	metrics?: Metrics;
	sqlite?: SqliteOptions;
	/** Cluster mode: a started Redis link (see RedisCluster.start). */
	cluster?: RedisCluster;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** Opens `db`: a postgres:// URL is PostgreSQL, anything else a SQLite file. Throws StoreError. */
export async function openStore(db: string, metrics: Metrics): Promise<Store> {
	const onCommit = (seconds: number) => metrics.commitSeconds.observe(seconds);
	return POSTGRES_URL.test(db) ? PostgresStore.open(db, { onCommit }) : new SqliteStore(db, { onCommit });
}

export interface Running {
	server: Server<Conn>;
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

function readPem(path: string, what: string): string {
	try {
		return readFileSync(path, "utf8");
	} catch (e) {
		throw new StartError(`cannot read the TLS ${what} ${JSON.stringify(path)}: ${(e as Error).message}`);
	}
}

/** Starts one hubbub server. Throws StoreError or StartError with a sentence fit for a user. */
export function start(config: Config, options: StartOptions = {}): Running {
	const log = options.log ?? createLogger(config.logLevel);
	const metrics = options.metrics ?? new Metrics();
	const tls = config.tlsCert
		? { cert: readPem(config.tlsCert, "certificate"), key: readPem(config.tlsKey as string, "key") }
		: undefined;
	const store =
		options.store ??
		new SqliteStore(config.db, {
			onCommit: (seconds) => metrics.commitSeconds.observe(seconds),
			...options.sqlite,
		});
	const hub = new Hub(store, metrics);
	metrics.gauge("hubbub_connections", "Open WebSocket connections.", () => hub.connectionCount);
	metrics.gauge("hubbub_rooms", "Rooms with members on this process.", () => hub.roomCount);
	metrics.gauge("hubbub_memory_rss_bytes", "Resident memory of this process.", () =>
		process.memoryUsage.rss(),
	);
	const startedAt = Date.now();

	let server: Server<Conn>;
	try {
		server = Bun.serve<Conn>({
			port: config.port,
			hostname: config.host,
			development: false,
			// Always explicit: with development off, Bun 1.4 otherwise lets a second server bind the same port.
			reusePort: config.reusePort,
			tls,
			routes: {
				"/": page,
				"/ws": (req: Request, srv: Server<Conn>) => {
					const origin = req.headers.get("origin");
					const address = clientAddress(srv.requestIP(req)?.address, req.headers, config.trustProxy);
					if (!isOriginAllowed(origin, req.headers.get("host"), config.origins)) {
						metrics.connectionsRefused.inc(1, "origin");
						log.info("upgrade_refused", { reason: "origin", origin, address });
						return new Response("origin not allowed\n", { status: 403 });
					}
					if (hub.connectionsFrom(address) >= config.maxConnsPerIp) {
						metrics.connectionsRefused.inc(1, "per_address");
						log.info("upgrade_refused", { reason: "per_address", address });
						return new Response("too many connections from your address\n", {
							status: 429,
							headers: { "retry-after": "10" },
						});
					}
					if (srv.upgrade(req, { data: newConn(address, config) })) return;
					return new Response("expected a WebSocket upgrade\n", { status: 426 });
				},
				"/healthz": async () => {
					const database = await store.healthy();
					const cluster = bus?.health();
					return Response.json(
						{
							status: !database ? "failing" : cluster === "degraded" ? "degraded" : "ok",
							...(cluster ? { redis: cluster === "ok" } : {}),
							version: VERSION,
							uptime: Math.round((Date.now() - startedAt) / 1000),
							connections: hub.connectionCount,
							rooms: hub.roomCount,
							database,
						},
						{ status: database ? 200 : 503 },
					);
				},
				"/metrics": (req: Request) => {
					if (config.metricsToken && req.headers.get("authorization") !== `Bearer ${config.metricsToken}`) {
						return new Response("unauthorized\n", { status: 401, headers: { "www-authenticate": "Bearer" } });
					}
					return new Response(metrics.render(), {
						headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
					});
				},
			},
			fetch: () => new Response("not found\n", { status: 404 }),
			websocket: websocketHandler(hub, config, log),
		});
	} catch (e) {
		void store.close();
		const code = (e as { code?: string }).code;
		if (code === "EADDRINUSE")
			throw new StartError(`port ${config.port} on ${config.host} is already in use`);
		throw new StartError(`cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`);
	}
	const bus = options.cluster;
	if (bus) {
		bus.bind({
			deliver: (m) => hub.deliver(m),
			deliverEvent: (room, frame) => hub.deliverEvent(room, frame),
			catchUp: () => hub.catchUp(),
			local: () => hub.localState(),
		});
		hub.attach(server, bus, bus);
	} else {
		hub.attach(server, new LocalBus((m) => hub.deliver(m)));
	}
	const idleMs = config.idleTimeout * 1000;
	const sweeper = setInterval(() => hub.sweep(idleMs), Math.max(250, idleMs / 4));
	const scheme = tls ? "https" : "http";
	const url = `${scheme}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
	log.info("listening", {
		url,
		port: server.port,
		db: redact(config.db),
		epoch: store.epoch,
		version: VERSION,
	});

	let stopping: Promise<void> | undefined;
	return {
		server,
		hub,
		metrics,
		url,
		stop: () => {
			stopping ??= (async () => {
				clearInterval(sweeper);
				server.stop();
				hub.closeAll(CLOSE.goingAway, "server shutting down");
				await bus?.close();
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
	let running: Running;
	try {
		const config = parsed.config;
		const metrics = new Metrics();
		const log = createLogger(config.logLevel);
		const store = await openStore(config.db, metrics);
		// The first Redis attempt comes before the port opens, so the first clients already see the whole cluster.
		const cluster = config.redis ? new RedisCluster(config.redis, log, metrics) : undefined;
		await cluster?.start();
		running = start(config, { store, metrics, log, cluster });
	} catch (e) {
		if (e instanceof StoreError || e instanceof StartError) exitWith(2, e.message);
		exitWith(2, `cannot start: ${(e as Error).message}`);
	}
	const shutdown = (signal: string) => {
		// A shutdown that hangs must still end: systemd and the user expect the process gone within 5 s.
		const timer = setTimeout(() => process.exit(1), 5000);
		process.stdout.write(
			`${JSON.stringify({ time: new Date().toISOString(), level: "info", event: "shutdown", signal })}\n`,
		);
		running.stop().then(() => {
			clearTimeout(timer);
			process.exit(0);
		});
	};
	process.on("SIGTERM", () => shutdown("SIGTERM"));
	process.on("SIGINT", () => shutdown("SIGINT"));
}

if (import.meta.main) await main();
