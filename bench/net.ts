// Loopback helpers shared by the benchmark and the tests that start engines.

/**
 * hubbub's per-address limits, lifted: every bench client connects from one loopback address but
 * stands for a different person, so the connection cap, the upgrade rate and the address quota
 * would otherwise refuse the bench itself. Per-connection limits stay as shipped.
 */
export const ONE_ADDRESS_MANY_PEOPLE = [
	"--max-conns-per-ip",
	"20000",
	"--upgrade-rate",
	"1000000",
	"--upgrade-burst",
	"1000000",
	"--address-quota-per-day",
	"0",
];

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
