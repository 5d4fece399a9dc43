-- Starting mistral-lsp: the client configuration, vim.lsp.config/enable (0.11+) or vim.lsp.start
-- (0.10), the server's status notifications, and what happens when the server exits.
local M = {}

-- The name of the client and of the vim.lsp.config entry.
M.name = "mistral_lsp"

-- The latest `mistral-lsp/status` per client id: { state, message, percent }.
M.states = {}
-- Set when the server exited on its own: { code, signal }. Cleared by a restart.
M.crashed = nil

local has_011 = vim.fn.has("nvim-0.11") == 1
local stopping = {} -- client ids this plugin stopped on purpose
local disabled = false -- after a crash, until :MistralLspRestart
local filetype_autocmd = nil -- the 0.10 start autocmd

--- How the server is started here: "config" (vim.lsp.config + vim.lsp.enable, 0.11+) or "start"
--- (vim.lsp.start from a FileType autocmd, 0.10).
---@return "config"|"start"
function M.strategy()
  return vim.fn.has("nvim-0.11") == 1 and "config" or "start"
end

--- The client capabilities: Neovim's own plus inline completion, which 0.11 does not announce.
function M.capabilities()
  return vim.tbl_deep_extend("force", vim.lsp.protocol.make_client_capabilities(), {
    textDocument = { inlineCompletion = { dynamicRegistration = false } },
  })
end

--- The running mistral-lsp clients.
function M.clients(filter)
  return vim.lsp.get_clients(vim.tbl_extend("force", { name = M.name }, filter or {}))
end

local function changed(client_id, state, message, percent)
  M.states[client_id] = { state = state, message = message or "", percent = percent }
  vim.api.nvim_exec_autocmds("User", { pattern = "MistralLspStatus", modeline = false, data = { client_id = client_id, state = state } })
  pcall(vim.cmd.redrawstatus)
end

--- Finds the server binary. Returns the command with an absolute path, or nil and a message.
---@param cmd string[]
---@return string[]|nil, string|nil
function M.resolve_cmd(cmd)
  local path = vim.fn.exepath(cmd[1])
  if path == "" then
    local where = cmd[1]:find("/", 1, true) and cmd[1] or (cmd[1] .. " on PATH")
    return nil, ("mistral-lsp: cannot start the server: %s not found or not executable. Install it (cargo build --release in the mistral-lsp repository) or set the `cmd` option."):format(where)
  end
  return vim.list_extend({ path }, vim.list_slice(cmd, 2))
end

-- Empty Lua tables go to JSON as [] and the server wants objects.
local function object(t)
  return next(t) and t or vim.empty_dict()
end

local function on_exit(code, signal, client_id)
  M.states[client_id] = nil
  if stopping[client_id] then
    stopping[client_id] = nil
    return
  end
  -- Exit code 0 is a normal shutdown and SIGTERM (15) is Neovim stopping the client: only a
  -- server that ends on its own is reported, once, and not started again until asked to.
  if (code == 0 and (signal == 0 or signal == 15)) or vim.v.exiting ~= vim.NIL then
    return
  end
  if disabled then
    return -- Already reported: several clients of one start may end together.
  end
  M.crashed = { code = code, signal = signal }
  disabled = true
  if has_011 then
    pcall(vim.lsp.enable, M.name, false)
  end
  vim.notify(
    ("mistral-lsp: the server stopped (exit code %d, signal %d). Run :MistralLspRestart to start it again; :LspLog shows its log."):format(code, signal),
    vim.log.levels.ERROR
  )
  changed(client_id, "stopped", "the server stopped")
  M.states[client_id] = nil
end

--- The client configuration for vim.lsp.config or vim.lsp.start.
---@param options table resolved plugin options
---@param cmd string[] the resolved command
function M.client_config(options, cmd)
  return {
    name = M.name,
    cmd = cmd,
    cmd_env = next(options.cmd_env) and options.cmd_env or nil,
    filetypes = options.filetypes,
    root_markers = options.root_markers,
    init_options = object(options.settings),
    settings = { mistralLsp = object(options.settings) },
    capabilities = M.capabilities(),
    handlers = {
      ["mistral-lsp/status"] = function(_, params, ctx)
        changed(ctx.client_id, params.state, params.message, params.percent)
      end,
      ["mistral-lsp/explanation"] = function(_, params)
        require("mistral-lsp.explain").on_notification(params)
      end,
    },
    on_init = function(client)
      if not M.states[client.id] then
        changed(client.id, "starting", "the server started")
      end
    end,
    on_exit = function(code, signal, client_id)
      vim.schedule(function()
        on_exit(code, signal, client_id)
      end)
    end,
  }
end

-- 0.10: start (or reuse) a client for one buffer.
local function start_buffer(buf, base)
  if disabled or not vim.api.nvim_buf_is_valid(buf) or vim.bo[buf].buftype ~= "" then
    return
  end
  if not vim.tbl_contains(base.filetypes, vim.bo[buf].filetype) then
    return
  end
  local config = vim.deepcopy(base)
  config.root_dir = vim.fs.root(buf, base.root_markers)
  config.root_markers, config.filetypes = nil, nil
  vim.lsp.start(config, { bufnr = buf })
end

--- Starts the server for every open and future buffer of the configured file types. A missing
--- binary is reported (once per call: only setup() and :MistralLspRestart call this) and
--- nothing is started; returns false then.
---@param options table resolved plugin options
---@return boolean
function M.start(options)
  local cmd, problem = M.resolve_cmd(options.cmd)
  if not cmd then
    vim.notify(problem, vim.log.levels.ERROR)
    return false
  end
  disabled, M.crashed = false, nil
  local config = M.client_config(options, cmd)
  if M.strategy() == "config" then
    vim.lsp.config(M.name, config)
    vim.lsp.enable(M.name)
  else
    if filetype_autocmd then
      pcall(vim.api.nvim_del_autocmd, filetype_autocmd)
    end
    filetype_autocmd = vim.api.nvim_create_autocmd("FileType", {
      group = vim.api.nvim_create_augroup("mistral-lsp.start", { clear = true }),
      pattern = config.filetypes,
      callback = function(args)
        start_buffer(args.buf, config)
      end,
    })
    for _, buf in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(buf) then
        start_buffer(buf, config)
      end
    end
  end
  return true
end

--- Stops the running clients and waits (up to a few seconds) for them to exit.
function M.stop()
  local clients = M.clients()
  for _, client in ipairs(clients) do
    stopping[client.id] = true
    if has_011 then client:stop() else client.stop() end
  end
  local function all_stopped()
    return vim.iter(clients):all(function(c)
      return c.is_stopped(c)
    end)
  end
  if not vim.wait(3000, all_stopped, 20) then
    for _, client in ipairs(clients) do
      if has_011 then client:stop(true) else client.stop(true) end
    end
    vim.wait(1000, all_stopped, 20)
  end
end

--- The current buffer and its mistral-lsp client, or nothing (with a warning) when none is attached.
function M.current()
  local buf = vim.api.nvim_get_current_buf()
  local c = M.clients({ bufnr = buf })[1]
  if not c then
    vim.notify("mistral-lsp: not attached to this buffer", vim.log.levels.WARN)
  end
  return buf, c
end

--- The LSP range of whole lines `first`..`last` (1-based) of `buf`, in the client's encoding.
function M.lines_range(c, buf, first, last)
  local last_text = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
  return {
    start = { line = first - 1, character = 0 },
    ["end"] = { line = last - 1, character = vim.str_utfindex(last_text, c.offset_encoding or "utf-16") },
  }
end

--- :MistralLspRestart: stops the server if it runs, then starts it again for open buffers.
---@param options table resolved plugin options
function M.restart(options)
  M.stop()
  -- Both vim.lsp.enable (after startup) and the 0.10 path start clients for open buffers.
  M.start(options)
end

return M
