// Reports where the cursor rests (`mistral-lsp/cursor`), so that the server can read the prompt of the next completion there before it is asked for one.

export const CURSOR_NOTIFICATION = "mistral-lsp/cursor";

/** How long the cursor must rest before it is reported: holding an arrow key sends nothing. */
export const CURSOR_REST_MS = 250;

export interface CursorParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

/** Timers, replaceable in tests. */
export interface Timers {
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (callback, ms) => setTimeout(callback, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Sends the cursor once it has rested, and not again while it stays at the spot last sent. */
export class CursorReporter {
  private pending: unknown;
  private lastSent = "";

  constructor(
    private readonly send: (params: CursorParams) => void,
    private readonly restMs = CURSOR_REST_MS,
    private readonly timers: Timers = realTimers,
  ) {}

  moved(params: CursorParams): void {
    this.cancel();
    this.pending = this.timers.set(() => {
      this.pending = undefined;
      const key = JSON.stringify(params);
      if (key !== this.lastSent) {
        this.lastSent = key;
        this.send(params);
      }
    }, this.restMs);
  }

  /** Drops a pending report and forgets the last one: a new server has heard nothing yet. */
  reset(): void {
    this.cancel();
    this.lastSent = "";
  }

  private cancel(): void {
    if (this.pending !== undefined) {
      this.timers.clear(this.pending);
      this.pending = undefined;
    }
  }
}
