// Caps automatic restarts of a crashing server, so that a broken binary or model cannot loop forever.

/** Allows at most `max` automatic restarts within any `windowMs` milliseconds. */
export class RestartBudget {
  private crashes: number[] = [];

  constructor(
    readonly max = 3,
    readonly windowMs = 3 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a crash; true when the server may be restarted automatically once more. */
  crashed(): boolean {
    const time = this.now();
    this.crashes = this.crashes.filter((crash) => time - crash < this.windowMs);
    this.crashes.push(time);
    return this.crashes.length <= this.max;
  }

  /** Crashes within the current window. */
  get recent(): number {
    const time = this.now();
    return this.crashes.filter((crash) => time - crash < this.windowMs).length;
  }

  /** Forgets past crashes, after the user restarts the server by hand. */
  reset(): void {
    this.crashes = [];
  }
}
