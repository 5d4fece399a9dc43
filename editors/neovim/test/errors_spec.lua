-- End-to-end bad input: a missing server binary, a server that cannot start, a model that is still
-- loading, and a server killed mid-session (one clear message, no restart loop, :MistralLspRestart).
local H = dofile(vim.env.TEST_DIR .. "/helpers.lua")
local mistral = require("mistral-lsp")
local client = require("mistral-lsp.client")

local notes = H.capture_notify()
local dir = H.tmpdir()
local files = 0

-- Opens a new Python file and returns its buffer.
local function open_python()
  files = files + 1
  local path = ("%s/f%d.py"):format(dir, files)
  vim.fn.writefile({ "def f(x):", "    return" }, path)
  vim.cmd.edit(path)
  return vim.api.nvim_get_current_buf()
end

local function type_in(buf)
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  H.input("A x")
  H.sleep(500)
  -- Unmapped, <M-]> is <Esc>] and ] waits for a key without running timers: only when mapped.
  if vim.fn.maparg("<M-]>", "i") ~= "" then
    H.input("<M-]>")
    H.sleep(300)
  end
  H.input("<Esc>")
  H.eq(nil, H.ghost(buf), "no ghost text")
end

local function our_messages(from)
  return vim.tbl_filter(function(n) return n.msg:find("^mistral%-lsp") end, vim.list_slice(notes, from))
end

-- The server processes started by this Neovim.
local function server_pids()
  local pids = {}
  for _, pid in ipairs(vim.api.nvim_get_proc_children(vim.fn.getpid())) do
    local proc = vim.api.nvim_get_proc(pid)
    if proc and proc.name == "mistral-lsp" then
      table.insert(pids, pid)
    end
  end
  return pids
end

-- A model host that accepts connections and never answers, so the model stays "loading".
local held = {}
local function stalled_host()
  local server = vim.uv.new_tcp()
  server:bind("127.0.0.1", 0)
  server:listen(16, function()
    local conn = vim.uv.new_tcp()
    server:accept(conn)
    table.insert(held, conn)
  end)
  return server:getsockname().port
end

H.test("a missing binary is reported once, clearly, and nothing else complains", function()
  local from = #notes + 1
  mistral.setup({ cmd = { dir .. "/no-such/mistral-lsp" } })
  local first = open_python()
  type_in(first)
  type_in(open_python())
  local messages = our_messages(from)
  H.eq(1, #messages, "one message: " .. vim.inspect(messages))
  H.eq(vim.log.levels.ERROR, messages[1].level, "an error")
  H.truthy(messages[1].msg:find(dir .. "/no-such/mistral-lsp not found", 1, true), "names the path: " .. messages[1].msg)
  H.eq(#notes - from + 1, #messages, "no other messages")
  H.eq({}, client.clients(), "no client")
  local report = H.checkhealth()
  H.truthy(report:find("ERROR mistral-lsp: cannot start the server", 1, true), "checkhealth says why: " .. report)
end)

H.test("setup({}) without mistral-lsp on PATH says so once", function()
  local from = #notes + 1
  local path = vim.env.PATH
  vim.env.PATH = "/usr/bin:/bin"
  mistral.setup({})
  vim.env.PATH = path
  type_in(open_python())
  local messages = our_messages(from)
  H.eq(1, #messages, "one message: " .. vim.inspect(messages))
  H.truthy(messages[1].msg:find("mistral-lsp on PATH not found", 1, true), "says PATH: " .. messages[1].msg)
end)

H.test("a server that exits at once is reported once and not started again", function()
  local from = #notes + 1
  mistral.setup({ cmd = { "false" } })
  open_python()
  H.wait_until(function() return #our_messages(from) > 0 end, 10000, "the message")
  for _ = 1, 3 do
    type_in(open_python())
  end
  H.sleep(500)
  local messages = our_messages(from)
  H.eq(1, #messages, "one message: " .. vim.inspect(messages))
  H.truthy(messages[1].msg:find(":MistralLspRestart", 1, true), "says how to restart: " .. messages[1].msg)
  H.eq({}, client.clients(), "no client")
  H.eq("mistral-lsp: stopped", mistral.status(), "status()")
end)

local lsp
H.test("while the model loads, requests return nothing and nothing complains", function()
  local from = #notes + 1
  mistral.setup({
    cmd = { vim.env.MISTRAL_LSP_BIN },
    cmd_env = {
      MISTRAL_LSP_HF_ENDPOINT = "http://127.0.0.1:" .. stalled_host(),
      MISTRAL_LSP_CACHE_DIR = dir .. "/models",
      MISTRAL_LSP_DOWNLOAD_TIMEOUT_SECS = "600",
    },
    settings = H.settings({ model = "hf:example/stalled/model.gguf" }),
  })
  local buf = open_python()
  lsp = H.wait_until(function() return client.clients({ bufnr = buf })[1] end, 10000, "the client")
  H.wait_until(function() return mistral.status_info().state == "loading" end, 10000, "the loading state")
  H.truthy(mistral.status():find("^mistral%-lsp: loading"), "status(): " .. mistral.status())
  type_in(buf)
  local response = lsp:request_sync("textDocument/inlineCompletion", {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = 1, character = 8 },
    context = { triggerKind = 1 },
  }, 10000, buf)
  H.eq(nil, response.err, "no error")
  H.eq(0, #(response.result.items or response.result), "no items")
  local status = lsp:request_sync("workspace/executeCommand", { command = "mistral-lsp.status", arguments = {} }, 5000, buf)
  H.eq("loading", status.result.state, "the server's state")
  H.eq({}, vim.list_slice(notes, from), "no messages")
end)

H.test("a server killed mid-session: one message, no restart loop, :MistralLspRestart starts it", function()
  local from = #notes + 1
  local pids = server_pids()
  H.eq(1, #pids, "one server process")
  vim.uv.kill(pids[1], "sigkill")
  H.wait_until(function() return #our_messages(from) > 0 end, 10000, "the message")
  H.sleep(500)
  type_in(open_python())
  H.sleep(500)
  local messages = our_messages(from)
  H.eq(1, #messages, "one message: " .. vim.inspect(messages))
  H.eq(vim.log.levels.ERROR, messages[1].level, "an error")
  H.truthy(messages[1].msg:find("Run :MistralLspRestart", 1, true), "says how to restart: " .. messages[1].msg)
  H.eq({}, client.clients(), "not started again")
  H.eq({}, server_pids(), "no server process")
  H.eq("mistral-lsp: stopped", mistral.status(), "status()")

  vim.cmd("MistralLspRestart")
  local buf = vim.api.nvim_get_current_buf()
  H.wait_until(function() return client.clients({ bufnr = buf })[1] end, 10000, "a new client")
  H.wait_until(function() return mistral.status_info().state == "loading" end, 10000, "the new server's state")
  H.eq(1, #server_pids(), "one server process again")
  H.eq(1, #our_messages(from), "no new message")
end)

H.test(":MistralLspRestart on a running server replaces it", function()
  local before = server_pids()
  vim.cmd("MistralLspRestart")
  H.wait_until(function() return #server_pids() == 1 and server_pids()[1] ~= before[1] end, 10000, "a new process")
  H.eq(1, #client.clients(), "one client")
  H.eq(nil, client.crashed, "a restart is no crash")
end)

H.run()
