// Protocol tests: the options the extension builds from VS Code settings, sent to the real server as VS Code would send them.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, before, test } from "node:test";

import { PACKAGE_JSON } from "../../scripts/settingsSchema";
import { SECTION, serverKeys, serverSettings } from "../../src/settings";
import { LspServer, testModel, within } from "./lspServer";

const properties: Record<string, { default?: unknown }> = JSON.parse(fs.readFileSync(PACKAGE_JSON, "utf8")).contributes
  .configuration.properties;

/** The user settings of this test on top of the contributed defaults, like `WorkspaceConfiguration.get`. */
const user: Record<string, unknown> = {
  model: testModel(),
  threads: 2,
  contextSize: 2048,
  "completion.maxTokens": 8,
  "server.path": "/somewhere/mistral-lsp",
  "trace.server": "verbose",
};
const get = (key: string) => (key in user ? user[key] : properties[`${SECTION}.${key}`]?.default);
const options = () => serverSettings(serverKeys(properties), get);

const uri = "file:///work/add.py";
const text = 'def add(a, b):\n    """Return the sum of a and b."""\n    return ';
const cursor = { line: 2, character: 11 };

let server: LspServer;

before(async () => {
  assert.ok(fs.existsSync(testModel()), `the test model is missing: run scripts/fetch-test-models qwen-0.5b (${testModel()})`);
  server = new LspServer(options);
  await server.initialize(options());
  await server.connection.sendNotification("textDocument/didOpen", {
    textDocument: { uri, languageId: "python", version: 1, text },
  });
});

after(async () => {
  assert.equal(await server.shutdown(), 0, "the server exits with 0 after shutdown and exit");
});

type Items = { insertText: string }[];

async function inline(): Promise<Items> {
  const answer = await within(
    60_000,
    "inline completion",
    server.connection.sendRequest<Items | { items: Items }>("textDocument/inlineCompletion", {
      textDocument: { uri },
      position: cursor,
      context: { triggerKind: 2 },
    }),
  );
  // The result is a list of items or an object with one (LSP 3.18).
  return Array.isArray(answer) ? answer : answer.items;
}

test("the model loads with the settings the extension sends, reporting loading then ready", async () => {
  await server.waitForState("ready", 120_000);
  assert.equal(server.statuses[0].state, "loading");
  const status = await server.connection.sendRequest<{ state: string; model: string }>("workspace/executeCommand", {
    command: "mistral-lsp.status",
    arguments: [],
  });
  assert.equal(status.state, "ready");
});

test("the server accepts every option the extension sends: no warnings or errors shown", () => {
  assert.deepEqual(
    server.messages.filter((message) => message.type <= 2),
    [],
    `stderr: ${server.stderr.join("")}`,
  );
});

test("an inline completion continues the code", async () => {
  const items = await inline();
  assert.equal(items.length, 1);
  assert.match(items[0].insertText, /^a \+ b/);
});

test("completion.enabled false, sent as didChangeConfiguration, turns completions off and back on", async () => {
  user["completion.enabled"] = false;
  await server.connection.sendNotification("workspace/didChangeConfiguration", { settings: { [SECTION]: options() } });
  assert.deepEqual(await inline(), []);
  delete user["completion.enabled"];
  await server.connection.sendNotification("workspace/didChangeConfiguration", { settings: { [SECTION]: options() } });
  assert.match((await inline())[0].insertText, /^a \+ b/);
});

test("a language in completion.disabledLanguages gets no completions", async () => {
  user["completion.disabledLanguages"] = ["python"];
  await server.connection.sendNotification("workspace/didChangeConfiguration", { settings: { [SECTION]: options() } });
  assert.deepEqual(await inline(), []);
  delete user["completion.disabledLanguages"];
  await server.connection.sendNotification("workspace/didChangeConfiguration", { settings: { [SECTION]: options() } });
  assert.deepEqual(
    server.messages.filter((message) => message.type <= 2),
    [],
  );
});
