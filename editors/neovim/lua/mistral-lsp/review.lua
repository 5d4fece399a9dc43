-- :MistralLspReview: the server reviews a range, or the whole buffer, and publishes its findings
-- as diagnostics (vim.diagnostic shows them; vim.lsp.buf.code_action() offers their quick fixes).
-- This only starts the review and says how it went.
local client = require("mistral-lsp.client")

local M = {}

--- Reviews lines `first`..`last` (1-based) of the current buffer, or with no lines the whole
--- buffer. `on_done(err, result)` is called when the review ends (tests use it).
function M.review(first, last, on_done)
  local buf, c = client.current()
  if not c then
    return
  end
  local argument = { uri = vim.uri_from_bufnr(buf) }
  if first then
    argument.range = client.lines_range(c, buf, first, last)
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
