// /healthz and /metrics: what an operator's probes and scrapers read.
import type { DiskFloor } from "./health.ts";
import { secured } from "./http.ts";
import type { Metrics } from "./metrics.ts";
import type { Store } from "./store.ts";

export interface OpsRoutesOptions {
	store: Pick<Store, "probe">;
	disk: DiskFloor;
	metrics: Metrics;
	/** `--metrics-token`: without it /metrics is open (totals only; see docs/SECURITY.md). */
	metricsToken?: string;
	version: string;
	/** The cluster link's health; undefined without --redis. */
	cluster?: () => "ok" | "degraded";
	/** What /healthz reports of this process. */
	counts: () => { connections: number; rooms: number };
}

/** The `/healthz` and `/metrics` routes for Bun.serve. */
export function opsRoutes(o: OpsRoutesOptions) {
	const startedAt = Date.now();
	// A write per /healthz would let anyone make the disk fsync at will: a good probe serves for a
	// second, and requests meanwhile share it. A failed one is tried again at once, so recovery shows.
	let probed: { at: number; result: Promise<string | undefined>; failed?: boolean } | undefined;
	const probe = () => {
		if (!probed || probed.failed || Date.now() - probed.at >= 1000) {
			const p: NonNullable<typeof probed> = { at: Date.now(), result: o.store.probe() };
			p.result.then(
				(problem) => {
					p.failed = problem !== undefined;
				},
				() => {
					p.failed = true;
				},
			);
			probed = p;
		}
		return probed.result;
	};

	return {
		"/healthz": {
			GET: async () => {
				o.disk.check();
				const database = await probe();
				const problem = o.disk.problem ?? database;
				const cluster = o.cluster?.();
				return secured(
					Response.json(
						{
							status: problem ? "failing" : cluster === "degraded" ? "degraded" : "ok",
							...(problem ? { problem } : {}),
							...(cluster ? { redis: cluster === "ok" } : {}),
							version: o.version,
							uptime: Math.round((Date.now() - startedAt) / 1000),
							...o.counts(),
							database: database === undefined,
							disk: o.disk.problem === undefined,
						},
						{ status: problem ? 503 : 200 },
					),
				);
			},
		},
		"/metrics": {
			GET: (req: Request) => {
				if (o.metricsToken && req.headers.get("authorization") !== `Bearer ${o.metricsToken}`) {
					return secured(
						new Response("unauthorized\n", { status: 401, headers: { "www-authenticate": "Bearer" } }),
					);
				}
				return secured(
					new Response(o.metrics.render(), {
						headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
					}),
				);
			},
		},
	};
}
