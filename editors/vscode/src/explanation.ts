// Which `mistral-lsp/explanation` notifications belong to the explanation on screen, and what it says so far.

export const EXPLAIN_COMMAND = "mistral-lsp.explain";
export const EXPLANATION_NOTIFICATION = "mistral-lsp/explanation";

export interface ExplanationParams {
  id: string;
  uri: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  text: string;
  done: boolean;
}

/** Reads a notification's params; undefined for anything malformed. */
export function parseExplanation(params: unknown): ExplanationParams | undefined {
  const p = params as Partial<ExplanationParams> | null;
  if (!p || typeof p.id !== "string" || typeof p.uri !== "string" || typeof p.text !== "string" || typeof p.done !== "boolean") {
    return undefined;
  }
  return p as ExplanationParams;
}

/**
 * One explanation at a time: after `start(uri)`, the first notification for that document names
 * the explanation's id, and only notifications with that id change the text. A newer `start`
 * forgets the older one, whose late notifications are then ignored.
 */
export class ExplanationStream {
  private uri: string | undefined;
  private id: string | undefined;
  private current = "";
  private finished = false;
  /** Ids of explanations started before: their late notifications are not the new one's. */
  private readonly forgotten = new Set<string>();

  start(uri: string): void {
    if (this.id !== undefined) {
      this.forgotten.add(this.id);
    }
    this.uri = uri;
    this.id = undefined;
    this.current = "";
    this.finished = false;
  }

  /** The new text when the notification belongs to the explanation on screen, else undefined. */
  accept(params: ExplanationParams): string | undefined {
    if (this.uri === undefined || this.finished || params.uri !== this.uri || this.forgotten.has(params.id)) {
      return undefined;
    }
    if (this.id === undefined) {
      this.id = params.id;
    } else if (params.id !== this.id) {
      return undefined;
    }
    if (params.done) {
      this.finished = true;
    }
    // The last notification of a failed job carries no text: keep what was written.
    if (params.text === "" && params.done) {
      return undefined;
    }
    this.current = params.text;
    return this.current;
  }

  /** Ends the explanation on screen (its answer came, or the user stopped it). */
  finish(): void {
    this.finished = true;
  }

  get text(): string {
    return this.current;
  }

  get done(): boolean {
    return this.finished;
  }
}
