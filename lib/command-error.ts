// The one error a subcommand refuses with: a sentence for the person at the shell, and the exit status.

/** A refusal with one clear sentence; `status` is the exit status (2: the input or the situation is wrong). */
export class CommandError extends Error {
	override name = "CommandError";
	constructor(
		message: string,
		readonly status = 2,
	) {
		super(message);
	}
}
