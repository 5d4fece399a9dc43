-- End-to-end: :MistralLspReview with the real server and model: the findings become diagnostics
-- on lines of the buffer, "Review this function" is a code action, and a finding's quick fix
-- applies through vim.lsp.buf.code_action's machinery.
local H = dofile(vim.env.TEST_DIR .. "/helpers.lua")
local mistral = require("mistral-lsp")
local client = require("mistral-lsp.client")
local review = require("mistral-lsp.review")

H.capture_notify()
mistral.setup({ cmd = { vim.env.MISTRAL_LSP_BIN }, settings = H.settings() })

local dir = H.tmpdir()
local buf, lsp

local function ours()
  return vim.tbl_filter(function(d) return d.source == "mistral-lsp" end, vim.diagnostic.get(buf))
end

H.test("the server offers 'Review this function' as a code action", function()
  vim.fn.writefile({
    "def average(values):",
    "    total = 0",
    "    for v in values:",
    "        total += v",
    "    return total / (len(values) - 1)",
  }, dir .. "/avg.py")
  vim.cmd.edit(dir .. "/avg.py")
  buf = vim.api.nvim_get_current_buf()
  lsp = H.wait_until(function() return client.clients({ bufnr = buf })[1] end, 10000, "the client to attach")
  H.wait_until(function() return mistral.status_info().state == "ready" end, 120000, "the model to load")
  vim.api.nvim_win_set_cursor(0, { 2, 4 })
  local params = vim.lsp.util.make_range_params(0, lsp.offset_encoding)
  params.context = { diagnostics = {} }
  local answer = lsp:request_sync("textDocument/codeAction", params, 10000, buf)
  local titles = vim.tbl_map(function(a) return a.title end, answer.result)
  H.truthy(vim.tbl_contains(titles, "Review this function"), "the action: " .. vim.inspect(titles))
end)

H.test(":MistralLspReview puts the findings in the buffer as diagnostics", function()
  local done
  review.review(nil, nil, function(err, result) done = { err = err, result = result } end)
  H.wait_until(function() return done end, 240000, "the review to finish")
  H.eq(nil, done.err, "no error")
  H.wait_until(function() return #ours() == done.result.findings end, 5000, "one diagnostic per finding")
  local count = vim.api.nvim_buf_line_count(buf)
  for _, d in ipairs(ours()) do
    H.truthy(d.lnum < count and d.end_lnum < count, "on lines of the buffer: " .. vim.inspect(d))
    H.truthy(d.message ~= "", "a message")
  end
end)

H.test("a finding's quick fix applies, and the edited line loses its diagnostic", function()
  -- What a 0.5B model finds varies: this checks the fixes it gives, if any.
  for _, d in ipairs(ours()) do
    local params = {
      textDocument = { uri = vim.uri_from_bufnr(buf) },
      range = { start = { line = d.lnum, character = 0 }, ["end"] = { line = d.lnum, character = 0 } },
      context = { diagnostics = {}, only = { "quickfix" } },
    }
    local answer = lsp:request_sync("textDocument/codeAction", params, 10000, buf)
    local fix = (answer.result or {})[1]
    if fix and fix.edit then
      local before = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      vim.lsp.util.apply_workspace_edit(fix.edit, lsp.offset_encoding)
      H.truthy(not vim.deep_equal(before, vim.api.nvim_buf_get_lines(buf, 0, -1, false)), "the buffer changed")
      H.wait_until(function()
        return #vim.tbl_filter(function(o) return o.lnum == d.lnum end, ours()) == 0
      end, 5000, "the fixed line's diagnostic to go")
      return
    end
  end
end)

H.run()
