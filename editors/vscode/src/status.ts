// What the status bar item shows for each state of the server, from its mistral-lsp/status notifications.

/** The server's states, plus "starting" (no news yet) and "stopped" (no server process). */
export type ServerState = "starting" | "loading" | "ready" | "error" | "stopped";

/** The params of the server's `mistral-lsp/status` notification. */
export interface ServerStatus {
  state: ServerState;
  message: string;
  percent: number | null;
}

export interface StatusView {
  text: string;
  tooltip: string;
  isError: boolean;
}

const ICONS: Record<ServerState, string> = {
  starting: "$(loading~spin)",
  loading: "$(loading~spin)",
  ready: "$(sparkle)",
  error: "$(error)",
  stopped: "$(debug-stop)",
};

/** The status bar text ("mistral-lsp: loading 42%") and tooltip for a status. */
export function statusView(status: ServerStatus, completionsEnabled: boolean): StatusView {
  let label: string = status.state;
  if (status.state === "loading" && status.percent !== null) {
    label += ` ${Math.round(status.percent)}%`;
  }
  const icon = status.state === "ready" && !completionsEnabled ? "$(circle-slash)" : ICONS[status.state];
  const suffix = status.state === "ready" && !completionsEnabled ? " (completions off)" : "";
  const lines = [`mistral-lsp: ${status.state}${suffix}`];
  if (status.message) {
    lines.push(status.message);
  }
  lines.push("Click for restart, inline completions on/off and the log.");
  return {
    text: `${icon} mistral-lsp: ${label}${suffix}`,
    tooltip: lines.join("\n"),
    isError: status.state === "error" || status.state === "stopped",
  };
}

/** Reads a `mistral-lsp/status` notification or `mistral-lsp.status` answer; undefined if malformed. */
export function parseStatus(value: unknown): ServerStatus | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const { state, message, percent } = value as Record<string, unknown>;
  const states: readonly string[] = ["starting", "loading", "ready", "error"];
  if (typeof state !== "string" || !states.includes(state)) {
    return undefined;
  }
  return {
    state: state as ServerState,
    message: typeof message === "string" ? message : "",
    percent: typeof percent === "number" ? percent : null,
  };
}
