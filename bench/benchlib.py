"""Shared pieces of the benchmarks: an LSP client over stdio, a llama-server wrapper, LSP position
conversion, statistics and run metadata. Python 3 standard library only."""

import datetime
import glob
import hashlib
import http.client
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
LOG_DIR = os.path.join(REPO, "target", "bench-logs")
RESULTS_DIR = os.path.join(REPO, "target", "bench-results")


def log(message):
    """Progress goes to stderr; stdout carries only the final table."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Paths and metadata


def default_model():
    """The Qwen2.5-Coder 0.5B test model, where scripts/fetch-test-models puts it."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    models = os.environ.get("MISTRAL_LSP_TEST_MODELS") or os.path.join(cache, "mistral-lsp", "test-models")
    return os.path.join(models, MODEL_FILE)


def default_lsp_binary():
    """target/release/mistral-lsp if it was built, else target/debug/mistral-lsp."""
    release = os.path.join(REPO, "target", "release", "mistral-lsp")
    return release if os.path.exists(release) else os.path.join(REPO, "target", "debug", "mistral-lsp")


def default_llama_server():
    return os.path.join(REPO, "target", "llama-tools", "llama-server")


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot_binary(path):
    """Copies the server binary aside so that a rebuild during a long run cannot swap it, and
    describes it: other engineers rebuild target/ while benchmarks run."""
    if not os.path.exists(path):
        sys.exit(f"bench: no server binary at {path}; build it with `cargo build --release` or pass --lsp-binary")
    os.makedirs(LOG_DIR, exist_ok=True)
    copy = os.path.join(LOG_DIR, f"mistral-lsp.{os.getpid()}")
    shutil.copy2(path, copy)
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(path)).isoformat(timespec="seconds")
    info = {"path": os.path.relpath(path, REPO), "mtime": mtime, "sha256": file_digest(copy)[:16]}
    # bench/build-lsp-snapshot leaves the commit it built next to the binary.
    commit = read_text(os.path.join(os.path.dirname(path), "COMMIT")).strip()
    if commit:
        info["commit"] = commit
    return copy, info


def run_metadata(args, lsp_info=None):
    """What a result depends on, stored with every result file."""
    dirty = git("status", "--porcelain", "--", "server", "Cargo.toml", "Cargo.lock")
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "server_tree_dirty": bool(dirty),
        "lsp_binary": lsp_info,
        "llama_server": read_text(os.path.join(os.path.dirname(args.llama_server), "VERSION")).strip() or None,
        "model": os.path.basename(args.model),
        "threads": args.threads,
        "context_size": args.context_size,
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "argv": sys.argv[1:],
    }


def describe_source(meta):
    """The header line's account of what was measured."""
    lsp = meta.get("lsp_binary") or {}
    if lsp.get("commit"):
        return f"mistral-lsp {lsp['commit']} (release snapshot)"
    dirty = ", server/ had uncommitted changes" if meta["server_tree_dirty"] else ""
    built = f", {lsp['path']} built {lsp['mtime']}" if lsp else ""
    return f"commit {meta['commit']}{built}{dirty}"


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def write_results(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, ensure_ascii=False)
    os.replace(path + ".tmp", path)


def default_results_path(name):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(RESULTS_DIR, f"{name}-{stamp}.json")


def add_common_arguments(parser):
    parser.add_argument("--systems", default="lsp,llama-server",
                        help="comma-separated systems to run: lsp, llama-server (default: both)")
    parser.add_argument("--model", default=default_model(), help="GGUF model (default: Qwen2.5-Coder 0.5B test model)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both systems (default 2)")
    parser.add_argument("--context-size", type=int, default=8192, help="context size for both systems (default 8192)")
    parser.add_argument("--lsp-binary", default=default_lsp_binary(),
                        help="mistral-lsp binary (default target/release/mistral-lsp if built, else target/debug)")
    parser.add_argument("--lsp-arg", action="append", default=[],
                        help="extra argument for mistral-lsp, repeatable (e.g. --lsp-arg=--set --lsp-arg=fim.mode=native)")
    parser.add_argument("--llama-server", default=default_llama_server(),
                        help="llama-server binary (default target/llama-tools/llama-server, built by bench/build-llama-tools)")
    parser.add_argument("--llama-server-arg", action="append", default=[], help="extra argument for llama-server, repeatable")
    parser.add_argument("--nice", type=int, default=5, help="niceness of the measured servers (default 5)")
    parser.add_argument("--report", nargs="+", metavar="RESULTS.json",
                        help="print the table of earlier runs' result files instead of running")
    parser.add_argument("--out", help="per-request records as JSON (default target/bench-results/NAME-DATE.json)")


def load_reports(paths):
    """Records and metadata of earlier runs (--report), to print their table again."""
    records, metas = [], []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        records += payload["records"]
        metas.append(payload["meta"])
    return records, metas


def parse_systems(text):
    systems = [s.strip() for s in text.split(",") if s.strip()]
    for system in systems:
        if system not in ("lsp", "lsp-remote", "llama-server"):
            sys.exit(f"bench: unknown system {system!r}; use lsp, lsp-remote and/or llama-server")
    return systems


def check_inputs(args, systems):
    if not os.path.exists(args.model):
        sys.exit(f"bench: no model at {args.model}; run scripts/fetch-test-models qwen-0.5b or pass --model")
    if {"llama-server", "lsp-remote"} & set(systems) and not os.path.exists(args.llama_server):
        sys.exit(f"bench: no llama-server at {args.llama_server}; run bench/build-llama-tools first")


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    k = (len(values) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def counter_delta(before, after, key):
    """The growth of a cumulative counter of mistral-lsp.status between two answers."""
    a, b = (before or {}).get(key), (after or {}).get(key)
    return b - a if isinstance(a, int) and isinstance(b, int) else None


def share(flags):
    flags = list(flags)
    return sum(1 for f in flags if f) / len(flags) if flags else None


def fmt(value, digits=3, suffix=""):
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# LSP positions: lines split at \n, \r\n and \r; columns counted in the negotiated encoding.

def python_corpus(size, start=0):
    """Real Python: standard-library modules in a fixed order, concatenated, `size` characters
    from character `start` on."""
    text = []
    total = 0
    for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        source = open(path, encoding="utf-8", errors="replace").read()
        text.append(source)
        total += len(source)
        if total >= start + size:
            break
    return "".join(text)[start:start + size]


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_starts(text):
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _units(char, encoding):
    if encoding == "utf-16":
        return 2 if ord(char) > 0xFFFF else 1
    if encoding == "utf-8":
        return len(char.encode("utf-8"))
    return 1


def offset_to_position(text, offset, encoding="utf-16"):
    """A Python string index to an LSP position {line, character}."""
    starts = _line_starts(text)
    line = 0
    lo, hi = 0, len(starts) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if starts[mid] <= offset:
            line, lo = mid, mid + 1
        else:
            hi = mid - 1
    column = sum(_units(c, encoding) for c in text[starts[line]:offset])
    return {"line": line, "character": column}


def position_to_offset(text, position, encoding="utf-16"):
    """An LSP position to a Python string index; columns past the line end clamp to it."""
    starts = _line_starts(text)
    line = position["line"]
    if line >= len(starts):
        return len(text)
    start = starts[line]
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    content_end = start + len(text[start:end].rstrip("\r\n"))
    units, i = 0, start
    while i < content_end and units < position["character"]:
        units += _units(text[i], encoding)
        i += 1
    return i


def item_text(item):
    """insertText of an InlineCompletionItem: a string or a StringValue snippet."""
    text = item.get("insertText", "")
    if isinstance(text, dict):
        text = text.get("value", "")
    return text or ""


def apply_item(document, cursor, item, encoding="utf-16"):
    """The document after accepting `item` at `cursor`, and the offset range it replaced."""
    text = item_text(item)
    if item.get("range"):
        start = position_to_offset(document, item["range"]["start"], encoding)
        end = position_to_offset(document, item["range"]["end"], encoding)
    else:
        start = end = cursor
    return document[:start] + text + document[end:], start, end


def text_after_cursor(document, cursor, item, encoding="utf-16"):
    """What accepting `item` puts right of the cursor, or None when it would also rewrite text
    before the cursor (a range starting earlier whose text does not repeat what is there)."""
    text = item_text(item)
    if not item.get("range"):
        return text
    start = position_to_offset(document, item["range"]["start"], encoding)
    if start > cursor:
        return None
    typed = document[start:cursor]
    return text[len(typed):] if text.startswith(typed) else None


# ---------------------------------------------------------------------------------------------
# Processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_log(name):
    os.makedirs(LOG_DIR, exist_ok=True)
    path = os.path.join(LOG_DIR, f"{name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    return path, open(path, "wb")


def stop_process(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


def run_python(path, timeout, cwd):
    """Runs a Python file with a timeout, in its own process group; True if it exits 0."""
    proc = subprocess.Popen([sys.executable, path], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return False


class LspError(Exception):
    pass


class LspClient:
    """A minimal LSP client over the server's stdin/stdout: Content-Length framing, a reader
    thread, request ids, answers to server requests, and a timeout on every wait."""

    def __init__(self, command, log_name="mistral-lsp"):
        self.log_path, self._log = open_log(log_name)
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     start_new_session=True, bufsize=0)
        self._write_lock = threading.Lock()
        self._next_id = 0
        self._pending = {}
        self._pending_lock = threading.Lock()
        self.status = None
        self._status_changed = threading.Condition()
        self.messages = []
        # method -> callable(params), for the server's other notifications (called on the reader thread)
        self.on_notification = {}
        self.encoding = "utf-16"
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- wire --------------------------------------------------------------------------------

    def _send(self, message):
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        with self._write_lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()

    def _read_message(self):
        stream = self.proc.stdout
        length = None
        while True:
            line = stream.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                if length is not None:
                    break
                continue
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = b""
        while len(body) < length:
            chunk = stream.read(length - len(body))
            if not chunk:
                return None
            body += chunk
        return json.loads(body.decode("utf-8"))

    def _read_loop(self):
        try:
            while True:
                message = self._read_message()
                if message is None:
                    break
                self._dispatch(message)
        except (OSError, ValueError) as err:
            self.messages.append(f"reader stopped: {err}")
        finally:
            self._closed = True
            with self._pending_lock:
                waiting = list(self._pending.values())
            for q in waiting:
                q.put({"error": {"code": -1, "message": "the server closed its output"}})
            with self._status_changed:
                self._status_changed.notify_all()

    def _dispatch(self, message):
        method = message.get("method")
        if method is None:
            with self._pending_lock:
                q = self._pending.pop(message.get("id"), None)
            if q is not None:
                q.put(message)
            return
        if "id" in message:
            # Server-to-client request: answer null (a list of nulls for workspace/configuration).
            result = None
            if method == "workspace/configuration":
                result = [None] * len((message.get("params") or {}).get("items", []))
            try:
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            except OSError:
                pass
            return
        params = message.get("params") or {}
        if method == "mistral-lsp/status":
            with self._status_changed:
                self.status = params
                self._status_changed.notify_all()
        elif method == "window/showMessage":
            self.messages.append(params.get("message", ""))
        if method in self.on_notification:
            self.on_notification[method](params)

    # -- API ---------------------------------------------------------------------------------

    def request(self, method, params, timeout=60):
        with self._pending_lock:
            self._next_id += 1
            request_id = self._next_id
            q = queue.Queue(maxsize=1)
            self._pending[request_id] = q
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        try:
            answer = q.get(timeout=timeout)
        except queue.Empty:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            try:
                self.notify("$/cancelRequest", {"id": request_id})
            except OSError:
                pass
            raise TimeoutError(f"{method} got no answer within {timeout} s") from None
        if "error" in answer:
            raise LspError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result")

    def notify(self, method, params):
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, timeout=30):
        result = self.request("initialize", {
            "processId": os.getpid(),
            "clientInfo": {"name": "mistral-lsp-bench", "version": "1"},
            "rootUri": None,
            "capabilities": {
                "general": {"positionEncodings": ["utf-16"]},
                "textDocument": {
                    "synchronization": {"dynamicRegistration": False},
                    "inlineCompletion": {"dynamicRegistration": False},
                },
                "window": {"workDoneProgress": True},
            },
        }, timeout=timeout)
        self.encoding = (result or {}).get("capabilities", {}).get("positionEncoding", "utf-16")
        self.notify("initialized", {})
        return result

    def server_status(self, timeout=30):
        return self.request("workspace/executeCommand", {"command": "mistral-lsp.status", "arguments": []},
                            timeout=timeout) or {}

    def wait_ready(self, timeout=180):
        """Waits for state "ready" from the status notification or the status command."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._closed or self.proc.poll() is not None:
                raise LspError(f"mistral-lsp exited while loading; see {self.log_path}")
            state = (self.status or {}).get("state")
            if state != "ready":
                state = self.server_status().get("state", state)
            if state == "ready":
                return
            if state == "error":
                raise LspError(f"the model failed to load: {self.messages or self.status}; see {self.log_path}")
            with self._status_changed:
                self._status_changed.wait(timeout=0.5)
        raise TimeoutError(f"mistral-lsp not ready after {timeout} s; see {self.log_path}")

    def did_open(self, uri, text, language_id="python", version=1):
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language_id, "version": version, "text": text}})

    def did_close(self, uri):
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def inline_completion(self, uri, position, trigger_kind, timeout=120):
        """The items of a textDocument/inlineCompletion answer (a list, possibly empty)."""
        result = self.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri},
            "position": position,
            "context": {"triggerKind": trigger_kind},
        }, timeout=timeout)
        if result is None:
            return []
        if isinstance(result, dict):
            return result.get("items") or []
        return result

    def close(self):
        try:
            if not self._closed and self.proc.poll() is None:
                self.request("shutdown", None, timeout=10)
                self.notify("exit", None)
                self.proc.wait(timeout=10)
        except (OSError, TimeoutError, LspError, subprocess.TimeoutExpired):
            pass
        finally:
            stop_process(self.proc)
            self._log.close()


def start_lsp(args, binary, remote=None):
    """mistral-lsp on the model, or with `remote` (a llama-server URL) on that server's model."""
    if remote:
        command = ["nice", "-n", str(args.nice), binary, "--remote", remote, *args.lsp_arg]
    else:
        command = ["nice", "-n", str(args.nice), binary, "--model", args.model, "--threads", str(args.threads),
                   "--context-size", str(args.context_size), *args.lsp_arg]
    client = LspClient(command)
    try:
        client.initialize()
        client.wait_ready()
    except BaseException:
        client.close()
        raise
    log(f"bench: mistral-lsp ready (log {os.path.relpath(client.log_path, REPO)})")
    return client


class LlamaServer:
    """llama-server as a child process on a free local port, with JSON POSTs."""

    def __init__(self, args):
        self.port = free_port()
        self.log_path, self._log = open_log("llama-server")
        command = ["nice", "-n", str(args.nice), args.llama_server, "-m", args.model, "-t", str(args.threads),
                   "-c", str(args.context_size), "--host", "127.0.0.1", "--port", str(self.port),
                   *args.llama_server_arg]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True)
        try:
            self._wait_healthy(timeout=180)
        except BaseException:
            self.close()
            raise
        log(f"bench: llama-server ready on port {self.port} (log {os.path.relpath(self.log_path, REPO)})")

    def _wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"llama-server not healthy after {timeout} s; see {self.log_path}")

    def post(self, path, body, timeout=300):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=json.dumps(body).encode("utf-8"),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"llama-server {path}: HTTP {response.status}: {data[:300]!r}")
        return json.loads(data.decode("utf-8"))

    def chat_stream(self, body, enough, timeout=300):
        """A streamed `/v1/chat/completions`: the text so far is passed to `enough` after each
        piece, and the connection is closed (llama-server then cancels the generation) once it
        returns True. Returns (text, finish_reason), finish_reason "stopped" for such an early end."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        text, finish = "", None
        try:
            conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}).encode("utf-8"),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"llama-server chat: HTTP {response.status}: {response.read()[:300]!r}")
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                choice = json.loads(data)["choices"][0]
                text += (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if finish:
                    continue
                if enough(text):
                    finish = "stopped"
                    break
        finally:
            conn.close()
        if finish == "stopped":
            self.wait_idle()
        return text, finish

    def wait_idle(self, timeout=120):
        """Waits until no slot is busy: a closed stream's generation is cancelled a moment later,
        and a request sent before that would take another slot or share its batches, which changes
        the numbers and so greedy answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/slots")
                slots = json.loads(conn.getresponse().read().decode("utf-8"))
            finally:
                conn.close()
            if not any(slot.get("is_processing") for slot in slots):
                return
            time.sleep(0.05)
        raise TimeoutError(f"llama-server still busy {timeout} s after a stream was closed")

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        stop_process(self.proc)
        self._log.close()


class OnOwnServer:
    """Mixin for a mistral-lsp system that runs our pipeline on a llama-server of its own
    (`--remote`): put it before the system's class, whose __init__ takes `remote=URL`."""

    def __init__(self, args, binary):
        self.server = LlamaServer(args)
        super().__init__(args, binary, remote=self.server.url())

    def close(self):
        super().close()
        self.server.close()


# Greedy decoding on llama-server: a sampler chain with only top-k at k=1 (the server appends its
# final `dist` sampler, which then has a single candidate), as our server's temperature 0 does.
LLAMA_GREEDY = {"temperature": 0, "top_k": 1, "samplers": ["top_k"], "seed": 0}
