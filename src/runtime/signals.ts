/**
 * Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM: the first signal asks the
 * training loop to finish the step it is in, write a checkpoint and stop; the
 * process then exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process
 * killed by the signal. A second signal does not wait: it restores the terminal's
 * cursor and exits at once (the last checkpoint written is still intact).
 */
import { UserError } from './errors.js';

export type StopSignalName = 'SIGINT' | 'SIGTERM';

/** 128 + the signal's number, the shell's convention for "killed by". */
const EXIT_CODES: Readonly<Record<StopSignalName, number>> = { SIGINT: 130, SIGTERM: 143 };

/** What a training loop polls between steps. */
export interface StopRequest {
  /** The signal received, or null while the run should go on. */
  readonly signal: StopSignalName | null;
}

/** The run stopped on a signal after writing a checkpoint; exits 130 or 143. */
export class InterruptedError extends UserError {
  override readonly exitCode: number;

  constructor(
    readonly signal: StopSignalName,
    message: string,
  ) {
    super(message);
    this.exitCode = EXIT_CODES[signal];
  }
}

/** SIGINT/SIGTERM handlers for the length of a run; `dispose()` puts the defaults back. */
export class StopSignals implements StopRequest {
  signal: StopSignalName | null = null;
  private readonly handlers = new Map<StopSignalName, () => void>();

  private constructor(private readonly log: (line: string) => void) {}

  /** Installs the handlers; `log` tells the user what happens next. */
  static install(log: (line: string) => void): StopSignals {
    const s = new StopSignals(log);
    for (const name of ['SIGINT', 'SIGTERM'] as const) {
      const handler = (): void => s.receive(name);
      s.handlers.set(name, handler);
      process.on(name, handler);
    }
    return s;
  }

  /** The exit code a run stopped by `signal` ends with. */
  static exitCode(signal: StopSignalName): number {
    return EXIT_CODES[signal];
  }

  private receive(name: StopSignalName): void {
    if (this.signal === null) {
      this.signal = name;
      this.log(`\n${name}: finishing the current step and writing a checkpoint (${name} again to stop at once)`);
      return;
    }
    // Second signal: no checkpoint; the one written last is intact (writes are atomic).
    if ((process.stderr as { isTTY?: boolean }).isTTY) process.stderr.write('\x1b[?25h\n');
    process.exit(EXIT_CODES[name]);
  }

  dispose(): void {
    for (const [name, handler] of this.handlers) process.off(name, handler);
    this.handlers.clear();
  }
}
