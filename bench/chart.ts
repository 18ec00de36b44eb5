// A small SVG line chart: delivered messages per second and p99 latency against offered rate, one line per server.

export interface Series {
	name: string;
	color: string;
	points: { x: number; delivered: number; p99: number }[];
}

const W = 880;
const H = 360;
const PAD = { left: 70, right: 20, top: 40, bottom: 50 };

function esc(s: string): string {
	return s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function ticks(max: number, count = 5): number[] {
	const raw = max / count;
	const mag = 10 ** Math.floor(Math.log10(raw || 1));
	const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
	return Array.from({ length: Math.ceil(max / step) + 1 }, (_, i) => i * step);
}

function human(n: number): string {
	if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
	if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
	return String(Math.round(n * 10) / 10);
}

/** One panel: x = offered rate (log scale), y = `value` (linear). */
function panel(
	series: Series[],
	value: "delivered" | "p99",
	title: string,
	yLabel: string,
	top: number,
	cap = Infinity,
): string {
	const xs = series.flatMap((s) => s.points.map((p) => p.x)).filter((x) => x > 0);
	const minX = Math.min(...xs);
	const maxX = Math.max(...xs);
	const maxY = Math.min(
		cap,
		Math.max(1, ...series.flatMap((s) => s.points.map((p) => (Number.isFinite(p[value]) ? p[value] : 0)))),
	);
	const yTicks = ticks(maxY);
	const yMax = yTicks.at(-1) ?? maxY;
	const plotW = W - PAD.left - PAD.right;
	const plotH = H - PAD.top - PAD.bottom;
	const x = (v: number) =>
		PAD.left +
		(maxX === minX
			? plotW / 2
			: ((Math.log(v) - Math.log(minX)) / (Math.log(maxX) - Math.log(minX))) * plotW);
	const y = (v: number) => top + PAD.top + plotH - (Math.min(v, yMax) / yMax) * plotH;
	const parts: string[] = [];
	parts.push(`<text x="${PAD.left}" y="${top + 24}" font-size="15" font-weight="600">${esc(title)}</text>`);
	for (const t of yTicks) {
		parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
		parts.push(
			`<text x="${PAD.left - 8}" y="${y(t) + 4}" font-size="11" text-anchor="end">${human(t)}</text>`,
		);
	}
	for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
		parts.push(
			`<text x="${x(v)}" y="${top + H - PAD.bottom + 18}" font-size="11" text-anchor="middle">${human(v)}</text>`,
		);
	}
	parts.push(
		`<text x="${PAD.left + plotW / 2}" y="${top + H - 10}" font-size="12" text-anchor="middle">offered messages per second (log scale)</text>`,
	);
	parts.push(
		`<text transform="translate(16 ${top + PAD.top + plotH / 2}) rotate(-90)" font-size="12" text-anchor="middle">${esc(yLabel)}</text>`,
	);
	for (const s of series) {
		const pts = s.points.filter((p) => Number.isFinite(p[value]));
		if (pts.length === 0) continue;
		parts.push(
			`<polyline fill="none" stroke="${s.color}" stroke-width="2.5" points="${pts.map((p) => `${x(p.x).toFixed(1)},${y(p[value]).toFixed(1)}`).join(" ")}"/>`,
		);
		for (const p of pts)
			parts.push(
				`<circle cx="${x(p.x).toFixed(1)}" cy="${y(p[value]).toFixed(1)}" r="3.5" fill="${s.color}"/>`,
			);
	}
	return parts.join("\n");
}

export function fanoutChart(series: Series[], subtitle: string): string {
	const legend = series
		.map(
			(s, i) =>
				`<rect x="${PAD.left + i * 170}" y="${2 * H + 14}" width="14" height="14" fill="${s.color}"/><text x="${PAD.left + i * 170 + 20}" y="${2 * H + 26}" font-size="13">${esc(s.name)}</text>`,
		)
		.join("\n");
	return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 64}" viewBox="0 0 ${W} ${2 * H + 64}" font-family="system-ui, sans-serif">
<title>Fan-out benchmark: delivered messages per second and p99 latency against offered rate, per server</title>
<rect width="100%" height="100%" fill="#fff"/>
${panel(series, "delivered", "Fan-out to one room: delivered messages per second", "delivered / s", 0)}
<text x="${PAD.left}" y="${2 * H + 52}" font-size="11" fill="#555">${esc(subtitle)}</text>
${panel(series, "p99", "p99 delivery latency (ms; off the scale above 200 ms)", "p99 ms", H, 200)}
${legend}
</svg>
`;
}
