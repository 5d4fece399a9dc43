// Unit tests: how VS Code settings map to the server's options, and what a settings change needs.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { test } from "node:test";

import { PACKAGE_JSON } from "../../scripts/settingsSchema";
import { changeAction, serverKeys, serverSettings } from "../../src/settings";

const properties: Record<string, { default?: unknown }> = JSON.parse(fs.readFileSync(PACKAGE_JSON, "utf8")).contributes
  .configuration.properties;
const keys = serverKeys(properties);

test("server keys are the contributed settings without the client-only ones", () => {
  assert.ok(keys.includes("model"));
  assert.ok(keys.includes("fim.mode"));
  assert.ok(keys.includes("completion.disabledLanguages"));
  assert.ok(!keys.includes("server.path"));
  assert.ok(!keys.includes("trace.server"));
});

test("dotted keys become nested objects, as the server reads them", () => {
  const values: Record<string, unknown> = {
    model: "/models/qwen.gguf",
    threads: 2,
    "fim.mode": "native",
    "completion.maxTokens": 32,
    "completion.disabledLanguages": ["markdown"],
  };
  assert.deepEqual(serverSettings(Object.keys(values), (key) => values[key]), {
    model: "/models/qwen.gguf",
    threads: 2,
    fim: { mode: "native" },
    completion: { maxTokens: 32, disabledLanguages: ["markdown"] },
  });
});

test("settings without a value are left out, so the server keeps its default", () => {
  assert.deepEqual(serverSettings(["model", "threads", "log.level"], (key) => (key === "threads" ? 4 : undefined)), {
    threads: 4,
  });
  assert.deepEqual(serverSettings(["model"], () => null), {});
});

test("the defaults of every contributed server setting map to a complete options object", () => {
  const options = serverSettings(keys, (key) => properties[`mistralLsp.${key}`].default);
  assert.equal(options.threads, 0);
  assert.deepEqual(options.completion, {
    adaptiveBudgets: true,
    disabledLanguages: [],
    enabled: true,
    maxTokens: 128,
    precompute: false,
    prewarm: true,
    timeLimitScale: 1,
  });
  assert.equal((options.sampling as Record<string, unknown>).temperature, 0);
});

test("model, threads, GPU layers, context size and the server path restart the server", () => {
  for (const setting of ["model", "threads", "gpuLayers", "contextSize", "server.path"]) {
    assert.equal(changeAction(keys, (s) => s === `mistralLsp.${setting}`), "restart", setting);
  }
});

test("other server settings are sent to the running server", () => {
  for (const setting of ["completion.enabled", "completion.maxTokens", "fim.mode", "sampling.temperature", "log.level"]) {
    assert.equal(changeAction(keys, (s) => s === `mistralLsp.${setting}`), "notify", setting);
  }
});

test("client-only and unrelated settings need nothing from the server", () => {
  assert.equal(changeAction(keys, (s) => s === "mistralLsp.trace.server"), "none");
  assert.equal(changeAction(keys, (s) => s === "editor.fontSize"), "none");
});
