// Unit tests: the status bar text for each server state.
import * as assert from "node:assert/strict";
import { test } from "node:test";

import { parseStatus, statusView } from "../../src/status";

test("loading shows the progress in percent", () => {
  const view = statusView({ state: "loading", message: "loading model.gguf", percent: 42.4 }, true);
  assert.equal(view.text, "$(loading~spin) mistral-lsp: loading 42%");
  assert.match(view.tooltip, /loading model\.gguf/);
  assert.equal(view.isError, false);
});

test("loading without a percentage shows just the state", () => {
  assert.equal(statusView({ state: "loading", message: "", percent: null }, true).text, "$(loading~spin) mistral-lsp: loading");
});

test("ready says ready, and says so when completions are switched off", () => {
  assert.equal(statusView({ state: "ready", message: "Qwen", percent: 100 }, true).text, "$(sparkle) mistral-lsp: ready");
  assert.equal(
    statusView({ state: "ready", message: "Qwen", percent: 100 }, false).text,
    "$(circle-slash) mistral-lsp: ready (completions off)",
  );
});

test("error and stopped are shown as errors", () => {
  assert.equal(statusView({ state: "error", message: "no such file", percent: null }, true).isError, true);
  assert.equal(statusView({ state: "stopped", message: "", percent: null }, true).isError, true);
});

test("status notifications are parsed defensively", () => {
  assert.deepEqual(parseStatus({ state: "ready", message: "m", percent: 100 }), { state: "ready", message: "m", percent: 100 });
  assert.deepEqual(parseStatus({ state: "loading" }), { state: "loading", message: "", percent: null });
  assert.equal(parseStatus({ state: "exploded" }), undefined);
  assert.equal(parseStatus(null), undefined);
  assert.equal(parseStatus("ready"), undefined);
});
