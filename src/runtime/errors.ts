/**
 * The one line between a user's mistake and a bug in pt-recipe. Every error that
 * bad input or a bad environment can cause (a data file, a checkpoint, a device, a
 * prompt) extends UserError; `ptr` reports those in one line with exit code 1, and
 * anything else as an internal error (exit 70) that asks to be reported.
 */

/** Bad input or a bad environment, never a bug: the message names the file (and line) and what was expected. */
export class UserError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    // The subclass's own name (DataError, EncodeError, …), for logs and stack traces.
    this.name = new.target.name;
  }
}
