// Unit test: package.json's settings match the server's own definitions (`mistral-lsp settings-schema`); fix with `npm run gen-settings`.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { test } from "node:test";

import { PACKAGE_JSON, mergeProperties, serverSchema } from "../../scripts/settingsSchema";
import { CLIENT_ONLY_KEYS } from "../../src/settings";

test("package.json's settings are the server's settings plus the client-only ones", () => {
  const properties = JSON.parse(fs.readFileSync(PACKAGE_JSON, "utf8")).contributes.configuration.properties;
  assert.deepEqual(properties, mergeProperties(properties, serverSchema()), "run `npm run gen-settings`");
  for (const key of CLIENT_ONLY_KEYS) {
    assert.ok(`mistralLsp.${key}` in properties, key);
  }
});

test("the server describes the settings the issue asks for", () => {
  const schema = serverSchema();
  for (const key of ["model", "threads", "gpuLayers", "contextSize", "fim.mode", "completion.maxTokens", "completion.enabled", "completion.disabledLanguages"]) {
    assert.ok(`mistralLsp.${key}` in schema, key);
  }
});
