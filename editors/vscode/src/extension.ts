// The VS Code extension: runs mistral-lsp through vscode-languageclient, with a status bar item, commands and settings handling.
import * as readline from "node:readline";
import * as vscode from "vscode";
import {
  CloseAction,
  CloseHandlerResult,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  State,
  TransportKind,
} from "vscode-languageclient/node";

import { CURSOR_NOTIFICATION, CursorReporter } from "./cursor";
import { ExplanationPanel } from "./explainPanel";
import { EXPLAIN_COMMAND, EXPLANATION_NOTIFICATION, parseExplanation } from "./explanation";

/** The server's review command: findings come back as diagnostics. */
const REVIEW_COMMAND = "mistral-lsp.review";
import { RestartBudget } from "./restarts";
import { parseLogLine } from "./serverLog";
import { resolveServer } from "./serverPath";
import { SECTION, changeAction, serverKeys, serverSettings } from "./settings";
import { ServerStatus, parseStatus, statusView } from "./status";

let extension: MistralLsp | undefined;

/** The extension tells the user about failures itself, once and with a restart button: the client only logs them. */
class Client extends LanguageClient {
  override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    super.error(message, data, showNotification === "force" ? false : showNotification);
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extension = new MistralLsp(context);
  await extension.restart();
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
}

class MistralLsp {
  private client: LanguageClient | undefined;
  /** Whether the client reached Running since it last started; false during start and after an exit. */
  private running = false;
  /** Whether `start` awaits the client's first start, whose failure it reports itself... */
  private starting = false;
  /** ...and the client whose first start failed and was reported. */
  private failedStart: LanguageClient | undefined;
  private status: ServerStatus = { state: "stopped", message: "", percent: null };
  private readonly budget = new RestartBudget();
  /** Restarts run one after the other, so that two quick settings changes cannot leave two servers. */
  private restarts: Promise<void> = Promise.resolve();
  private readonly keys: string[];
  private readonly log = vscode.window.createOutputChannel("mistral-lsp", { log: true });
  private readonly item = vscode.window.createStatusBarItem("mistralLsp.status", vscode.StatusBarAlignment.Right, 100);
  /** Tells the server where the cursor rests, so that it pre-reads the next completion's prompt. */
  private readonly cursor = new CursorReporter((params) => {
    void this.client?.sendNotification(CURSOR_NOTIFICATION, params).catch(() => undefined);
  });

  /** "Explain this code": the side panel the explanation streams into. */
  private readonly explanation = new ExplanationPanel();

  constructor(private readonly context: vscode.ExtensionContext) {
    this.keys = serverKeys(context.extension.packageJSON.contributes.configuration.properties);
    this.item.name = "mistral-lsp";
    this.item.command = "mistralLsp.showMenu";
    this.render();
    this.item.show();
    context.subscriptions.push(
      this.log,
      this.item,
      vscode.commands.registerCommand("mistralLsp.restart", () => this.restart()),
      vscode.commands.registerCommand("mistralLsp.showLog", () => this.log.show()),
      vscode.commands.registerCommand("mistralLsp.toggleCompletions", () => this.toggleCompletions()),
      vscode.commands.registerCommand("mistralLsp.showMenu", () => this.showMenu()),
      vscode.commands.registerCommand("mistralLsp.explain", () => this.explainSelection()),
      vscode.commands.registerCommand("mistralLsp.review", () => this.review()),
      this.explanation,
      vscode.workspace.onDidChangeConfiguration((event) => this.onSettingsChanged(event)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.cursorMoved(event.textEditor)),
      vscode.window.onDidChangeActiveTextEditor((editor) => editor && this.cursorMoved(editor)),
    );
  }

  /** A fresh server process with the current settings; also the way out after automatic restarts stopped. */
  restart(): Promise<void> {
    const next = async () => {
      this.budget.reset();
      await this.stop();
      await this.start();
    };
    this.restarts = this.restarts.then(next, next);
    return this.restarts;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.dispose(5000).catch((error) => this.log.warn(`Stopping the server failed: ${error}`));
  }

  /** Finds the binary and starts the server; failures end as a message, never as an exception. */
  private async start(): Promise<void> {
    const found = resolveServer(vscode.workspace.getConfiguration(SECTION).get<string | null>("server.path"));
    if ("error" in found) {
      this.log.error(found.error);
      this.setStatus({ state: "stopped", message: found.error, percent: null });
      void this.reportMissingServer(found.error);
      return;
    }
    this.log.info(`Starting ${found.path}`);
    const client = new Client(
      SECTION,
      "mistral-lsp",
      { command: found.path, transport: TransportKind.stdio },
      this.clientOptions(),
    );
    this.client = client;
    this.running = false;
    this.cursor.reset();
    client.onDidChangeState(({ newState }) => {
      if (newState === State.Running) {
        this.running = true;
      }
    });
    client.onNotification("mistral-lsp/status", (params: unknown) => this.setStatus(parseStatus(params)));
    client.onNotification(EXPLANATION_NOTIFICATION, (params: unknown) => {
      const parsed = parseExplanation(params);
      if (parsed) {
        this.explanation.update(parsed);
      }
    });
    this.setStatus({ state: "starting", message: `Starting ${found.path}`, percent: null });
    try {
      this.starting = true;
      await client.start();
    } catch (error) {
      if (this.client === client) {
        this.failedStart = client;
        const reason = error instanceof Error ? error.message : String(error);
        const message = `mistral-lsp exited while starting (${reason}). Its error output is in the log.`;
        this.setStatus({ state: "stopped", message, percent: null });
        void this.offerRestart(message);
      }
      return;
    } finally {
      this.starting = false;
    }
    // Catch up with a state change the server reported before the handler above was attached.
    const answer = await client
      .sendRequest(ExecuteCommandRequest.type, { command: "mistral-lsp.status", arguments: [] })
      .catch(() => undefined);
    if (this.client === client) {
      this.setStatus(parseStatus(answer));
    }
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      stdioOptions: {
        stdout: (input, log) => readline.createInterface({ input }).on("line", (line) => log.info(line)),
        stderr: (input, log) =>
          readline.createInterface({ input }).on("line", (line) => {
            const { level, message } = parseLogLine(line);
            log[level](message);
          }),
      },
      // A function, so that automatic restarts read the settings of their time.
      initializationOptions: () => this.serverSettings(),
      // Failures are logged only: onClosed and start tell the user once, with a way out.
      initializationFailedHandler: (error) => {
        this.log.error(`initialize failed: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      },
      errorHandler: {
        error: (_error, _message, count) => ({
          action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
          handled: true,
        }),
        closed: () => this.onClosed(),
      },
      middleware: {
        // The code action's command streams into the panel, which can stop it.
        executeCommand: (command, args, next) =>
          command === EXPLAIN_COMMAND ? this.explain(args[0]) : next(command, args),
        workspace: {
          // Answer for our section with the server's keys only: the client-only ones would be unknown keys to it.
          configuration: async (params, token, next) => {
            const values = await next(params, token);
            if (!Array.isArray(values)) {
              return values;
            }
            return params.items.map((item, index) => (item.section === SECTION ? this.serverSettings() : values[index]));
          },
        },
      },
    };
  }

  /** "mistral-lsp: Explain": the selection, or the function around the cursor, of the active editor. */
  private async explainSelection(): Promise<void> {
    const target = this.activeTarget();
    if (target) {
      await this.explain({ uri: target.uri, range: target.selection });
    }
  }

  /** The active editor's document and selection in the server's terms, or a warning when there is none. */
  private activeTarget(): { client: LanguageClient; uri: string; selection: unknown; empty: boolean } | undefined {
    const editor = vscode.window.activeTextEditor;
    const client = this.client;
    if (!editor || !client || !this.running) {
      void vscode.window.showWarningMessage("mistral-lsp: open a file that the server handles first.");
      return undefined;
    }
    const converter = client.code2ProtocolConverter;
    const uri = converter.asUri(editor.document.uri);
    return { client, uri, selection: converter.asRange(editor.selection), empty: editor.selection.isEmpty };
  }

  /**
   * "mistral-lsp: Review": the selection, or the whole file, of the active editor. The findings
   * arrive as diagnostics (with quick fixes) through the language client; this only reports progress.
   */
  private async review(): Promise<void> {
    const target = this.activeTarget();
    if (!target) {
      return;
    }
    const client = target.client;
    const argument: { uri: string; range?: unknown } = { uri: target.uri };
    if (!target.empty) {
      argument.range = target.selection;
    }
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "mistral-lsp: reviewing", cancellable: true },
      async (_progress, token) => {
        try {
          const result = (await client.sendRequest(
            ExecuteCommandRequest.type,
            { command: REVIEW_COMMAND, arguments: [argument] },
            token,
          )) as { findings: number };
          const found = result.findings === 1 ? "1 finding" : `${result.findings} findings`;
          void vscode.window.showInformationMessage(`mistral-lsp review: ${found} (in the Problems panel).`);
        } catch (error) {
          if (!token.isCancellationRequested) {
            void vscode.window.showErrorMessage(`mistral-lsp review: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
      },
    );
  }

  /** Runs `mistral-lsp.explain` for `{uri, range}` and shows it in the panel; errors end up there too. */
  private async explain(argument: { uri: string; range: unknown }): Promise<void> {
    const client = this.client;
    if (!client) {
      return;
    }
    const name = argument.uri.split("/").pop() ?? argument.uri;
    const token = this.explanation.start(argument.uri, `Explanation: ${decodeURIComponent(name)}`);
    try {
      const result = await client.sendRequest(
        ExecuteCommandRequest.type,
        { command: EXPLAIN_COMMAND, arguments: [argument] },
        token,
      );
      this.explanation.finish((result as { markdown: string }).markdown);
    } catch (error) {
      this.explanation.fail(token.isCancellationRequested ? "Stopped." : error instanceof Error ? error.message : String(error));
    }
  }

  /** The cursor of a document the server has (as the document selector says), once the server runs. */
  private cursorMoved(editor: vscode.TextEditor): void {
    const client = this.client;
    const scheme = editor.document.uri.scheme;
    if (!client?.isRunning() || (scheme !== "file" && scheme !== "untitled")) {
      return;
    }
    const { line, character } = editor.selection.active;
    this.cursor.moved({ textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) }, position: { line, character } });
  }

  private serverSettings(): Record<string, unknown> {
    const config = vscode.workspace.getConfiguration(SECTION);
    return serverSettings(this.keys, (key) => config.get(key));
  }

  /** The server process ended without being asked to: restart it a few times, then stop and ask. */
  private onClosed(): CloseHandlerResult {
    const wasRunning = this.running;
    this.running = false;
    if (!wasRunning) {
      // A first start that fails is reported by `start`; an automatic restart that fails, here.
      const message = "mistral-lsp exited while starting. Its error output is in the log.";
      if (!this.starting && this.failedStart !== this.client) {
        this.setStatus({ state: "stopped", message, percent: null });
        void this.offerRestart(message);
      }
      return { action: CloseAction.DoNotRestart, message, handled: true };
    }
    if (this.budget.crashed()) {
      const message = `mistral-lsp exited unexpectedly; restarting it (${this.budget.recent} of ${this.budget.max} automatic restarts).`;
      this.setStatus({ state: "starting", message, percent: null });
      void vscode.window.showWarningMessage(message, "Show Log").then((choice) => choice && this.log.show());
      return { action: CloseAction.Restart, message, handled: true };
    }
    const message =
      `mistral-lsp exited ${this.budget.recent} times within ${this.budget.windowMs / 60000} minutes ` +
      `and will not be restarted automatically.`;
    this.setStatus({ state: "stopped", message, percent: null });
    void this.offerRestart(message);
    return { action: CloseAction.DoNotRestart, message, handled: true };
  }

  private onSettingsChanged(event: vscode.ConfigurationChangeEvent): void {
    if (event.affectsConfiguration(`${SECTION}.completion.enabled`)) {
      this.render();
    }
    const action = changeAction(this.keys, (setting) => event.affectsConfiguration(setting));
    if (action === "restart") {
      this.log.info("Model or server settings changed: restarting the server");
      void this.restart();
    } else if (action === "notify" && this.client?.isRunning()) {
      void this.client.sendNotification("workspace/didChangeConfiguration", {
        settings: { [SECTION]: this.serverSettings() },
      });
    }
  }

  private async toggleCompletions(): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION);
    await config.update("completion.enabled", !config.get<boolean>("completion.enabled", true), vscode.ConfigurationTarget.Global);
  }

  private async toggleLanguage(languageId: string): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION);
    const disabled = config.get<string[]>("completion.disabledLanguages", []);
    const next = disabled.includes(languageId) ? disabled.filter((id) => id !== languageId) : [...disabled, languageId];
    await config.update("completion.disabledLanguages", next, vscode.ConfigurationTarget.Global);
  }

  private async showMenu(): Promise<void> {
    const config = vscode.workspace.getConfiguration(SECTION);
    const enabled = config.get<boolean>("completion.enabled", true);
    const languageId = vscode.window.activeTextEditor?.document.languageId;
    const disabledHere = languageId !== undefined && config.get<string[]>("completion.disabledLanguages", []).includes(languageId);
    const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
      { label: "$(debug-restart) Restart Server", run: () => this.restart() },
      {
        label: enabled ? "$(circle-slash) Disable Inline Completions" : "$(check) Enable Inline Completions",
        run: () => this.toggleCompletions(),
      },
    ];
    if (languageId) {
      items.push({
        label: disabledHere ? `$(check) Enable for ${languageId}` : `$(circle-slash) Disable for ${languageId}`,
        run: () => this.toggleLanguage(languageId),
      });
    }
    items.push({ label: "$(output) Show Log", run: () => this.log.show() });
    const choice = await vscode.window.showQuickPick(items, {
      title: `mistral-lsp: ${this.status.state}`,
      placeHolder: this.status.message || undefined,
    });
    await choice?.run();
  }

  private setStatus(status: ServerStatus | undefined): void {
    if (status) {
      this.status = status;
      this.render();
    }
  }

  private render(): void {
    const enabled = vscode.workspace.getConfiguration(SECTION).get<boolean>("completion.enabled", true);
    const view = statusView(this.status, enabled);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.isError ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }

  private async offerRestart(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, "Restart", "Show Log");
    if (choice === "Restart") {
      await this.restart();
    } else if (choice === "Show Log") {
      this.log.show();
    }
  }

  private async reportMissingServer(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, "Install Instructions", "Open Settings");
    if (choice === "Install Instructions") {
      const readme = vscode.Uri.joinPath(this.context.extensionUri, "README.md");
      await vscode.commands.executeCommand("markdown.showPreview", readme);
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.server.path`);
    }
  }
}
