// Reads the level of each line the server logs to stderr, so the log shows its warnings as warnings and its info as info.

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/**
 * Splits a server log line (`2026-01-01T10:00:00.000000Z  INFO model ready`) into its level and
 * message; the log channel adds its own timestamp. Other lines (a panic, say) count as errors.
 */
export function parseLogLine(line: string): { level: LogLevel; message: string } {
  const match = /^\d{4}-\d\d-\d\dT[\d:.]+Z\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+(.*)$/.exec(line);
  if (!match) {
    return { level: "error", message: line };
  }
  return { level: match[1].toLowerCase() as LogLevel, message: match[2] };
}
