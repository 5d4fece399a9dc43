// Generates package.json's contributes.configuration.properties from `mistral-lsp settings-schema` (npm run gen-settings).
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

import { CLIENT_ONLY_KEYS, SECTION } from "../src/settings";

/** The extension folder (this file runs from out/scripts). */
export const EXTENSION_DIR = path.resolve(__dirname, "..", "..");
export const PACKAGE_JSON = path.join(EXTENSION_DIR, "package.json");

type Properties = Record<string, unknown>;

/** `$MISTRAL_LSP_BIN`, else the repository's debug build, else `mistral-lsp` on PATH. */
export function serverBinary(): string {
  const built = path.resolve(EXTENSION_DIR, "..", "..", "target", "debug", "mistral-lsp");
  return process.env.MISTRAL_LSP_BIN || (fs.existsSync(built) ? built : "mistral-lsp");
}

/** The server's own settings definitions, keyed `mistralLsp.<key>`. */
export function serverSchema(binary = serverBinary()): Properties {
  return JSON.parse(execFileSync(binary, ["settings-schema"], { encoding: "utf8", timeout: 30_000 }));
}

/** The client-only settings of `current` followed by the server's settings from `schema`. */
export function mergeProperties(current: Properties, schema: Properties): Properties {
  const clientOnly = CLIENT_ONLY_KEYS.map((key) => `${SECTION}.${key}`);
  const merged: Properties = { ...schema };
  for (const name of clientOnly) {
    if (name in current) {
      merged[name] = current[name];
    }
  }
  return merged;
}

function main(): void {
  const manifest = JSON.parse(fs.readFileSync(PACKAGE_JSON, "utf8"));
  const configuration = manifest.contributes.configuration;
  configuration.properties = mergeProperties(configuration.properties, serverSchema());
  fs.writeFileSync(PACKAGE_JSON, JSON.stringify(manifest, null, 2) + "\n");
  console.log(`Wrote ${Object.keys(configuration.properties).length} settings to ${PACKAGE_JSON}`);
}

if (require.main === module) {
  main();
}
