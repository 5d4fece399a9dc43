// Unit tests: the levels of the server's stderr lines in the log.
import * as assert from "node:assert/strict";
import { test } from "node:test";

import { parseLogLine } from "../../src/serverLog";

test("tracing lines keep their level and lose their timestamp", () => {
  assert.deepEqual(parseLogLine("2026-11-27T03:02:17.554795Z  INFO initialize: position encoding Utf16"), {
    level: "info",
    message: "initialize: position encoding Utf16",
  });
  assert.deepEqual(parseLogLine("2026-11-27T03:02:18.025458Z  WARN control-looking token"), {
    level: "warn",
    message: "control-looking token",
  });
  assert.equal(parseLogLine("2026-11-27T03:02:18Z DEBUG x").level, "debug");
  assert.equal(parseLogLine("2026-11-27T03:02:18Z ERROR x").level, "error");
  assert.equal(parseLogLine("2026-11-27T03:02:18Z TRACE x").level, "trace");
});

test("anything else, such as a panic, is an error", () => {
  assert.deepEqual(parseLogLine("thread 'main' panicked at server/src/main.rs:1:1"), {
    level: "error",
    message: "thread 'main' panicked at server/src/main.rs:1:1",
  });
});
