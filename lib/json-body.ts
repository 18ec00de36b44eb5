// Reads a small request body with a byte cap. A body without Content-Length
// (Transfer-Encoding: chunked) is streamed and cut off as soon as it passes the
// cap: `req.text()` would first hold all of it (up to Bun's maxRequestBodySize,
// 128 MiB) in memory, so a few unauthenticated requests at once could take gigabytes.

/** The body was longer than the cap (answer 413 and close the connection). */
export class BodyTooLarge extends Error {
	constructor(readonly max: number) {
		super(`a request body is at most ${max} bytes`);
	}
}

/** The body as UTF-8 text ("" when there is none); throws BodyTooLarge past `max` bytes. */
export async function readCappedText(req: Request, max: number): Promise<string> {
	const declared = req.headers.get("content-length");
	if (declared !== null && !(Number(declared) <= max)) throw new BodyTooLarge(max);
	if (!req.body) return "";
	const reader = req.body.getReader();
	const chunks: Uint8Array[] = [];
	let size = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		size += value.byteLength;
		if (size > max) {
			// Stops reading: the rest of the body is never buffered.
			await reader.cancel().catch(() => {});
			throw new BodyTooLarge(max);
		}
		chunks.push(value);
	}
	return Buffer.concat(chunks, size).toString("utf8");
}
