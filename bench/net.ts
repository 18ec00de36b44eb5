// Loopback helpers shared by the benchmark and the tests that start engines.

/** A port nobody listens on right now (the kernel's pick; free again once this returns). */
export async function freePort(): Promise<number> {
	const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
	const port = s.port;
	s.stop(true);
	return port;
}

/** Resolves once something accepts TCP on the port: the one thing every server answers (socket.io leaves plain GETs hanging). */
export async function waitForPort(
	port: number,
	isGone: () => boolean = () => false,
	ms = 15_000,
): Promise<void> {
	const deadline = Date.now() + ms;
	for (;;) {
		try {
			const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
			s.end();
			return;
		} catch {
			if (Date.now() > deadline || isGone()) throw new Error(`nothing listens on port ${port}`);
			await Bun.sleep(50);
		}
	}
}
