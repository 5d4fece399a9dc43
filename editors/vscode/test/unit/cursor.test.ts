// Unit tests: the cursor reports that let the server pre-warm, debounced and never repeated.
import * as assert from "node:assert/strict";
import { test } from "node:test";

import { CursorParams, CursorReporter, Timers } from "../../src/cursor";

/** Timers that run only when the test says time has passed. */
function manualTimers() {
  let now = 0;
  let next = 0;
  const pending = new Map<number, { at: number; callback: () => void }>();
  const timers: Timers = {
    set: (callback, ms) => {
      pending.set(++next, { at: now + ms, callback });
      return next;
    },
    clear: (handle) => pending.delete(handle as number),
  };
  const advance = (ms: number) => {
    now += ms;
    for (const [handle, timer] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at <= now) {
        pending.delete(handle);
        timer.callback();
      }
    }
  };
  return { timers, advance };
}

const at = (line: number, character: number, uri = "file:///w/a.py"): CursorParams => ({
  textDocument: { uri },
  position: { line, character },
});

test("a cursor that moves on is reported once, where it rests", () => {
  const { timers, advance } = manualTimers();
  const sent: CursorParams[] = [];
  const reporter = new CursorReporter((params) => sent.push(params), 250, timers);
  reporter.moved(at(1, 0));
  advance(100);
  reporter.moved(at(2, 0));
  advance(100);
  reporter.moved(at(3, 4));
  advance(249);
  assert.deepEqual(sent, [], "nothing while the cursor keeps moving");
  advance(1);
  assert.deepEqual(sent, [at(3, 4)]);
});

test("the same spot is not reported twice in a row, until the server is new", () => {
  const { timers, advance } = manualTimers();
  const sent: CursorParams[] = [];
  const reporter = new CursorReporter((params) => sent.push(params), 250, timers);
  reporter.moved(at(3, 4));
  advance(300);
  reporter.moved(at(3, 4));
  advance(300);
  assert.equal(sent.length, 1, "resting at the spot already sent sends nothing");
  reporter.moved(at(3, 4, "file:///w/b.py"));
  advance(300);
  assert.equal(sent.length, 2, "another document is another spot");
  reporter.moved(at(5, 0));
  reporter.reset();
  advance(300);
  assert.equal(sent.length, 2, "a reset drops the pending report");
  reporter.moved(at(3, 4, "file:///w/b.py"));
  advance(300);
  assert.equal(sent.length, 3, "after a reset the last spot is sent again");
});
