// Unit tests: the streamed explanation follows its own notifications only.
import * as assert from "node:assert/strict";
import { test } from "node:test";

import { ExplanationParams, ExplanationStream, parseExplanation } from "../../src/explanation";

const range = { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } };
const note = (id: string, text: string, done = false, uri = "file:///a.py"): ExplanationParams => ({ id, uri, range, text, done });

test("the text grows with its own notifications and stops at done", () => {
  const stream = new ExplanationStream();
  assert.equal(stream.accept(note("explain-1", "early")), undefined, "nothing started");
  stream.start("file:///a.py");
  assert.equal(stream.accept(note("explain-2", "Adds", false, "file:///b.py")), undefined, "another document");
  assert.equal(stream.accept(note("explain-3", "Adds")), "Adds");
  assert.equal(stream.accept(note("explain-4", "Other")), undefined, "another explanation");
  assert.equal(stream.accept(note("explain-3", "Adds two")), "Adds two");
  assert.equal(stream.accept(note("explain-3", "Adds two numbers.", true)), "Adds two numbers.");
  assert.ok(stream.done);
  assert.equal(stream.accept(note("explain-3", "late")), undefined, "after done");
});

test("a failed job's empty last notification keeps the text, and a new start forgets the old one", () => {
  const stream = new ExplanationStream();
  stream.start("file:///a.py");
  stream.accept(note("explain-1", "Parses"));
  assert.equal(stream.accept(note("explain-1", "", true)), undefined);
  assert.equal(stream.text, "Parses");
  stream.start("file:///a.py");
  assert.equal(stream.accept(note("explain-1", "old")), undefined, "the older explanation's late words");
  assert.equal(stream.accept(note("explain-2", "New")), "New");
  assert.equal(stream.text, "New");
});

test("malformed params are ignored", () => {
  assert.equal(parseExplanation(null), undefined);
  assert.equal(parseExplanation({ id: 1, uri: "x", text: "", done: false }), undefined);
  assert.deepEqual(parseExplanation(note("a", "b")), note("a", "b"));
});
