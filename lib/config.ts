// Settings from command-line flags and the environment; a bad one is a ConfigError (exit status 2).
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { ClientFrame, type ClientFrameType } from "../protocol.ts";
import { LEVELS, type Level } from "./log.ts";
import { parseOrigin } from "./origin.ts";
import { FRAME_RATES, INVALID_RATE } from "./rate-limit.ts";

export interface Config {
	port: number;
	host: string;
	db: string;
	/** Allowed `Origin` values; empty means "same host as the request", `*` means any. */
	origins: string[];
	logLevel: Level;
	/** Largest frame a client may send, in bytes (close 1009 past it). */
	maxPayload: number;
	/** Rooms one connection may be in at once. */
	maxRooms: number;
	/** Open connections from one client address (an IPv6 /64 counts as one). */
	maxConnsPerIp: number;
	/** Open WebSocket connections in all; unset: what the file-descriptor limit allows (see lib/capacity.ts). */
	maxConns?: number;
	/** Free bytes the database's disk must keep; below it sends are refused and /healthz fails. 0: no floor. */
	minFreeDisk: number;
	/** Proxy addresses whose X-Forwarded-For is believed. */
	trustProxy: string[];
	sendRate: number;
	sendBurst: number;
	typingRate: number;
	/** Rate-limited frames a connection may send before it is closed with 1008. */
	floodClose: number;
	/** Strikes forgiven a second, so a client that only sometimes meets a limit is never closed. */
	floodForgive: number;
	/** Seconds an address closed for flooding is refused new connections. */
	floodBan: number;
	/** Per-frame-type rates that replace the defaults (lib/rate-limit.ts FRAME_RATES). */
	frameRates: { type: ClientFrameType | "invalid"; rate: number; burst: number }[];
	/** Bytes a second of replies to one connection's own requests (joined, history, errors...). */
	replyRate: number;
	/** Reply bytes a connection may draw at once before replyRate applies. */
	replyBurst: number;
	/** Seconds a new connection has to say hello before it is closed. */
	helloTimeout: number;
	/** Bytes of message text one name may store per UTC day; 0 is no bound. */
	quotaPerDay: number;
	/** WebSocket upgrades a second per address group, on average, and at once (lib/rate-limit.ts UpgradeRate). */
	upgradeRate: number;
	upgradeBurst: number;
	/** Bytes of message text one address group may send per UTC day (lib/address-quota.ts); 0: no bound. */
	addressQuotaPerDay: number;
	/** Messages kept per room; older ones are removed (0 keeps all). */
	keepMessages: number;
	/** Days a message is kept (0 keeps it for ever). */
	keepDays: number;
	/** Bytes queued for one slow reader before it is disconnected. */
	maxBuffer: number;
	/** Largest file one upload may be. */
	maxUpload: number;
	/** Bytes of files one account may keep stored (what it uploaded and is not deleted); 0: no bound. */
	uploadQuota: number;
	/** Folder of uploaded files; by default beside the SQLite database. */
	uploadDir?: string;
	/** Seconds without a frame or pong before a connection is dropped. */
	idleTimeout: number;
	metricsToken?: string;
	tlsCert?: string;
	tlsKey?: string;
	/** Cluster mode: fan-out and presence through this Redis. */
	redis?: string;
	/** Namespace of Redis keys and channels; by default `hubbub:<the database's id>`. */
	redisPrefix?: string;
	/** Let several processes on one host listen on the same port (SO_REUSEPORT). */
	reusePort: boolean;
	/** `accounts`: people sign in and the account names the connection; `none`: protocol v1, any free name. */
	auth: "none" | "accounts";
	/** Who may make an account under `--auth accounts`. */
	signup: "open" | "invite" | "closed";
}

export class ConfigError extends Error {
	override name = "ConfigError";
}

type Kind =
	| "port"
	| "count"
	| "rate"
	| "size"
	| "seconds"
	| "string"
	| "level"
	| "origin"
	| "address"
	| "redis"
	| "frame-rate"
	| "flag"
	| "choice";

export interface Option {
	key: keyof Config;
	flag: string;
	env?: string;
	kind: Kind;
	/** Repeatable flags collect into a list. */
	multiple?: boolean;
	/** Smallest and largest value a numeric flag takes; shown in --help and the README. */
	range?: [number, number];
	/** The values a "choice" flag takes. */
	choices?: string[];
	fallback?: Config[keyof Config];
	arg: string;
	help: string;
}

/** Every setting, once: parsing, defaults and --help all come from this table. */
export const OPTIONS: readonly Option[] = [
	{
		key: "port",
		flag: "port",
		env: "PORT",
		kind: "port",
		fallback: 3000,
		range: [0, 65535],
		arg: "N",
		help: "port to listen on (0 picks a free one)",
	},
	{
		key: "host",
		flag: "host",
		env: "HOST",
		kind: "string",
		fallback: "0.0.0.0",
		arg: "ADDRESS",
		help: "address to listen on",
	},
	{
		key: "db",
		flag: "db",
		env: "DATABASE_URL",
		kind: "string",
		fallback: "hubbub.db",
		arg: "PATH|URL",
		help: 'SQLite file, created with its folder if missing (":memory:" keeps nothing), or a postgres:// URL',
	},
	{
		key: "origins",
		flag: "origin",
		kind: "origin",
		multiple: true,
		fallback: [],
		arg: "ORIGIN",
		help: 'page origin allowed to open a WebSocket, e.g. https://chat.example.com (repeatable; "*" allows any; default: the page\'s own address, if that is an IP address or localhost)',
	},
	{
		key: "tlsCert",
		flag: "tls-cert",
		env: "TLS_CERT",
		kind: "string",
		arg: "PATH",
		help: "PEM certificate: serve https and wss (needs --tls-key)",
	},
	{
		key: "tlsKey",
		flag: "tls-key",
		env: "TLS_KEY",
		kind: "string",
		arg: "PATH",
		help: "PEM private key for --tls-cert",
	},
	{
		key: "trustProxy",
		flag: "trust-proxy",
		kind: "address",
		multiple: true,
		fallback: [],
		arg: "ADDRESS",
		help: "reverse proxy whose X-Forwarded-For names the client (repeatable)",
	},
	{
		key: "maxPayload",
		flag: "max-payload",
		kind: "size",
		fallback: 64 * 1024,
		range: [1024, 16 * 1024 ** 2],
		arg: "BYTES",
		help: "largest frame a client may send; bigger closes with 1009",
	},
	{
		key: "maxRooms",
		flag: "max-rooms",
		kind: "count",
		fallback: 50,
		range: [1, 10_000],
		arg: "N",
		help: "rooms one connection may be in",
	},
	{
		key: "maxConnsPerIp",
		flag: "max-conns-per-ip",
		kind: "count",
		fallback: 20,
		range: [1, 1_000_000],
		arg: "N",
		help: "open connections per client address (an IPv6 /64 counts as one address); more get HTTP 429",
	},
	{
		key: "maxConns",
		flag: "max-conns",
		kind: "count",
		range: [1, 10_000_000],
		arg: "N",
		help: "open WebSocket connections in all; more get HTTP 503 (default and ceiling: the open-file limit less a reserve, see docs/OPERATING.md)",
	},
	{
		key: "minFreeDisk",
		flag: "min-free-disk",
		kind: "size",
		fallback: 64 * 1024 ** 2,
		range: [0, 1024 ** 4],
		arg: "BYTES",
		help: "free space the database's disk keeps: below it sends are refused and /healthz answers 503 (0 turns it off)",
	},
	{
		key: "sendRate",
		flag: "send-rate",
		kind: "rate",
		fallback: 10,
		range: [0.01, 1_000_000],
		arg: "N",
		help: "messages a second per connection, on average",
	},
	{
		key: "upgradeRate",
		flag: "upgrade-rate",
		kind: "rate",
		fallback: 20,
		range: [0.01, 1_000_000],
		arg: "N",
		help: "WebSocket upgrades a second per address (an IPv6 /64), on average; past it 429 with Retry-After",
	},
	{
		key: "upgradeBurst",
		flag: "upgrade-burst",
		kind: "count",
		fallback: 60,
		range: [1, 1_000_000],
		arg: "N",
		help: "WebSocket upgrades per address at once before --upgrade-rate applies",
	},
	{
		key: "sendBurst",
		flag: "send-burst",
		kind: "count",
		fallback: 20,
		range: [1, 1_000_000],
		arg: "N",
		help: "messages per connection at once before the rate applies",
	},
	{
		key: "typingRate",
		flag: "typing-rate",
		kind: "rate",
		fallback: 1,
		range: [0.01, 1000],
		arg: "N",
		help: "typing frames a second per connection",
	},
	{
		key: "floodClose",
		flag: "flood-close",
		kind: "count",
		fallback: 100,
		range: [1, 1_000_000],
		arg: "N",
		help: "frames past the rate limit before the connection is closed with 1008",
	},
	{
		key: "floodForgive",
		flag: "flood-forgive",
		kind: "rate",
		fallback: 1,
		range: [0.01, 1_000_000],
		arg: "N",
		help: "strikes forgiven a second: only a sustained flood reaches --flood-close",
	},
	{
		key: "floodBan",
		flag: "flood-ban",
		kind: "seconds",
		fallback: 10,
		range: [1, 86_400],
		arg: "SECONDS",
		help: "refuse new connections (HTTP 429) from an address this long after one of its connections was closed for flooding",
	},
	{
		key: "frameRates",
		flag: "rate",
		kind: "frame-rate",
		multiple: true,
		fallback: [],
		arg: "TYPE=N[/BURST]",
		help: `frames of TYPE a second per connection, and at once (repeatable; defaults ${Object.entries({
			...FRAME_RATES,
			invalid: INVALID_RATE,
		})
			.map(([type, r]) => `${type}=${r.rate}/${r.burst}`)
			.join(" ")}; send and typing also by --send-rate, --typing-rate; invalid: frames that fail validation)`,
	},
	{
		key: "replyRate",
		flag: "reply-rate",
		kind: "size",
		fallback: 2 * 1024 * 1024,
		range: [1024, 1024 ** 3],
		arg: "BYTES",
		help: "bytes a second of answers to one connection's own requests (joined, history); past it they get rate_limited",
	},
	{
		key: "replyBurst",
		flag: "reply-burst",
		kind: "size",
		fallback: 16 * 1024 * 1024,
		range: [1024, 1024 ** 4],
		arg: "BYTES",
		help: "answer bytes one connection may draw at once before --reply-rate applies",
	},
	{
		key: "helloTimeout",
		flag: "hello-timeout",
		kind: "seconds",
		fallback: 10,
		range: [1, 3600],
		arg: "SECONDS",
		help: "close a connection that has not said hello this long after opening",
	},
	{
		key: "quotaPerDay",
		flag: "quota-per-day",
		kind: "size",
		fallback: 16 * 1024 ** 2,
		range: [0, 1024 ** 4],
		arg: "BYTES",
		help: "bytes of message text one name may store per UTC day; past it sends get quota_exceeded (0: no bound)",
	},
	{
		key: "addressQuotaPerDay",
		flag: "address-quota-per-day",
		kind: "size",
		fallback: 64 * 1024 ** 2,
		range: [0, 1024 ** 4],
		arg: "BYTES",
		help: "bytes of message text one address (an IPv6 /64) may send per UTC day, whatever names it takes; counted in memory per process; past it sends get quota_exceeded (0: no bound)",
	},
	{
		key: "keepMessages",
		flag: "keep-messages",
		kind: "count",
		fallback: 10_000,
		range: [0, 1_000_000_000],
		arg: "N",
		help: "messages kept per room; older ones are removed (0 keeps all)",
	},
	{
		key: "keepDays",
		flag: "keep-days",
		kind: "count",
		fallback: 0,
		range: [0, 100_000],
		arg: "DAYS",
		help: "days a message is kept before it is removed (0 keeps it for ever)",
	},
	{
		key: "maxBuffer",
		flag: "max-buffer",
		kind: "size",
		fallback: 1024 * 1024,
		range: [1024, 1024 ** 3],
		arg: "BYTES",
		help: "bytes queued for a client that reads too slowly before it is disconnected",
	},
	{
		key: "maxUpload",
		flag: "max-upload",
		kind: "size",
		fallback: 25 * 1024 ** 2,
		range: [1024, 16 * 1024 ** 3],
		arg: "BYTES",
		help: "largest file one upload may be (uploads need --auth accounts); bigger gets HTTP 413",
	},
	{
		key: "uploadQuota",
		flag: "upload-quota",
		kind: "size",
		fallback: 1024 ** 3,
		range: [0, 1024 ** 4 * 64],
		arg: "BYTES",
		help: "bytes of files one account may keep stored (its uploads not yet deleted); an upload past it gets HTTP 413 upload_quota (0: no bound)",
	},
	{
		key: "uploadDir",
		flag: "upload-dir",
		kind: "string",
		arg: "PATH",
		help: "folder of uploaded files (default: DB.files beside a SQLite --db; with PostgreSQL, a folder every process shares)",
	},
	{
		key: "idleTimeout",
		flag: "idle-timeout",
		kind: "seconds",
		fallback: 60,
		// Bun's WebSocket refuses an idleTimeout above 960 s.
		range: [1, 960],
		arg: "SECONDS",
		help: "drop a connection silent this long (no frame, no pong)",
	},
	{
		key: "metricsToken",
		flag: "metrics-token",
		env: "METRICS_TOKEN",
		kind: "string",
		arg: "TOKEN",
		help: "require 'Authorization: Bearer TOKEN' for /metrics",
	},
	{
		key: "redis",
		flag: "redis",
		env: "REDIS_URL",
		kind: "redis",
		arg: "URL",
		help: "cluster mode: several hubbub processes act as one through this Redis (redis://host:6379)",
	},
	{
		key: "redisPrefix",
		flag: "redis-prefix",
		env: "REDIS_PREFIX",
		kind: "string",
		arg: "PREFIX",
		help: "namespace of this deployment's Redis keys and channels (default: hubbub:<the database's id>)",
	},
	{
		key: "reusePort",
		flag: "reuse-port",
		kind: "flag",
		fallback: false,
		arg: "",
		help: "let several hubbub processes on this host share the port (Linux spreads connections among them)",
	},
	{
		key: "auth",
		flag: "auth",
		env: "HUBBUB_AUTH",
		kind: "choice",
		choices: ["accounts", "none"],
		fallback: "accounts",
		arg: "MODE",
		help: "accounts: people sign in with a name and password (see docs/SECURITY.md); none: anyone picks any free name (protocol v1)",
	},
	{
		key: "signup",
		flag: "signup",
		kind: "choice",
		choices: ["invite", "open", "closed"],
		fallback: "invite",
		arg: "MODE",
		help: "with --auth accounts, who may make an account: invite (through an admin's invite link), open (anyone), closed",
	},
	{
		key: "logLevel",
		flag: "log-level",
		env: "LOG_LEVEL",
		kind: "level",
		fallback: "info",
		arg: "LEVEL",
		help: "debug, info, warn or error",
	},
];

const SIZE_UNITS: [string, number][] = [
	["TiB", 1024 ** 4],
	["GiB", 1024 ** 3],
	["MiB", 1024 ** 2],
	["KiB", 1024],
];

/** A number as the flag takes it: sizes in the largest whole unit. */
function show(o: Option, n: number): string {
	if (o.kind === "size") {
		const unit = SIZE_UNITS.find(([, bytes]) => n > 0 && n % bytes === 0);
		return unit ? `${n / unit[1]}${unit[0]}` : String(n);
	}
	return String(n);
}

function rangeText(o: Option): string {
	return o.range ? `${show(o, o.range[0])} to ${show(o, o.range[1])}` : "";
}

function defaultText(o: Option): string {
	if (o.fallback === undefined || o.multiple || o.kind === "flag") return "";
	return typeof o.fallback === "number" ? show(o, o.fallback) : String(o.fallback);
}

function helpText(): string {
	const rows = OPTIONS.map((o) => {
		const left = `  --${o.flag}${o.arg ? ` ${o.arg}` : ""}`;
		const extra = [
			o.env ? `env ${o.env}` : "",
			defaultText(o) ? `default ${defaultText(o)}` : "",
			rangeText(o),
		]
			.filter(Boolean)
			.join("; ");
		return `${left.padEnd(28)}${o.help}${extra ? ` (${extra})` : ""}`;
	});
	return `hubbub: a small real-time chat server

Usage: hubbub [options]

Options:
${rows.join("\n")}
  --help                    print this help and exit
  --version                 print the version and exit
`;
}

export const HELP = helpText();

/** The README's options table, generated from the same definitions as --help (tests/operator-docs.test.ts keeps them equal). */
export function optionsMarkdown(): string {
	const cell = (s: string) => s.replaceAll("|", "\\|");
	const rows = OPTIONS.map((o) => [
		`\`--${o.flag}${o.arg ? ` ${cell(o.arg)}` : ""}\``,
		o.env ? `\`${o.env}\`` : "",
		defaultText(o) ? `\`${defaultText(o)}\`` : "",
		rangeText(o),
		cell(o.help),
	]);
	rows.push(["`--help`, `--version`", "", "", "", "print and exit"]);
	const head = ["flag", "env", "default", "range", "meaning"];
	const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
	const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
	return [line(head), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)].join("\n");
}

export type Parsed = { kind: "run"; config: Config } | { kind: "help" } | { kind: "version" };

const SIZE = /^(\d+)\s*(b|kib|kb|k|mib|mb|m|gib|gb|g|tib|tb|t)?$/i;
const UNITS: Record<string, number> = {
	b: 1,
	k: 1024,
	kb: 1024,
	kib: 1024,
	m: 1024 ** 2,
	mb: 1024 ** 2,
	mib: 1024 ** 2,
	g: 1024 ** 3,
	gb: 1024 ** 3,
	gib: 1024 ** 3,
	t: 1024 ** 4,
	tb: 1024 ** 4,
	tib: 1024 ** 4,
};

function convert(o: Option, raw: string, from: string): unknown {
	const bad = (what: string) => new ConfigError(`${from} must be ${what}, not ${JSON.stringify(raw)}`);
	const [min, max] = o.range ?? [0, Number.MAX_SAFE_INTEGER];
	const inRange = (n: number) => n >= min && n <= max;
	switch (o.kind) {
		case "port":
			if (!/^\d{1,5}$/.test(raw) || !inRange(Number(raw))) throw bad(`a port number from ${rangeText(o)}`);
			return Number(raw);
		case "count":
		case "seconds":
			if (!/^\d{1,12}$/.test(raw) || !inRange(Number(raw)))
				throw bad(`a whole number${o.kind === "seconds" ? " of seconds" : ""} from ${rangeText(o)}`);
			return Number(raw);
		case "rate":
			if (!/^\d{1,12}(\.\d+)?$/.test(raw) || !inRange(Number(raw)))
				throw bad(`a number from ${rangeText(o)}`);
			return Number(raw);
		case "size": {
			const m = SIZE.exec(raw.trim());
			const bytes = m ? Number(m[1]) * (UNITS[(m[2] ?? "b").toLowerCase()] ?? 1) : Number.NaN;
			if (!inRange(bytes))
				throw bad(`a size from ${rangeText(o)}, like ${show(o, Number(o.fallback) || 65536)}`);
			return bytes;
		}
		case "level":
			if (!(LEVELS as readonly string[]).includes(raw)) throw bad(`one of ${LEVELS.join(", ")}`);
			return raw;
		case "origin": {
			const parsed = parseOrigin(raw);
			if (!parsed.ok)
				throw new ConfigError(
					`--origin ${JSON.stringify(raw)} cannot work: ${parsed.message} (an origin looks like https://chat.example.com)`,
				);
			return parsed.origin;
		}
		case "address":
			if (isIP(raw) === 0) throw bad("an IP address");
			return raw;
		case "string":
			if (raw.trim() === "") throw bad("a non-empty value");
			return raw;
		case "redis":
			if (!/^rediss?:\/\/\S+$/.test(raw)) throw bad("a URL like redis://127.0.0.1:6379");
			return raw;
		case "frame-rate": {
			const m = /^([a-z]+)=(\d{1,9}(?:\.\d+)?)(?:\/(\d{1,9}))?$/.exec(raw);
			const type = m?.[1] as ClientFrameType | "invalid" | undefined;
			// "invalid": frames that fail validation (lib/rate-limit.ts INVALID_RATE).
			const known = [...ClientFrame.options.map((o) => o.shape.type.value), "invalid"] as string[];
			if (!m || !type || !known.includes(type) || Number(m[2]) <= 0 || Number(m[3] ?? 1) < 1)
				throw bad(`TYPE=RATE or TYPE=RATE/BURST with TYPE one of ${known.join(", ")}, like join=5/100`);
			const rate = Number(m[2]);
			return { type, rate, burst: m[3] === undefined ? Math.max(1, Math.ceil(rate)) : Number(m[3]) };
		}
		case "flag":
			return true;
		case "choice":
			if (!o.choices?.includes(raw)) throw bad(`one of ${o.choices?.join(", ")}`);
			return raw;
	}
}

/** Flags first, then the environment, then defaults. Never exits; throws ConfigError. */
export function parseConfig(argv: string[], env: Record<string, string | undefined>): Parsed {
	let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
	try {
		({ values } = parseArgs({
			args: argv,
			strict: true,
			allowPositionals: false,
			options: {
				...Object.fromEntries(
					OPTIONS.map((o) => [
						o.flag,
						o.kind === "flag"
							? { type: "boolean" as const }
							: { type: "string" as const, multiple: o.multiple ?? false },
					]),
				),
				help: { type: "boolean" },
				version: { type: "boolean" },
			},
		}));
	} catch (e) {
		throw new ConfigError((e as Error).message.split("\n")[0] ?? "invalid arguments");
	}
	if (values.help) return { kind: "help" };
	if (values.version) return { kind: "version" };

	const config: Record<string, unknown> = {};
	for (const o of OPTIONS) {
		const flagged = values[o.flag];
		if (o.multiple) {
			config[o.key] = ((flagged as string[] | undefined) ?? []).map((v) => convert(o, v, `--${o.flag}`));
		} else if (typeof flagged === "string" || flagged === true) {
			config[o.key] = convert(o, String(flagged), `--${o.flag}`);
		} else if (o.env && env[o.env] !== undefined && env[o.env] !== "") {
			config[o.key] = convert(o, env[o.env] as string, o.env);
		} else if (o.fallback !== undefined) {
			config[o.key] = o.fallback;
		}
	}
	if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
		throw new ConfigError("--tls-cert and --tls-key go together: give both or neither");
	}
	return { kind: "run", config: config as unknown as Config };
}

/** The configuration with every default, for tests and embedding. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
	const parsed = parseConfig([], {});
	if (parsed.kind !== "run") throw new Error("unreachable");
	return { ...parsed.config, ...overrides };
}
