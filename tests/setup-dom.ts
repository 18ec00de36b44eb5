// Preloaded by bunfig.toml: happy-dom's window for the page's unit tests, with Bun's own
// networking and timers put back so server tests talk over real sockets.
import { GlobalRegistrator } from "@happy-dom/global-registrator";

const keep = [
	"fetch",
	"Request",
	"Response",
	"Headers",
	"WebSocket",
	"URL",
	"URLSearchParams",
	"AbortController",
	"AbortSignal",
	"Blob",
	"FormData",
	"ReadableStream",
	"WritableStream",
	"TransformStream",
	"TextEncoder",
	"TextDecoder",
	"setTimeout",
	"clearTimeout",
	"setInterval",
	"clearInterval",
	"queueMicrotask",
	"performance",
	"crypto",
] as const;
const g = globalThis as Record<string, unknown>;
const natives = Object.fromEntries(keep.map((k) => [k, g[k]]));
GlobalRegistrator.register({ url: "http://localhost:3000/" });
for (const k of keep) g[k] = natives[k];
