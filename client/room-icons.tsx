// Small icons drawn as SVG, so they look the same whatever emoji font the device has (or none).

/** A padlock: a private room. */
export function LockIcon() {
	return (
		<svg class="glyph" viewBox="0 0 16 16" width="12" height="12" aria-hidden="true">
			<path fill="currentColor" d="M4 7V5a4 4 0 0 1 8 0v2h1v8H3V7zm2 0h4V5a2 2 0 0 0-4 0z" />
		</svg>
	);
}

/** A bin: delete. */
export function TrashIcon() {
	return (
		<svg class="glyph" viewBox="0 0 16 16" width="14" height="14" aria-hidden="true">
			<path fill="currentColor" d="M6 1h4l1 1h3v2H2V2h3zM3 5h10l-1 10H4zm3 2v6h1V7zm3 0v6h1V7z" />
		</svg>
	);
}
