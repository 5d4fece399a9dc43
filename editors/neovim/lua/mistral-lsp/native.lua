-- Suggestions on Neovim 0.12 and newer through the built-in vim.lsp.inline_completion; this
-- module adds accept word, accept line and dismiss on top of it.
local text = require("mistral-lsp.text")

local M = {}

local function ic()
  return vim.lsp.inline_completion
end

--- Turns on built-in inline completion for a buffer.
function M.attach(buf, _client_id)
  ic().enable(true, { bufnr = buf })
end

function M.detach(_buf) end

--- The item to insert for a partial accept: what was typed before plus the next word or line.
--- `before` is the line up to the cursor, `cursor_col` the cursor's byte column.
---@param item table vim.lsp.inline_completion.Item
---@param how "all"|"word"|"line"
function M.partial(item, how, before, cursor_col)
  local insert = item.insert_text
  if type(insert) == "table" then
    local ok, parsed = pcall(function()
      return tostring(require("vim.lsp._snippet_grammar").parse(insert.value))
    end)
    insert = ok and parsed or insert.value
  end
  local typed
  if item.range == nil then
    typed = 0 -- Inserted at the cursor.
  elseif type(item.range.to_extmark) == "function" then
    local _, start_col = item.range:to_extmark()
    typed = math.max(0, cursor_col - start_col)
  else
    typed = text.typed_length(before, insert)
  end
  local copy = vim.tbl_extend("force", {}, item)
  copy.insert_text = insert:sub(1, typed) .. text.part(insert:sub(typed + 1), how)
  return setmetatable(copy, getmetatable(item))
end

--- Keys for an insert-mode expr mapping: "" when the action was taken, nil to fall back.
function M.expr(action, buf)
  if action == "next" or action == "prev" then
    ic().select({ bufnr = buf, count = action == "next" and 1 or -1 })
    return ""
  end
  local opts = { bufnr = buf }
  if action == "dismiss" then
    opts.on_accept = function()
      return nil
    end
  elseif action == "accept_word" or action == "accept_line" then
    local how = action == "accept_word" and "word" or "line"
    local col = vim.api.nvim_win_get_cursor(0)[2]
    local before = vim.api.nvim_get_current_line():sub(1, col)
    opts.on_accept = function(item)
      return M.partial(item, how, before, col)
    end
  end
  -- get() applies the item later (it is safe in expr mappings) and says whether one was shown.
  return ic().get(opts) and "" or nil
end

return M
