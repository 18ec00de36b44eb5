// The emoji picker and :shortcode: completion, loaded on first use with their data from this server (never a CDN).
import dataFile from "emoji-picker-element-data/en/emojibase/data.json" with { type: "file" };
import type { Suggestion } from "./composer.tsx";

/** The emoji data's URL on this server: a hashed asset, served compressed and cached for a year. */
const DATA_URL = dataFile as unknown as string;

interface Entry {
	emoji: string;
	shortcodes?: string[];
}

let codes: Promise<[string, string][]> | undefined;
let loaded: [string, string][] | undefined;

/** Loads the shortcode table once; `then` runs when it is there (the view redraws the suggestions). */
function loadCodes(then: () => void): void {
	codes ??= fetch(DATA_URL)
		.then((r) => r.json() as Promise<Entry[]>)
		.then((entries) =>
			entries.flatMap((e) => (e.shortcodes ?? []).map((c): [string, string] => [c, e.emoji])),
		);
	codes.then(
		(table) => {
			loaded = table;
			then();
		},
		() => {
			codes = undefined;
		},
	);
}

/** Suggestions for ":smi" (at least two letters), best first: exact prefix, then inside the name. */
export function shortcodes(word: string, redraw: () => void): Suggestion[] {
	const query = word.slice(1).toLowerCase();
	if (query.length < 2) return [];
	if (!loaded) {
		loadCodes(redraw);
		return [];
	}
	const starts: Suggestion[] = [];
	const inside: Suggestion[] = [];
	for (const [code, emoji] of loaded) {
		if (starts.length >= 6) break;
		const at = code.indexOf(query);
		if (at < 0) continue;
		(at === 0 ? starts : inside).push({ insert: emoji, label: `${emoji} :${code}:` });
	}
	return [...starts, ...inside].slice(0, 6);
}

let picker: HTMLElement | undefined;

/** Shows the picker above the composer (loading it the first time); `pick` gets the chosen emoji. */
export async function openPicker(pick: (emoji: string) => void): Promise<void> {
	if (picker?.isConnected) {
		picker.remove();
		return;
	}
	await import("emoji-picker-element");
	const el = document.createElement("emoji-picker") as HTMLElement & { dataSource: string };
	el.dataSource = DATA_URL;
	el.setAttribute("aria-label", "Emoji");
	const close = () => {
		el.remove();
		document.removeEventListener("keydown", onKey, true);
		document.removeEventListener("pointerdown", onOutside, true);
	};
	const onKey = (e: KeyboardEvent) => {
		if (e.key === "Escape") {
			e.stopPropagation();
			close();
			document.getElementById("text")?.focus();
		}
	};
	const onOutside = (e: Event) => {
		if (!e.composedPath().includes(el)) close();
	};
	el.addEventListener("emoji-click", (e) => {
		const unicode = (e as CustomEvent<{ unicode?: string }>).detail.unicode;
		if (unicode) pick(unicode);
		close();
	});
	document.addEventListener("keydown", onKey, true);
	document.addEventListener("pointerdown", onOutside, true);
	document.body.append(el);
	picker = el;
	// The picker's search box takes focus, so the keyboard can use it at once.
	requestAnimationFrame(() => (el.shadowRoot?.querySelector("input") as HTMLInputElement | null)?.focus());
}
