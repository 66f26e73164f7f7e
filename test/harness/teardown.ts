// Undoing what a start function started. Each step that starts something registers at once how to undo it;
// undoing runs the registered steps newest first and goes on past a step that fails, then reports every
// failure. So a start that fails halfway undoes exactly what had started, and stop() undoes all of it.
// (Node 24's AsyncDisposableStack does the same, but tsconfig's lib, ES2023, has no types for it, and its
// failures come as a chain of nested SuppressedErrors rather than one list.)
import { errorMessage } from '../../src/errors.ts';

export type Undo = () => unknown;

/** Every step that failed while undoing, in the order they ran. */
export class TeardownError extends AggregateError {
  readonly failures: readonly { step: string; error: unknown }[];
  constructor(what: string, total: number, failures: { step: string; error: unknown }[]) {
    super(failures.map((f) => f.error),
      `undoing ${what}: ${failures.length} of ${total} steps failed:\n${failures.map((f) => `  ${f.step}: ${indent(errorMessage(f.error))}`).join('\n')}`);
    this.name = 'TeardownError';
    this.failures = failures;
  }
}

const indent = (s: string) => s.replace(/\n/g, '\n    ');

export class Teardown {
  readonly #what: string;
  readonly #steps: { step: string; undo: Undo }[] = [];
  #running: Promise<void> | undefined;

  /** what: whose teardown this is, for the error ("the real node"). */
  constructor(what: string) {
    this.#what = what;
  }

  /** Registers how to undo what was just started (run before everything registered earlier). */
  push(step: string, undo: Undo): void {
    // A step started after the undoing began would never be undone: a bug in the start function.
    if (this.#running) throw new Error(`${this.#what}: '${step}' was registered after the teardown began`);
    this.#steps.push({ step, undo });
  }

  /** The registered steps, oldest first. */
  get steps(): string[] {
    return this.#steps.map((s) => s.step);
  }

  /**
   * Undoes every registered step, newest first, each after the one before has finished, going on past a step
   * that throws; then rejects with a TeardownError naming each failed step. Runs once: later calls get the
   * same promise.
   */
  run(): Promise<void> {
    this.#running ??= (async () => {
      const failures: { step: string; error: unknown }[] = [];
      for (const { step, undo } of [...this.#steps].reverse()) {
        try {
          await undo();
        } catch (error) {
          failures.push({ step, error });
        }
      }
      if (failures.length) throw new TeardownError(this.#what, this.#steps.length, failures);
    })();
    return this.#running;
  }

  /**
   * Runs start; if it throws, undoes what it registered and rethrows its error (with the undoing's failures
   * added to the message when there were any).
   */
  async unwindOnError<T>(start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (e) {
      const undone = await this.run().then(() => undefined, (te: unknown) => te);
      if (undone === undefined) throw e;
      throw new Error(`${errorMessage(e)}\n(then ${errorMessage(undone)})`, { cause: e });
    }
  }
}

/** One undo step that runs several at once (things started side by side) and fails with all their failures. */
export function together(...undos: Undo[]): () => Promise<void> {
  return async () => {
    const results = await Promise.allSettled(undos.map(async (u) => u()));
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length === 1) throw errors[0];
    if (errors.length) throw new AggregateError(errors, errors.map(errorMessage).join('\n'));
  };
}
