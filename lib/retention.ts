// Storage bounds over time: prunes each room's history to --keep-messages and --keep-days, a step at a time.
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { PRUNE_STEP, type Retention, type Store } from "./store.ts";

export interface RetentionOptions {
	/** Messages kept per room; 0 keeps all. */
	keepMessages: number;
	/** Days a message is kept; 0 keeps it for ever. */
	keepDays: number;
}

/** The policy the store's `prune` takes, or undefined when nothing is ever removed. */
export function retentionPolicy(options: RetentionOptions): Retention | undefined {
	if (!options.keepMessages && !options.keepDays) return undefined;
	return {
		keep: options.keepMessages || undefined,
		maxAgeMs: options.keepDays ? options.keepDays * 86_400_000 : undefined,
	};
}

/**
 * Prunes every `everyMs` (and again at once while a round removed a full step,
 * so a first prune of a large history goes on until done), then releases the
 * pruned messages' files (`releaseFiles`: lib/attachments-index.ts sweep,
 * which deletes files no message holds any more). A failure is logged and
 * counted, never fatal: the next round tries again.
 */
export function startRetention(
	store: Store,
	options: RetentionOptions,
	log: Logger,
	metrics: Metrics,
	everyMs = 60_000,
	releaseFiles: () => Promise<number> = async () => 0,
): { stop(): void } {
	const policy = retentionPolicy(options);
	if (!policy) return { stop: () => {} };
	let timer: ReturnType<typeof setTimeout> | undefined;
	let stopped = false;
	const round = async () => {
		let again = false;
		try {
			const removed = await store.prune(policy);
			if (removed > 0) {
				metrics.messagesPruned.inc(removed);
				log.info("pruned", { messages: removed });
			}
			again = removed >= PRUNE_STEP;
			if (removed > 0) await releaseFiles();
		} catch (e) {
			metrics.storeErrors.inc();
			log.error("prune_failed", { error: (e as Error).message });
		}
		if (!stopped) timer = setTimeout(() => void round(), again ? 100 : everyMs);
	};
	timer = setTimeout(() => void round(), Math.min(everyMs, 5000));
	return {
		stop: () => {
			stopped = true;
			clearTimeout(timer);
		},
	};
}
