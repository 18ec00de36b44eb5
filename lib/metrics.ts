// Counters, gauges and histograms, rendered in Prometheus text format for /metrics.

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
	const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`);
	return parts.length ? `{${parts.join(",")}}` : "";
}

interface Metric {
	render(): string[];
}

/** A monotonically increasing count, optionally split by one label. */
export class Counter implements Metric {
	private readonly values = new Map<string, number>();

	constructor(
		readonly name: string,
		readonly help: string,
		private readonly label?: string,
	) {}

	inc(by = 1, labelValue = ""): void {
		this.values.set(labelValue, (this.values.get(labelValue) ?? 0) + by);
	}

	get(labelValue = ""): number {
		return this.values.get(labelValue) ?? 0;
	}

	render(): string[] {
		const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
		if (this.values.size === 0 && !this.label) lines.push(`${this.name} 0`);
		for (const [value, n] of this.values) {
			lines.push(`${this.name}${this.label ? labelText({ [this.label]: value }) : ""} ${n}`);
		}
		return lines;
	}
}

/** A value read when /metrics is scraped. */
export class Gauge implements Metric {
	constructor(
		readonly name: string,
		readonly help: string,
		private readonly read: () => number,
	) {}

	render(): string[] {
		return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${this.read()}`];
	}
}

/** Observations in seconds, counted into fixed buckets. */
export class Histogram implements Metric {
	private readonly counts: number[];
	private sum = 0;
	private count = 0;

	constructor(
		readonly name: string,
		readonly help: string,
		private readonly bounds = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
	) {
		this.counts = bounds.map(() => 0);
	}

	observe(seconds: number): void {
		this.sum += seconds;
		this.count++;
		for (let i = 0; i < this.bounds.length; i++) {
			if (seconds <= (this.bounds[i] as number)) {
				this.counts[i] = (this.counts[i] as number) + 1;
				break;
			}
		}
	}

	render(): string[] {
		const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
		let cumulative = 0;
		for (let i = 0; i < this.bounds.length; i++) {
			cumulative += this.counts[i] as number;
			lines.push(`${this.name}_bucket{le="${this.bounds[i]}"} ${cumulative}`);
		}
		lines.push(
			`${this.name}_bucket{le="+Inf"} ${this.count}`,
			`${this.name}_sum ${this.sum}`,
			`${this.name}_count ${this.count}`,
		);
		return lines;
	}
}

/** Everything hubbub counts. One instance per server. */
export class Metrics {
	readonly framesIn = new Counter("hubbub_frames_in_total", "Frames received, by type.", "type");
	readonly framesOut = new Counter("hubbub_frames_out_total", "Frames sent to sockets, by type.", "type");
	readonly bytesIn = new Counter("hubbub_bytes_in_total", "Bytes of frames received.");
	readonly bytesOut = new Counter("hubbub_bytes_out_total", "Bytes of frames sent to sockets.");
	readonly errors = new Counter("hubbub_errors_total", "Error frames sent, by code.", "code");
	readonly rateLimited = new Counter("hubbub_rate_limited_total", "Frames dropped by a rate limit.");
	readonly backpressureDropped = new Counter(
		"hubbub_backpressure_dropped_total",
		"Sends Bun reported as dropped for a client too slow to take them; Bun disconnects such a client (close 1006).",
	);
	readonly connectionsRefused = new Counter(
		"hubbub_connections_refused_total",
		"Upgrades refused, by reason.",
		"reason",
	);
	readonly closes = new Counter(
		"hubbub_connections_closed_total",
		"Connections closed, by close code.",
		"code",
	);
	readonly messagesStored = new Counter("hubbub_messages_stored_total", "Messages committed to the store.");
	readonly gapFills = new Counter("hubbub_gap_fills_total", "Reads of messages that arrived out of order.");
	readonly storeErrors = new Counter("hubbub_store_errors_total", "Store reads and writes that failed.");
	readonly feedReadFailures = new Counter(
		"hubbub_feed_read_failures_total",
		"Reads of missed messages that failed (or made no progress) and were retried after a backoff.",
	);
	readonly feedsLost = new Counter(
		"hubbub_feeds_lost_total",
		"Rooms whose missed messages could not be read in time; their sockets were closed with 4000 to resume.",
	);
	readonly repliesSplit = new Counter(
		"hubbub_replies_split_total",
		"joined or history replies cut to fit --max-buffer; the client fetches the rest with history.",
	);
	readonly unhandledRejections = new Counter(
		"hubbub_unhandled_rejections_total",
		"Promise rejections nothing handled (a bug: logged, and the process keeps serving).",
	);
	readonly busPublished = new Counter(
		"hubbub_bus_published_total",
		"Messages this process published to the cluster.",
	);
	readonly busReceived = new Counter(
		"hubbub_bus_received_total",
		"Messages this process read from the cluster bus (its own rooms' channels only).",
	);
	readonly busReceivedBytes = new Counter(
		"hubbub_bus_received_bytes_total",
		"Bytes this process read from the cluster bus (its own rooms' channels only).",
	);
	readonly redisReconnects = new Counter(
		"hubbub_redis_reconnects_total",
		"Times the Redis connection was made again.",
	);
	readonly messagesPruned = new Counter(
		"hubbub_messages_pruned_total",
		"Messages removed by retention (--keep-messages, --keep-days).",
	);
	readonly logWriteFailures = new Counter(
		"hubbub_log_write_failures_total",
		"Log lines that could not be written (stdout closed or its disk full); hubbub keeps serving.",
	);
	readonly publishSeconds = new Histogram(
		"hubbub_publish_seconds",
		"Time to hand one message to its room's sockets.",
	);
	readonly commitSeconds = new Histogram(
		"hubbub_store_commit_seconds",
		"Time to commit one batch of messages.",
	);
	private readonly gauges: Gauge[] = [];

	gauge(name: string, help: string, read: () => number): void {
		this.gauges.push(new Gauge(name, help, read));
	}

	render(): string {
		const all: Metric[] = [
			...this.gauges,
			this.framesIn,
			this.framesOut,
			this.bytesIn,
			this.bytesOut,
			this.errors,
			this.rateLimited,
			this.backpressureDropped,
			this.connectionsRefused,
			this.closes,
			this.messagesStored,
			this.gapFills,
			this.storeErrors,
			this.feedReadFailures,
			this.feedsLost,
			this.repliesSplit,
			this.unhandledRejections,
			this.busPublished,
			this.busReceived,
			this.busReceivedBytes,
			this.redisReconnects,
			this.messagesPruned,
			this.logWriteFailures,
			this.publishSeconds,
			this.commitSeconds,
		];
		return `${all.flatMap((m) => m.render()).join("\n")}\n`;
	}
}
