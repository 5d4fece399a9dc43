// Maps the extension's VS Code settings to what the server reads, and decides what a settings change needs.

/** The settings section, as VS Code and the server name it. */
export const SECTION = "mistralLsp";

/** Settings that only the extension reads; the server would report them as unknown keys. */
export const CLIENT_ONLY_KEYS: readonly string[] = ["server.path", "trace.server"];

/** Settings that change which model is loaded or how: the server is restarted when one changes. */
export const RESTART_KEYS: readonly string[] = ["server.path", "model", "threads", "gpuLayers", "contextSize"];

/** The server's keys ("fim.mode", ...) among the contributed `mistralLsp.*` setting names. */
export function serverKeys(properties: Record<string, unknown>): string[] {
  const prefix = `${SECTION}.`;
  return Object.keys(properties)
    .filter((name) => name.startsWith(prefix))
    .map((name) => name.slice(prefix.length))
    .filter((key) => !CLIENT_ONLY_KEYS.includes(key));
}

/**
 * The server's settings as one nested object (`{fim: {mode: "auto"}}`), read with `get` (a
 * `WorkspaceConfiguration.get` for the section). Keys without a value are left out, so the
 * server keeps its own default for them.
 */
export function serverSettings(keys: readonly string[], get: (key: string) => unknown): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    const value = get(key);
    if (value === undefined || value === null) {
      continue;
    }
    const parts = key.split(".");
    let node = settings;
    for (const part of parts.slice(0, -1)) {
      const child = node[part];
      node = (node[part] = typeof child === "object" && child !== null ? child : {}) as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return settings;
}

/** What a settings change needs: a new server process, the new values sent to it, or nothing. */
export type ChangeAction = "restart" | "notify" | "none";

/** Classifies a change with `affects` (a `ConfigurationChangeEvent.affectsConfiguration`). */
export function changeAction(keys: readonly string[], affects: (setting: string) => boolean): ChangeAction {
  if (RESTART_KEYS.some((key) => affects(`${SECTION}.${key}`))) {
    return "restart";
  }
  return keys.some((key) => affects(`${SECTION}.${key}`)) ? "notify" : "none";
}
