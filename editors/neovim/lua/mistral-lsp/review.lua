-- :MistralLspReview: the server reviews a range, or the whole buffer, and publishes its findings
-- as diagnostics (vim.diagnostic shows them; vim.lsp.buf.code_action() offers their quick fixes).
-- This only starts the review and says how it went.
local client = require("mistral-lsp.client")

local M = {}

--- Reviews lines `first`..`last` (1-based) of the current buffer, or with no lines the whole
--- buffer. `on_done(err, result)` is called when the review ends (tests use it).
function M.review(first, last, on_done)
  local buf = vim.api.nvim_get_current_buf()
  local c = client.clients({ bufnr = buf })[1]
  if not c then
    vim.notify("mistral-lsp: not attached to this buffer", vim.log.levels.WARN)
    return
  end
  local argument = { uri = vim.uri_from_bufnr(buf) }
  if first then
    local last_text = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
    argument.range = {
      start = { line = first - 1, character = 0 },
      ["end"] = { line = last - 1, character = vim.str_utfindex(last_text, c.offset_encoding or "utf-16") },
    }
  end
  vim.notify("mistral-lsp: reviewing…", vim.log.levels.INFO)
  local ok = c:request("workspace/executeCommand", { command = "mistral-lsp.review", arguments = { argument } },
    function(err, result)
      if err then
        vim.notify("mistral-lsp review: " .. (err.message or tostring(err)), vim.log.levels.WARN)
      else
        local n = result.findings
        vim.notify(("mistral-lsp review: %d finding%s"):format(n, n == 1 and "" or "s"), vim.log.levels.INFO)
      end
      if on_done then
        on_done(err, result)
      end
    end, buf)
  if not ok then
    vim.notify("mistral-lsp: the server is not running", vim.log.levels.WARN)
  end
end

return M
