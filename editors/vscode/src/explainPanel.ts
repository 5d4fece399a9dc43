// The explanation side panel: the markdown as it streams, with a Stop button; closing the panel stops the job.
import * as vscode from "vscode";

import { ExplanationParams, ExplanationStream } from "./explanation";

export class ExplanationPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private cancel: vscode.CancellationTokenSource | undefined;
  private readonly stream = new ExplanationStream();

  /** Shows a new explanation of `uri` (stopping the one before); its request listens to the token returned. */
  start(uri: string, title: string): vscode.CancellationToken {
    this.stop();
    this.cancel = new vscode.CancellationTokenSource();
    this.stream.start(uri);
    if (!this.panel) {
      const panel = vscode.window.createWebviewPanel(
        "mistralLsp.explanation",
        title,
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true },
      );
      panel.onDidDispose(() => {
        this.panel = undefined;
        this.stop();
      });
      panel.webview.onDidReceiveMessage((message: { type?: string }) => message?.type === "stop" && this.stop());
      panel.webview.html = page(panel.webview);
      this.panel = panel;
    }
    this.panel.title = title;
    void this.render("*Reading the code…*", true);
    return this.cancel.token;
  }

  /** A `mistral-lsp/explanation` notification: shown if it belongs to the explanation on screen. */
  update(params: ExplanationParams): void {
    const text = this.stream.accept(params);
    if (text !== undefined) {
      void this.render(text, !this.stream.done);
    }
  }

  finish(markdown: string): void {
    this.stream.finish();
    void this.render(markdown, false);
  }

  fail(message: string): void {
    const before = this.stream.text;
    this.stream.finish();
    void this.render(before ? `${before}\n\n---\n\n*${message}*` : `*${message}*`, false);
  }

  /** Stops the running request, if any (the Stop button, a new explanation, the panel closed). */
  stop(): void {
    this.cancel?.cancel();
    this.cancel?.dispose();
    this.cancel = undefined;
  }

  dispose(): void {
    this.stop();
    this.panel?.dispose();
  }

  private async render(markdown: string, running: boolean): Promise<void> {
    let html: string;
    try {
      html = await vscode.commands.executeCommand<string>("markdown.api.render", markdown);
    } catch {
      html = `<pre>${escapeHtml(markdown)}</pre>`;
    }
    void this.panel?.webview.postMessage({ type: "render", html, running });
  }
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The panel's page: the rendered markdown, replaced as it grows, and a Stop button while the job runs. */
function page(webview: vscode.Webview): string {
  const nonce = Array.from({ length: 16 }, () => Math.floor(Math.random() * 36).toString(36)).join("");
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource} 'unsafe-inline'; script-src 'nonce-${nonce}';">
<style>body { font-family: var(--vscode-font-family); line-height: 1.5; } #stop { margin: 0.5em 0; }</style>
</head><body>
<button id="stop" hidden>Stop</button>
<div id="text"></div>
<script nonce="${nonce}">
  const vscode = acquireVsCodeApi();
  const stop = document.getElementById("stop");
  stop.addEventListener("click", () => vscode.postMessage({ type: "stop" }));
  window.addEventListener("message", (event) => {
    if (event.data.type === "render") {
      document.getElementById("text").innerHTML = event.data.html;
      stop.hidden = !event.data.running;
    }
  });
</script>
</body></html>`;
}
