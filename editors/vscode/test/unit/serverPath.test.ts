// Unit tests: finding the server binary from mistralLsp.server.path or PATH.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, test } from "node:test";

import { resolveServer } from "../../src/serverPath";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mistral-lsp-path-"));
const bin = path.join(dir, "bin");
fs.mkdirSync(bin);
const server = path.join(bin, "mistral-lsp");
fs.writeFileSync(server, "#!/bin/sh\n", { mode: 0o755 });
const other = path.join(bin, "my-mistral");
fs.writeFileSync(other, "#!/bin/sh\n", { mode: 0o755 });
const notExecutable = path.join(dir, "plain");
fs.writeFileSync(notExecutable, "", { mode: 0o644 });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const env = { PATH: `/nonexistent:${bin}` };

test("an empty setting finds mistral-lsp on PATH", () => {
  assert.deepEqual(resolveServer("", env, "linux"), { path: server });
  assert.deepEqual(resolveServer(undefined, env, "linux"), { path: server });
  assert.deepEqual(resolveServer(null, env, "linux"), { path: server });
});

test("an empty setting without mistral-lsp on PATH is an error naming the setting", () => {
  const found = resolveServer("", { PATH: "/nonexistent" }, "linux");
  assert.ok("error" in found && /not found on PATH/.test(found.error) && /mistralLsp\.server\.path/.test(found.error));
});

test("an absolute path to an executable is used as it is", () => {
  assert.deepEqual(resolveServer(other, { PATH: "" }, "linux"), { path: other });
  assert.deepEqual(resolveServer(`  ${other} `, { PATH: "" }, "linux"), { path: other });
});

test("a bare command name is looked up on PATH", () => {
  assert.deepEqual(resolveServer("my-mistral", env, "linux"), { path: other });
  const found = resolveServer("nope-mistral", env, "linux");
  assert.ok("error" in found && /not on PATH/.test(found.error));
});

test("a missing file, a folder or a file that is not executable is an error", () => {
  for (const bad of [path.join(dir, "missing"), bin, notExecutable]) {
    const found = resolveServer(bad, env, "linux");
    assert.ok("error" in found && /not an executable file/.test(found.error), bad);
  }
});

test("a relative path is an error, since there is no good folder to resolve it against", () => {
  const found = resolveServer("target/debug/mistral-lsp", env, "linux");
  assert.ok("error" in found && /absolute/.test(found.error));
});

test("~ expands to the home folder", () => {
  const found = resolveServer("~/surely-not-here/mistral-lsp", env, "linux");
  assert.ok("error" in found);
  const home = path.relative(os.homedir(), server);
  if (!home.startsWith("..")) {
    assert.deepEqual(resolveServer(`~/${home}`, env, "linux"), { path: server });
  }
});
