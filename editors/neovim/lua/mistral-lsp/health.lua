-- :checkhealth mistral-lsp: Neovim version, the server binary and its version, the model's state.
local client = require("mistral-lsp.client")
local config = require("mistral-lsp.config")

local M = {}

local health = vim.health
local has_011 = vim.fn.has("nvim-0.11") == 1

local function report_state(status, where)
  local text = ("%s (%s)"):format(status.message or "", where)
  if status.state == "ready" then
    health.ok(("model ready: %s; model setting: %s"):format(text, status.model or "?"))
  elseif status.state == "error" then
    health.error("the model failed to load: " .. text, { "Check the `model` setting and :LspLog." })
  elseif status.state == "loading" then
    local percent = status.percent and (" %d%%"):format(status.percent) or ""
    health.info(("model loading%s: %s"):format(percent, text))
  else
    health.info(("model %s: %s"):format(status.state or "unknown", text))
  end
end

-- Asks a running client for `mistral-lsp.status`.
local function ask_client(c)
  local params = { command = "mistral-lsp.status", arguments = {} }
  local response, err
  if has_011 then
    response, err = c:request_sync("workspace/executeCommand", params, 5000)
  else
    response, err = c.request_sync("workspace/executeCommand", params, 5000)
  end
  if not response or response.err then
    health.error(("the server (client %d) did not answer mistral-lsp.status: %s"):format(c.id, vim.inspect(err or response.err)))
    return
  end
  report_state(response.result, "client " .. c.id)
end

-- With no client running, starts the server for a moment: initialize, wait for the model, shut down.
local function short_check(cmd)
  local options = config.options
  local last, exited = nil, false
  local rpc = vim.lsp.rpc.start(cmd, {
    notification = function(method, params)
      if method == "mistral-lsp/status" then
        last = params
      end
    end,
    server_request = function()
      return vim.NIL
    end,
    on_exit = function()
      exited = true
    end,
  }, { env = next(options.cmd_env) and options.cmd_env or nil })
  local initialized = false
  rpc.request("initialize", {
    processId = vim.fn.getpid(),
    rootUri = vim.NIL,
    capabilities = vim.empty_dict(),
    initializationOptions = next(options.settings) and options.settings or vim.empty_dict(),
  }, function()
    initialized = true
  end)
  if not vim.wait(10000, function() return initialized or exited end, 20) or exited then
    health.error("the server did not answer initialize")
    rpc.terminate()
    return
  end
  rpc.notify("initialized", vim.empty_dict())
  local timeout = options.health_timeout_ms
  vim.wait(timeout, function()
    return exited or (last ~= nil and last.state ~= "loading")
  end, 50)
  if last == nil then
    health.warn(("no model status from the server within %d s"):format(timeout / 1000))
  elseif last.state == "loading" then
    health.info(("the model was still loading after %d s (a download continues where it stopped next time)"):format(timeout / 1000))
    report_state(last, "a short check; no client is running")
  else
    report_state(last, "a short check; no client is running")
  end
  local done = false
  rpc.request("shutdown", vim.NIL, function()
    done = true
  end)
  vim.wait(3000, function() return done or exited end, 20)
  rpc.notify("exit", vim.NIL)
  if not vim.wait(3000, function() return exited end, 20) then
    rpc.terminate()
  end
end

function M.check()
  health.start("Neovim")
  local version = tostring(vim.version())
  if vim.fn.has("nvim-0.10") == 0 then
    health.error("Neovim " .. version .. " is too old: mistral-lsp needs 0.10 or newer")
    return
  end
  local mistral = require("mistral-lsp")
  local shows = mistral.backend_name() == "native" and "vim.lsp.inline_completion (built in)"
    or "this plugin's ghost text (extmarks)"
  local starts = client.strategy() == "config" and "vim.lsp.config and vim.lsp.enable" or "vim.lsp.start"
  health.ok(("Neovim %s is supported: suggestions shown by %s, server started with %s"):format(version, shows, starts))
  if not mistral.did_setup then
    health.warn("require('mistral-lsp').setup() has not been called: checking the default options")
  end

  health.start("mistral-lsp server")
  local cmd, problem = client.resolve_cmd(config.options.cmd)
  if not cmd then
    health.error(problem)
    return
  end
  health.ok("binary found: " .. cmd[1])
  local ok, result = pcall(function()
    return vim.system({ cmd[1], "--version" }, { text = true }):wait(10000)
  end)
  local version_text = ok and ((result.stderr or "") .. (result.stdout or "")) or ""
  local server_version = version_text:match("mistral%-lsp%s+(%S+)")
  if ok and result.code == 0 and server_version then
    health.ok("version: " .. server_version)
  else
    health.error(("`%s --version` failed: %s"):format(cmd[1], ok and vim.trim(version_text) or tostring(result)))
  end

  health.start("Model")
  if client.crashed then
    health.error(("the server stopped on its own (exit code %d, signal %d)"):format(client.crashed.code, client.crashed.signal), { "Run :MistralLspRestart; :LspLog shows its log." })
  end
  local clients = client.clients()
  if #clients == 0 then
    short_check(cmd)
  end
  for _, c in ipairs(clients) do
    ask_client(c)
  end
end

return M
