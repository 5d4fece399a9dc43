-- mistral-lsp for Neovim: setup(), the insert-mode keys, and functions for mappings and statuslines.
local client = require("mistral-lsp.client")
local config = require("mistral-lsp.config")
local cursor = require("mistral-lsp.cursor")

local M = {}

M.did_setup = false

--- Which code shows suggestions: "native" (vim.lsp.inline_completion, 0.12+) or "ghost" (this
--- plugin's extmarks, 0.10 and 0.11).
---@return "native"|"ghost"
function M.backend_name()
  local builtin = vim.fn.has("nvim-0.12") == 1 and vim.lsp.inline_completion ~= nil
  return (config.options.builtin and builtin) and "native" or "ghost"
end

local function backend()
  return require("mistral-lsp." .. M.backend_name())
end

-- Keys for an insert-mode expr mapping: the action, or nil to let the key do what it does.
local function ghost_expr(action, buf)
  local ghost = require("mistral-lsp.ghost")
  if action == "next" or action == "prev" then
    return ("<Cmd>lua require('mistral-lsp.ghost').cycle(%d, %d)<CR>"):format(buf, action == "next" and 1 or -1)
  end
  if not ghost.visible(buf) then
    return nil
  end
  if action == "dismiss" then
    return ("<Cmd>lua require('mistral-lsp.ghost').dismiss(%d)<CR>"):format(buf)
  end
  local how = ({ accept = "all", accept_word = "word", accept_line = "line" })[action]
  -- Buffer edits are not allowed while an expr mapping runs, so the edit runs as <Cmd>.
  return ("<Cmd>lua require('mistral-lsp.ghost').accept(%d, %q)<CR>"):format(buf, how)
end

local descriptions = {
  accept = "Accept the suggestion",
  accept_word = "Accept the next word of the suggestion",
  accept_line = "Accept the next line of the suggestion",
  dismiss = "Dismiss the suggestion",
  next = "Next suggestion",
  prev = "Previous suggestion",
}

local function set_keymaps(buf)
  for action, lhs in pairs(config.options.keymaps) do
    if lhs then
      vim.keymap.set("i", lhs, function()
        local keys
        if M.backend_name() == "native" then
          keys = require("mistral-lsp.native").expr(action, buf)
        else
          keys = ghost_expr(action, buf)
        end
        return keys or lhs
      end, { buffer = buf, expr = true, desc = "mistral-lsp: " .. descriptions[action] })
    end
  end
end

--- Configures and starts the server. Every option is described in `:help mistral-lsp-options`.
---@param opts table|nil
function M.setup(opts)
  if vim.fn.has("nvim-0.10") == 0 then
    vim.notify("mistral-lsp: Neovim 0.10 or newer is needed", vim.log.levels.ERROR)
    return
  end
  local options, problems = config.resolve(opts)
  config.options = options
  if #problems > 0 then
    vim.notify("mistral-lsp: " .. table.concat(problems, "; "), vim.log.levels.WARN)
  end
  M.did_setup = true

  local group = vim.api.nvim_create_augroup("mistral-lsp", { clear = true })
  local function highlight()
    vim.api.nvim_set_hl(0, "MistralLspGhostText", { link = "Comment", default = true })
  end
  highlight()
  vim.api.nvim_create_autocmd("ColorScheme", { group = group, callback = highlight })
  vim.api.nvim_create_autocmd("LspAttach", {
    group = group,
    callback = function(args)
      local c = vim.lsp.get_client_by_id(args.data.client_id)
      if c and c.name == client.name then
        backend().attach(args.buf, c.id)
        cursor.attach(args.buf, c.id)
        set_keymaps(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd("LspDetach", {
    group = group,
    callback = function(args)
      local c = vim.lsp.get_client_by_id(args.data.client_id)
      if c and c.name == client.name then
        backend().detach(args.buf)
        cursor.detach(args.buf)
      end
    end,
  })
  client.start(options)
end

--- :MistralLspRestart: stops the server (if it runs) and starts it again.
function M.restart()
  client.restart(config.options)
end

--- Whether a suggestion is shown in the buffer (the ghost text of 0.10 and 0.11 only).
function M.visible(buf)
  return M.backend_name() == "ghost" and require("mistral-lsp.ghost").visible(buf)
end

--- Accepts the suggestion shown, or its next word or line (`how` = "all", "word" or "line").
--- Returns false when none was shown. For your own mappings; not usable in an expr mapping.
function M.accept(how)
  local buf = vim.api.nvim_get_current_buf()
  if M.backend_name() == "native" then
    local action = ({ all = "accept", word = "accept_word", line = "accept_line" })[how or "all"]
    return require("mistral-lsp.native").expr(action, buf) ~= nil
  end
  return require("mistral-lsp.ghost").accept(buf, how)
end

--- The state of the server for the current buffer: { state, message, percent }, where state is
--- "off", "starting", "loading", "ready", "error" or "stopped".
function M.status_info(buf)
  local attached = client.clients({ bufnr = buf or vim.api.nvim_get_current_buf() })
  for _, c in ipairs(#attached > 0 and attached or client.clients()) do
    if client.states[c.id] then
      return vim.deepcopy(client.states[c.id])
    end
  end
  if client.crashed then
    return { state = "stopped", message = "the server stopped; run :MistralLspRestart" }
  end
  return { state = "off", message = "" }
end

--- A short status for statuslines: "" when no server runs, else for example
--- "mistral-lsp: loading 40%" or "mistral-lsp: ready". Redrawn on every change.
function M.status(buf)
  local info = M.status_info(buf)
  if info.state == "off" then
    return ""
  end
  local percent = (info.state == "loading" and info.percent) and (" %d%%"):format(info.percent) or ""
  return ("mistral-lsp: %s%s"):format(info.state, percent)
end

return M
