// Finds the mistral-lsp binary: the mistralLsp.server.path setting, else mistral-lsp on PATH.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const DEFAULT_COMMAND = "mistral-lsp";

export type Resolution = { path: string } | { error: string };

/**
 * Resolves `configured` (a path, a `~/` path, or a command name looked up on PATH) or, when it is
 * empty, `mistral-lsp` on PATH, to an executable file.
 */
export function resolveServer(
  configured: string | null | undefined,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): Resolution {
  const setting = configured?.trim();
  if (!setting) {
    const found = searchPath(DEFAULT_COMMAND, env, platform);
    return found
      ? { path: found }
      : { error: `The mistral-lsp server was not found on PATH. Install it, or set mistralLsp.server.path to the binary.` };
  }
  const expanded = setting === "~" || setting.startsWith("~/") ? path.join(os.homedir(), setting.slice(1)) : setting;
  if (!expanded.includes("/") && !expanded.includes(path.sep)) {
    const found = searchPath(expanded, env, platform);
    return found ? { path: found } : { error: `mistralLsp.server.path is "${setting}", which is not on PATH.` };
  }
  if (!path.isAbsolute(expanded)) {
    return { error: `mistralLsp.server.path must be an absolute path; it is "${setting}".` };
  }
  return isExecutable(expanded, platform)
    ? { path: expanded }
    : { error: `mistralLsp.server.path is "${setting}", which is not an executable file.` };
}

/** The first executable named `command` in the PATH folders, if any. */
export function searchPath(command: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string | undefined {
  const folders = (env.PATH ?? env.Path ?? "").split(platform === "win32" ? ";" : ":").filter(Boolean);
  const names = platform === "win32" && !path.extname(command) ? [`${command}.exe`, command] : [command];
  for (const folder of folders) {
    for (const name of names) {
      const candidate = path.join(folder, name);
      if (isExecutable(candidate, platform)) {
        return candidate;
      }
    }
  }
  return undefined;
}

function isExecutable(file: string, platform: NodeJS.Platform): boolean {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    fs.accessSync(file, platform === "win32" ? fs.constants.F_OK : fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
