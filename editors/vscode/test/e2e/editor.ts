// End-to-end helper: a throwaway code-server with the packaged extension, and Chromium driving it through playwright-core.
import { ChildProcess, execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { Browser, BrowserServer, chromium, Locator, Page } from "playwright-core";

const run = promisify(execFile);

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the end-to-end test through test/run`);
  }
  return value;
}

/** Polls `check` every 100 ms until it returns a value other than undefined, for at most `ms`. */
export async function until<T>(ms: number, what: string, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Stops a process group (started detached, so its id is the group id) and waits for its leader. */
async function stopGroup(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // The group is gone already.
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), 5_000);
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  clearTimeout(timer);
  signal("SIGKILL");
}

export class Editor {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "mistral-lsp-vscode-e2e-"));
  readonly workspace = path.join(this.root, "workspace");
  readonly userData = path.join(this.root, "user-data");
  readonly extensions = path.join(this.root, "extensions");
  readonly settingsFile = path.join(this.userData, "User", "settings.json");
  private readonly env: NodeJS.ProcessEnv;
  private codeServer: ChildProcess | undefined;
  private browserServer: BrowserServer | undefined;
  private browser: Browser | undefined;
  private output = "";
  page!: Page;
  url = "";

  constructor() {
    const xdg = path.join(this.root, "xdg");
    this.env = {
      ...process.env,
      XDG_CONFIG_HOME: path.join(xdg, "config"),
      XDG_DATA_HOME: path.join(xdg, "data"),
      XDG_CACHE_HOME: path.join(xdg, "cache"),
      XDG_STATE_HOME: path.join(xdg, "state"),
      XDG_RUNTIME_DIR: path.join(xdg, "runtime"),
    };
    for (const dir of [this.workspace, this.extensions, path.dirname(this.settingsFile), ...Object.values(this.env).filter((v) => v?.startsWith(xdg))]) {
      fs.mkdirSync(dir!, { recursive: true, mode: 0o700 });
    }
  }

  /** Writes the user settings file before code-server starts. */
  writeSettings(settings: Record<string, unknown>): void {
    fs.writeFileSync(this.settingsFile, JSON.stringify(settings, null, 2));
  }

  /**
   * Replaces the user settings while the editor runs, as a user would: in the settings.json editor.
   * (code-server notices a settings file written behind its back, but does not reload it.)
   */
  async changeSettings(settings: Record<string, unknown>): Promise<void> {
    const page = this.page;
    await this.runCommand("Preferences: Open User Settings (JSON)", page.locator(".tab.active", { hasText: "settings.json" }));
    // settings.json's own editor (other editors' lines can sit beneath it in the DOM), in its visible
    // area: its lines scroll sideways past the margin once they are long.
    await page.locator('.editor-instance[aria-label^="settings.json"] .editor-scrollable').click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    await page.keyboard.insertText(JSON.stringify(settings));
    // Whatever the editor added (a closing bracket or quote) goes.
    await page.keyboard.press("Shift+Control+End");
    await page.keyboard.press("Delete");
    await page.keyboard.press("Control+S");
    await until(10_000, "the settings to be saved", () => {
      try {
        return JSON.stringify(JSON.parse(fs.readFileSync(this.settingsFile, "utf8"))) === JSON.stringify(settings) ? true : undefined;
      } catch {
        return undefined;
      }
    });
  }

  /**
   * Runs a command from the command palette by its label, as a user would, until `shown` (what the
   * command brings up) appears. Retried: a webview that finishes loading (the README preview) can
   * take the focus and close the palette.
   */
  async runCommand(label: string, shown: Locator): Promise<void> {
    const page = this.page;
    const palette = page.locator(".quick-input-widget input");
    await until(40_000, `the command ${label}`, async () => {
      try {
        // A click on the active tab takes the keyboard back from a webview.
        await page.locator(".tabs-container .tab.active").first().click({ timeout: 5_000 });
        await page.keyboard.press("F1");
        await palette.fill(`>${label}`, { timeout: 3_000 });
        const command = page.locator(".quick-input-list .monaco-list-row", { hasText: label });
        await command.first().waitFor({ timeout: 3_000 });
        await page.keyboard.press("Enter");
        await shown.first().waitFor({ timeout: 5_000 });
        return true;
      } catch {
        await page.keyboard.press("Escape");
        return undefined;
      }
    });
  }

  /** Installs the packaged extension into the fresh extensions folder. */
  async install(vsix = required("MISTRAL_LSP_VSIX")): Promise<void> {
    const { stdout, stderr } = await run(
      required("MISTRAL_LSP_CODE_SERVER"),
      ["--install-extension", vsix, "--extensions-dir", this.extensions, "--user-data-dir", this.userData],
      { env: this.env, timeout: 120_000 },
    );
    if (!/successfully installed/i.test(stdout + stderr)) {
      throw new Error(`installing ${vsix} failed:\n${stdout}\n${stderr}`);
    }
  }

  /** Starts code-server on a free local port and Chromium, and opens the workspace. */
  async open(): Promise<void> {
    const port = await freePort();
    this.codeServer = spawn(
      required("MISTRAL_LSP_CODE_SERVER"),
      [
        ...["--auth", "none", "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust"],
        // Trace level makes the extension's log record the client's trace of every LSP message.
        ...["--log", "trace", "--bind-addr", `127.0.0.1:${port}`],
        ...["--user-data-dir", this.userData, "--extensions-dir", this.extensions, this.workspace],
      ],
      { env: this.env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    this.recordPid(this.codeServer.pid);
    this.codeServer.stdout!.on("data", (chunk) => (this.output += chunk));
    this.codeServer.stderr!.on("data", (chunk) => (this.output += chunk));
    this.url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(this.workspace)}`;
    await until(60_000, "code-server to listen", async () => {
      const alive = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      return alive ? true : undefined;
    });

    this.browserServer = await chromium.launchServer({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      env: this.env,
      timeout: 60_000,
    });
    this.recordPid(this.browserServer.process().pid);
    this.browser = await chromium.connect(this.browserServer.wsEndpoint(), { timeout: 30_000 });
    this.page = await this.browser.newPage({ viewport: { width: 1024, height: 576 } });
    this.page.setDefaultTimeout(30_000);
    await this.page.goto(this.url, { timeout: 60_000 });
    await this.page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  }

  /** Whether `pid` runs under this code-server (its process tree). */
  owns(pid: number): boolean {
    for (let current = pid; current > 1; ) {
      if (current === this.codeServer?.pid) {
        return true;
      }
      const stat = fs.readFileSync(`/proc/${current}/stat`, "utf8");
      current = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    }
    return false;
  }

  /** code-server's own output, for failure messages. */
  get serverOutput(): string {
    return this.output;
  }

  /** The extension's log (the "mistral-lsp" output channel), read from code-server's logs folder. */
  extensionLog(): string {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          walk(full);
        } else if (entry.name === "mistral-lsp.log") {
          files.push(full);
        }
      }
    };
    const logs = path.join(this.userData, "logs");
    if (fs.existsSync(logs)) {
      walk(logs);
    }
    return files.map((file) => fs.readFileSync(file, "utf8")).join("\n");
  }

  /** Stops Chromium and code-server (with its extension host and the server) by their process ids. */
  async close(): Promise<void> {
    const browserProcess = this.browserServer?.process();
    await Promise.race([this.browserServer?.close(), new Promise((resolve) => setTimeout(resolve, 10_000))]).catch(() => undefined);
    await stopGroup(browserProcess);
    await stopGroup(this.codeServer);
    // Stopped: test/run has nothing left to clean up.
    if (process.env.MISTRAL_LSP_E2E_PIDS) {
      fs.rmSync(process.env.MISTRAL_LSP_E2E_PIDS, { force: true });
    }
  }

  removeFiles(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  private recordPid(pid: number | undefined): void {
    const file = process.env.MISTRAL_LSP_E2E_PIDS;
    if (pid && file) {
      fs.appendFileSync(file, `${pid}\n`);
    }
  }
}
