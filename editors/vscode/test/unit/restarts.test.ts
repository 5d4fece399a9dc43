// Unit tests: the cap on automatic restarts of a crashing server.
import * as assert from "node:assert/strict";
import { test } from "node:test";

import { RestartBudget } from "../../src/restarts";

function clock() {
  const state = { now: 0 };
  return { state, now: () => state.now };
}

test("allows max restarts within the window, then refuses", () => {
  const { state, now } = clock();
  const budget = new RestartBudget(3, 60_000, now);
  assert.equal(budget.crashed(), true);
  state.now += 1_000;
  assert.equal(budget.crashed(), true);
  state.now += 1_000;
  assert.equal(budget.crashed(), true);
  state.now += 1_000;
  assert.equal(budget.crashed(), false);
  assert.equal(budget.recent, 4);
  state.now += 1_000;
  assert.equal(budget.crashed(), false, "a server crashing in a loop stays stopped");
});

test("crashes older than the window are forgotten", () => {
  const { state, now } = clock();
  const budget = new RestartBudget(2, 60_000, now);
  assert.equal(budget.crashed(), true);
  assert.equal(budget.crashed(), true);
  state.now += 60_000;
  assert.equal(budget.recent, 0);
  assert.equal(budget.crashed(), true, "a crash once in a while is always restarted");
});

test("a manual restart resets the budget", () => {
  const { now } = clock();
  const budget = new RestartBudget(1, 60_000, now);
  assert.equal(budget.crashed(), true);
  assert.equal(budget.crashed(), false);
  budget.reset();
  assert.equal(budget.crashed(), true);
});
