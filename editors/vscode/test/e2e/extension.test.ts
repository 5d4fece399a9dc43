// End-to-end tests in VS Code (code-server + Chromium): ghost text from the real server, Tab, the status bar, bad binaries, review and explain.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import type { Locator } from "playwright-core";

import { testModel } from "../unit/lspServer";

import { Editor, until } from "./editor";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "..", "test", "artifacts");
const README_IMAGE = path.resolve(__dirname, "..", "..", "..", "images", "ghost-text.png");
const binary = process.env.MISTRAL_LSP_BIN ?? "";
const prefix = 'def add(a, b):\n    """Return the sum of a and b."""\n';
const typed = "    return ";

const settings = {
  "telemetry.telemetryLevel": "off",
  "editor.quickSuggestions": false,
  "editor.inlineSuggest.enabled": true,
  "files.autoSave": "off",
  "workbench.startupEditor": "none",
  "workbench.colorTheme": "Default Dark Modern",
  "editor.fontSize": 16,
  // Plain text in the settings editor, for Editor.changeSettings.
  "editor.autoClosingBrackets": "never",
  "editor.autoClosingQuotes": "never",
  "editor.autoIndent": "none",
  "mistralLsp.server.path": binary,
  "mistralLsp.model": testModel(),
  "mistralLsp.threads": 2,
  "mistralLsp.contextSize": 2048,
  "mistralLsp.completion.maxTokens": 24,
  "mistralLsp.trace.server": "verbose",
};

let editor: Editor;

before(async () => {
  assert.ok(fs.existsSync(binary), `MISTRAL_LSP_BIN is not a file: ${binary}`);
  assert.ok(fs.existsSync(testModel()), `the test model is missing: ${testModel()}`);
  editor = new Editor();
  fs.writeFileSync(path.join(editor.workspace, "add.py"), prefix);
  editor.writeSettings(settings);
  await editor.install();
  await editor.open();
});

after(async () => {
  // Keep what explains a failure: the last screen, the extension's log (with the LSP trace), code-server's output.
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await editor?.page?.screenshot({ path: path.join(ARTIFACTS, "last.png") }).catch(() => undefined);
  fs.writeFileSync(path.join(ARTIFACTS, "extension.log"), editor?.extensionLog() ?? "");
  fs.writeFileSync(path.join(ARTIFACTS, "code-server.log"), editor?.serverOutput ?? "");
  await editor?.close();
  editor?.removeFiles();
});

/** The status bar item of the extension, once its text matches. */
function status(text: string | RegExp) {
  return editor.page.locator(".statusbar-item", { hasText: text });
}

/** A notification toast whose text matches. */
function toast(text: string | RegExp) {
  return editor.page.locator(".notification-toast", { hasText: text });
}

type Suggestion = { insertText: string };

/** The first item of the last non-empty inline completion answer, from the client's trace in the log. */
function lastSuggestion(): Suggestion | undefined {
  const entries = editor.extensionLog().split(/^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[)/m);
  let last;
  for (const entry of entries) {
    const match = /Received response 'textDocument\/inlineCompletion - \(\d+\)' in \d+ms\.\s*Result: ([\s\S]*)$/.exec(entry);
    if (!match) {
      continue;
    }
    const result = JSON.parse(match[1]);
    const items = Array.isArray(result) ? result : result?.items;
    if (items?.length) {
      last = items[0];
    }
  }
  return last;
}

/** Waits for ghost text, and for it to show the first line of the server's last answer; returns that answer. */
async function ghostText(): Promise<Suggestion> {
  const page = editor.page;
  await page.locator(".ghost-text-decoration").first().waitFor({ timeout: 60_000 });
  let shown = "";
  return until(10_000, `the ghost text (${JSON.stringify(shown)}) to match the server's answer`, async () => {
    shown = (await page.locator(".ghost-text-decoration").allTextContents()).join("").replace(/\u00a0/g, " ");
    const suggestion = lastSuggestion();
    return suggestion && shown.length > 0 && shown === suggestion.insertText.split("\n")[0] ? suggestion : undefined;
  });
}

/** Finds the mistral-lsp processes started under code-server (this test's only), by their command line. */
function serverPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] === binary && editor.owns(Number(pid));
      } catch {
        return false;
      }
    })
    .map(Number);
}

test("the status bar shows ready once the model has loaded", async () => {
  await status("mistral-lsp: ready").waitFor({ timeout: 120_000 });
});

test("typing shows the server's suggestion as ghost text, and Tab accepts it", async () => {
  const page = editor.page;
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "add.py" }).dblclick();
  const lines = page.locator(".monaco-editor .view-lines").first();
  await lines.waitFor();
  await lines.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(typed, { delay: 40 });

  const suggestion = await ghostText();
  assert.match(suggestion.insertText, /^a \+ b/, "the model's greedy suggestion, shown as ghost text");

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const screenshot = path.join(ARTIFACTS, "ghost-text.png");
  await page.screenshot({ path: screenshot });
  if (process.env.MISTRAL_LSP_UPDATE_SCREENSHOT === "1") {
    fs.copyFileSync(screenshot, README_IMAGE);
  }

  await page.keyboard.press("Tab");
  await page.locator(".ghost-text-decoration").first().waitFor({ state: "detached", timeout: 10_000 });
  await page.keyboard.press("Control+S");
  const file = path.join(editor.workspace, "add.py");
  const expected = prefix + typed + suggestion.insertText;
  const saved = await until(10_000, "the file to be saved", () => {
    const text = fs.readFileSync(file, "utf8");
    return text !== prefix ? text : undefined;
  });
  assert.equal(saved, expected, "the saved file is what was typed plus the accepted suggestion");
});

test("VS Code's accept-word key takes the first word of the suggestion", async () => {
  const page = editor.page;
  const file = path.join(editor.workspace, "add.py");
  const before = fs.readFileSync(file, "utf8");
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");
  await page.keyboard.type('def sub(a, b):\n    """Return a minus b."""\n    return ', { delay: 20 });
  const suggestion = await ghostText();
  await page.keyboard.press("Control+ArrowRight");
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+S");
  const saved = await until(10_000, "the file to be saved", () => {
    const text = fs.readFileSync(file, "utf8");
    return text !== before ? text : undefined;
  });
  const accepted = saved.slice(saved.lastIndexOf("return ") + "return ".length);
  assert.ok(accepted.length > 0 && accepted.trim().length > 0, `accepted ${JSON.stringify(accepted)}`);
  assert.ok(suggestion.insertText.startsWith(accepted), `${JSON.stringify(accepted)} starts ${JSON.stringify(suggestion.insertText)}`);
  assert.ok(accepted.length < suggestion.insertText.trimEnd().length, "one word, not the whole suggestion");
});

/** The params of every `mistral-lsp/cursor` notification sent so far, from the client's trace in the log. */
function cursorReports(): { textDocument: { uri: string }; position: { line: number; character: number } }[] {
  const entries = editor.extensionLog().split(/^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[)/m);
  return entries.flatMap((entry) => {
    const match = /Sending notification 'mistral-lsp\/cursor'\.\s*Params: ([\s\S]*)$/.exec(entry);
    return match ? [JSON.parse(match[1])] : [];
  });
}

test("the extension tells the server where the cursor rests, once", async () => {
  const page = editor.page;
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+Home");
  const atStart = (r: ReturnType<typeof cursorReports>[number]) =>
    r.textDocument.uri.endsWith("/add.py") && r.position.line === 0 && r.position.character === 0;
  await until(10_000, "a mistral-lsp/cursor notification for the file's start", () => cursorReports().some(atStart));
  const sent = cursorReports().length;
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press("ArrowRight");
  }
  const rested = (r: ReturnType<typeof cursorReports>[number]) => r.position.line === 0 && r.position.character === 5;
  await until(10_000, "the report of where the cursor rests", () => cursorReports().slice(sent).some(rested));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const reports = cursorReports().slice(sent);
  assert.ok(reports.length < 5, `quick moves are not reported one by one: ${JSON.stringify(reports)}`);
  assert.ok(rested(reports[reports.length - 1]), `the last report is where the cursor rests: ${JSON.stringify(reports)}`);
});

test("no error or warning notification showed up during normal use", async () => {
  const toasts = await editor.page.locator(".notification-toast").allTextContents();
  assert.deepEqual(toasts.filter((text) => /mistral-lsp/i.test(text)), []);
});

test("the status bar menu switches inline completions off and on, and shows the log", async () => {
  const page = editor.page;
  const choose = async (label: string) => {
    await status("mistral-lsp: ready").click();
    await page.locator(".quick-input-list .monaco-list-row", { hasText: label }).click();
  };
  // The saved user setting; undefined while VS Code is still writing the file.
  const enabledSetting = () => {
    try {
      return JSON.parse(fs.readFileSync(editor.settingsFile, "utf8"))["mistralLsp.completion.enabled"] as boolean;
    } catch {
      return undefined;
    }
  };
  const sent = () => editor.extensionLog().split("Sending notification 'workspace/didChangeConfiguration'").length - 1;
  const before = sent();

  await choose("Disable Inline Completions");
  await status("mistral-lsp: ready (completions off)").waitFor({ timeout: 10_000 });
  await until(10_000, "the setting to be saved", () => (enabledSetting() === false ? true : undefined));
  await until(10_000, "didChangeConfiguration to reach the server", () => (sent() > before ? true : undefined));
  assert.match(editor.extensionLog(), /"enabled": false/);

  await choose("Enable Inline Completions");
  await until(10_000, "the setting to be saved", () => (enabledSetting() === true ? true : undefined));
  await page.locator(".statusbar-item", { hasText: /mistral-lsp: ready$/ }).waitFor({ timeout: 10_000 });

  await choose("Show Log");
  await page.locator(".part.panel .view-lines", { hasText: /\S/ }).first().waitFor();
  const channel = await page
    .locator(".part.panel select")
    .first()
    .evaluate((select: HTMLSelectElement) => select.options[select.selectedIndex]?.text);
  assert.equal(channel, "mistral-lsp");
});

test("the server exiting mid-session is restarted, at most three times in a row", async () => {
  for (let crash = 1; crash <= 3; crash++) {
    await status("mistral-lsp: ready").waitFor({ timeout: 60_000 });
    const pids = await until(10_000, "the server process", () => (serverPids().length === 1 ? serverPids() : undefined));
    process.kill(pids[0], "SIGKILL");
    await toast(`restarting it (${crash} of 3`).waitFor({ timeout: 20_000 });
  }
  await status("mistral-lsp: ready").waitFor({ timeout: 60_000 });
  process.kill(serverPids()[0], "SIGKILL");
  const stopped = toast("will not be restarted automatically");
  await stopped.waitFor({ timeout: 20_000 });
  await status("mistral-lsp: stopped").waitFor({ timeout: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  assert.deepEqual(serverPids(), [], "no restart after the fourth exit");

  await stopped.getByRole("button", { name: "Restart" }).click();
  await status("mistral-lsp: ready").waitFor({ timeout: 60_000 });
  assert.equal(serverPids().length, 1);
});

test("a server path that does not exist: a clear message with a button to the install instructions", async () => {
  await editor.changeSettings({ ...settings, "mistralLsp.server.path": "/nonexistent/mistral-lsp" });
  const message = toast("/nonexistent/mistral-lsp");
  await message.waitFor({ timeout: 30_000 });
  assert.match((await message.textContent()) ?? "", /not an executable file/);
  await status("mistral-lsp: stopped").waitFor({ timeout: 10_000 });
  await message.getByRole("button", { name: "Install Instructions" }).click();
  await editor.page.locator(".tab", { hasText: "Preview README.md" }).waitFor({ timeout: 20_000 });
});

test("a server that exits at start: one message with a restart button, no restart loop", async () => {
  await editor.changeSettings({ ...settings, "mistralLsp.server.path": "/bin/false" });
  const message = toast("exited while starting");
  await message.waitFor({ timeout: 30_000 });
  await message.getByRole("button", { name: "Restart" }).waitFor();
  await status("mistral-lsp: stopped").waitFor({ timeout: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const starts = editor.extensionLog().split("\n").filter((line) => line.includes("Starting /bin/false"));
  assert.equal(starts.length, 1, "started once, not in a loop");
  const noise = await editor.page
    .locator(".notification-toast", { hasText: /couldn.t create connection|connection to server is erroring|Restarting server failed/ })
    .count();
  assert.equal(noise, 0, "the client's own error popups are logged only");

  await editor.changeSettings(settings);
  await status("mistral-lsp: ready").waitFor({ timeout: 60_000 });
});

// Review and explain against the server's test backend (a test build of the server: cargo test
// builds target/debug/mistral-lsp): it finds one "bug" on the first line holding the word `bug`
// (its fix puts `fixed` there) and streams a checksum of the prompt as its explanation, so what
// the editor shows can be checked exactly.
const clamp = "def clamp(x, low, high):\n    if x < low:\n        return low\n    return x  # bug: high is never used";

/** The `result` of the last `workspace/executeCommand` response that has `key`, from the client's trace in the log. */
function lastCommandResult(key: string): Record<string, unknown> | undefined {
  const entries = editor.extensionLog().split(/^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[)/m);
  let last;
  for (const entry of entries) {
    const match = /Received response 'workspace\/executeCommand - \(\d+\)' in \d+ms\.\s*Result: ([\s\S]*)$/.exec(entry);
    const result = match ? JSON.parse(match[1]) : undefined;
    if (result && key in result) {
      last = result;
    }
  }
  return last;
}

test("mistral-lsp: Review shows the finding as a squiggle on its line, and its quick fix applies", async () => {
  const page = editor.page;
  const file = path.join(editor.workspace, "clamp.py");
  fs.writeFileSync(file, clamp);
  await editor.changeSettings({ ...settings, "mistralLsp.model": "test:checksum?tokens=8&token_ms=100" });
  await status("mistral-lsp: ready").waitFor({ timeout: 60_000 });
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "clamp.py" }).dblclick();
  await page.locator(".tab.active", { hasText: "clamp.py" }).waitFor();
  // clamp.py's own editor: an earlier editor's lines (settings.json's) can sit beneath it in the DOM.
  await page.locator('.editor-instance[aria-label^="clamp.py"] .view-lines').click();

  await editor.runCommand("mistral-lsp: Review", toast("mistral-lsp review: 1 finding"));
  const squiggle = page.locator(".monaco-editor .squiggly-warning");
  await squiggle.first().waitFor({ timeout: 10_000 });
  const lineOf = async (locator: Locator) => {
    const top = (await locator.boundingBox())?.y ?? -1;
    const rows = await page.locator(".monaco-editor .view-line").evaluateAll((nodes) =>
      nodes.map((node) => ({ top: node.getBoundingClientRect().top, text: node.textContent ?? "" })),
    );
    return rows.find((row) => Math.abs(row.top - top) < 12)?.text.replace(/\u00a0/g, " ");
  };
  assert.equal(await squiggle.count(), 1, "one finding");
  assert.equal(await lineOf(squiggle.first()), "    return x  # bug: high is never used", "on the line that holds `bug`");

  await page.keyboard.press("Control+End");
  await page.keyboard.press("Control+.");
  // The quick fix comes first and has the focus (a click is intercepted by the menu's pointer block).
  await page.locator(".action-widget .monaco-list-row.focused", { hasText: "Fix:" }).waitFor();
  await page.keyboard.press("Enter");
  await squiggle.first().waitFor({ state: "detached", timeout: 10_000 });
  await page.keyboard.press("Control+S");
  // Not while the save is half done (the file truncated, not yet written).
  const saved = await until(10_000, "the fixed file to be saved", () => {
    const text = fs.readFileSync(file, "utf8");
    return text !== clamp && text.endsWith("never used") ? text : undefined;
  });
  assert.equal(saved, clamp.replace("# bug:", "# fixed:"), "the fix replaced that line and nothing else");
});

test("mistral-lsp: Explain streams into the side panel, which ends with the server's answer", async () => {
  const page = editor.page;
  await page.keyboard.press("Control+Home");
  const streamed = () => editor.extensionLog().split("Received notification 'mistral-lsp/explanation'").length - 1;
  const before = streamed();
  await editor.runCommand("mistral-lsp: Explain", page.locator(".tab", { hasText: "Explanation: clamp.py" }));
  const result = await until(30_000, "the explanation's result", () => lastCommandResult("markdown"));
  const markdown = String(result.markdown).trim();
  assert.match(markdown, /\S/, "an explanation");
  // Each webview (the README preview of an earlier test too) is an iframe holding the page's own iframe.
  const webviews = page.locator("iframe.webview");
  await until(10_000, "a panel to show the whole explanation", async () => {
    for (let i = 0; i < (await webviews.count()); i++) {
      const body = webviews.nth(i).contentFrame().locator("iframe#active-frame").contentFrame().locator("body");
      const shown = (await body.textContent({ timeout: 2_000 }).catch(() => ""))?.replace(/\s+/g, " ") ?? "";
      if (shown.includes(markdown.replace(/\s+/g, " "))) {
        return true;
      }
    }
    return undefined;
  });
  assert.ok(streamed() - before >= 2, "the text arrived in pieces before the result");
});

/** The body of the explanation panel's page (each webview is an iframe holding the page's own iframe), once one shows `selector`. */
async function panelWith(selector: string): Promise<Locator> {
  return until(20_000, `the explanation panel to show ${selector}`, async () => {
    const webviews = editor.page.locator("iframe.webview");
    for (let i = 0; i < (await webviews.count()); i++) {
      const body = webviews.nth(i).contentFrame().locator("iframe#active-frame").contentFrame().locator("body");
      if (await body.locator(selector).isVisible().catch(() => false)) {
        return body;
      }
    }
    return undefined;
  });
}

test("mistral-lsp: Stop in the explanation panel cancels the request, and the server streams no more", async () => {
  const page = editor.page;
  // 20 pieces a second apart: the explanation is still streaming when Stop is pressed.
  await editor.changeSettings({ ...settings, "mistralLsp.model": "test:checksum?tokens=20&token_ms=1000" });
  await status("mistral-lsp: ready").waitFor({ timeout: 60_000 });
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "clamp.py" }).dblclick();
  await page.locator('.editor-instance[aria-label^="clamp.py"] .view-lines').click();
  const log = () => editor.extensionLog();
  const streamed = () => log().split("Received notification 'mistral-lsp/explanation'").length - 1;
  const cancels = () => log().split("Sending notification '$/cancelRequest'").length - 1;
  const [notesBefore, cancelsBefore] = [streamed(), cancels()];
  await editor.runCommand("mistral-lsp: Explain", page.locator(".tab", { hasText: "Explanation: clamp.py" }));
  await until(20_000, "a first piece of the explanation", () => (streamed() > notesBefore ? true : undefined));

  const body = await panelWith("#stop");
  // The mouse leaves the tab it clicked, whose path tooltip can cover the panel.
  const code = await page.locator('.editor-instance[aria-label^="clamp.py"] .editor-scrollable').boundingBox();
  assert.ok(code, "clamp.py's editor on screen");
  await page.mouse.move(code.x + code.width / 2, code.y + code.height / 2);
  await page.locator(".context-view .hover-contents").waitFor({ state: "hidden", timeout: 10_000 });
  await body.locator("#stop").click();
  await (await panelWith("#text:has-text('Stopped.')")).locator("#stop").waitFor({ state: "hidden" });
  await until(10_000, "the client to send $/cancelRequest", () => (cancels() > cancelsBefore ? true : undefined));
  // Whatever was on its way settles; then nothing more comes (a job that ran on would send a piece a second).
  let settled = streamed();
  await until(10_000, "the notifications to settle", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const now = streamed();
    const stable = now === settled;
    settled = now;
    return stable ? true : undefined;
  });
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  assert.equal(streamed(), settled, "no explanation notifications after the cancellation");
  assert.ok(settled - notesBefore < 20, `the job stopped before its end (${settled - notesBefore} notifications)`);
  assert.doesNotMatch(log().slice(log().lastIndexOf("Sending notification '$/cancelRequest'")), /"done": ?true/,
    "the cancelled explanation never finished");
});
