// Test helper: runs the real mistral-lsp binary over stdio with vscode-languageserver-protocol, answering its requests like the extension does.
import { ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  ConfigurationRequest,
  createProtocolConnection,
  InitializeRequest,
  ProtocolConnection,
  ShowMessageParams,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgressCreateRequest,
} from "vscode-languageserver-protocol/node";

import { serverBinary } from "../../scripts/settingsSchema";

/** The folder of the small test models (see scripts/fetch-test-models in the repository). */
export function testModel(file = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"): string {
  const folder =
    process.env.MISTRAL_LSP_TEST_MODELS ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "mistral-lsp", "test-models");
  return path.join(folder, file);
}

export function hasTestModel(): boolean {
  return fs.existsSync(testModel());
}

/** Rejects after `ms` milliseconds: every wait in the tests is bounded. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class LspServer {
  readonly messages: ShowMessageParams[] = [];
  readonly statuses: { state: string; message: string; percent: number | null }[] = [];
  readonly stderr: string[] = [];
  private readonly process: ChildProcessWithoutNullStreams;
  readonly connection: ProtocolConnection;

  /** Starts the server; `configuration` answers its workspace/configuration requests. */
  constructor(private readonly configuration: () => unknown) {
    this.process = spawn(serverBinary(), [], { stdio: "pipe" });
    this.process.stderr.on("data", (chunk) => this.stderr.push(String(chunk)));
    this.connection = createProtocolConnection(
      new StreamMessageReader(this.process.stdout),
      new StreamMessageWriter(this.process.stdin),
    );
    this.connection.onRequest(ConfigurationRequest.type, (params) => params.items.map(() => this.configuration()));
    this.connection.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
    this.connection.onNotification("window/showMessage", (params: ShowMessageParams) => {
      this.messages.push(params);
    });
    this.connection.onNotification("mistral-lsp/status", (params) => {
      this.statuses.push(params);
    });
    this.connection.onNotification("window/logMessage", () => undefined);
    this.connection.onNotification("$/progress", () => undefined);
    this.connection.listen();
  }

  async initialize(initializationOptions: unknown): Promise<void> {
    await within(
      10_000,
      "initialize",
      this.connection.sendRequest(InitializeRequest.type, {
        processId: process.pid,
        rootUri: null,
        capabilities: { workspace: { configuration: true }, window: { workDoneProgress: true } },
        initializationOptions,
      }),
    );
    await this.connection.sendNotification("initialized", {});
  }

  /** Waits for a `mistral-lsp/status` notification with `state`. */
  async waitForState(state: string, ms: number): Promise<void> {
    await within(
      ms,
      `state ${state} (statuses: ${JSON.stringify(this.statuses)})`,
      new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (this.statuses.some((status) => status.state === state)) {
            clearInterval(check);
            resolve();
          }
        }, 50);
      }),
    );
  }

  /** Shuts the server down and checks that it exits with code 0. */
  async shutdown(): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => this.process.once("exit", (code) => resolve(code)));
    try {
      await within(10_000, "shutdown", this.connection.sendRequest("shutdown"));
      await this.connection.sendNotification("exit");
      return await within(10_000, "exit", exited);
    } finally {
      this.connection.dispose();
      this.process.kill();
    }
  }
}
