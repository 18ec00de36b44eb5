// Awaiting what a user would notice: polls a condition until it holds, instead of sleeping a guessed time.

/** Resolves once `check` holds; throws naming `what` after `ms`. */
export async function until(
	check: () => boolean | Promise<boolean>,
	ms = 10_000,
	what = "condition",
): Promise<void> {
	const deadline = Date.now() + ms;
	while (!(await check())) {
		if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
		await Bun.sleep(10);
	}
}
