// Ctrl-C: the first SIGINT (or a SIGTERM) asks the run to stop after the current step, which the
// trainers check through `shouldStop()` and answer by saving a checkpoint; a second SIGINT quits
// at once (exit code 130, like a shell).
import type { EventEmitter } from 'node:events';

export interface StopSignalOptions {
  /** Where signals come from (default: process). */
  target?: EventEmitter;
  /** How to quit on the second Ctrl-C (default: process.exit). */
  exit?: (code: number) => void;
  /** Where the messages go (default: stderr). */
  log?: (message: string) => void;
}

export class StopSignal {
  private stopRequested = false;
  private reason: string | undefined;
  private readonly target: EventEmitter;
  private readonly exit: (code: number) => void;
  private readonly log: (message: string) => void;
  private readonly onInt = () => this.handle('SIGINT');
  private readonly onTerm = () => this.handle('SIGTERM');

  constructor(options: StopSignalOptions = {}) {
    this.target = options.target ?? process;
    this.exit = options.exit ?? ((code) => process.exit(code));
    this.log = options.log ?? ((m) => process.stderr.write(`\n${m}\n`));
  }

  /** Starts listening (replaces Node's default "exit at once" on SIGINT). */
  install(): this {
    this.target.on('SIGINT', this.onInt);
    this.target.on('SIGTERM', this.onTerm);
    return this;
  }

  uninstall(): void {
    this.target.off('SIGINT', this.onInt);
    this.target.off('SIGTERM', this.onTerm);
  }

  /** Whether the run should stop after the current step. */
  get requested(): boolean {
    return this.stopRequested;
  }

  /** What asked for the stop (`SIGINT`, `SIGTERM`, or a caller's reason). */
  get stopReason(): string | undefined {
    return this.reason;
  }

  /** Asks for a clean stop from code (e.g. a time limit). */
  request(reason: string): void {
    this.stopRequested = true;
    this.reason ??= reason;
  }

  private handle(signal: 'SIGINT' | 'SIGTERM'): void {
    if (this.stopRequested && signal === 'SIGINT') {
      this.log('Ctrl-C again: quitting now without saving (the last saved checkpoint is kept).');
      this.exit(130);
      return;
    }
    if (this.stopRequested) return;
    this.request(signal);
    this.log(
      signal === 'SIGINT'
        ? 'Ctrl-C: stopping after this step (GRPO: after the last update of this rollout) and saving a checkpoint (press Ctrl-C again to quit at once).'
        : 'SIGTERM: stopping after this step (GRPO: after the last update of this rollout) and saving a checkpoint.',
    );
  }
}
