-- End-to-end and deterministic: :MistralLspReview against the server's test backend (a test build
-- of the server; it finds one "bug" on the first line holding the word `bug`, and its fix puts
-- `fixed` there). The diagnostic lands on that exact line, moves with an edit above it, and the
-- quick fix applies through vim.lsp.buf.code_action, taking the diagnostic with it.
local H = dofile(vim.env.TEST_DIR .. "/helpers.lua")
local mistral = require("mistral-lsp")
local client = require("mistral-lsp.client")

H.capture_notify()
mistral.setup({ cmd = { vim.env.MISTRAL_LSP_BIN }, settings = H.settings({ model = "test:checksum" }) })

local dir = H.tmpdir()
local buf

local function ours()
  return vim.tbl_filter(function(d) return d.source == "mistral-lsp" end, vim.diagnostic.get(buf))
end

H.test(":MistralLspReview puts the finding on the line it is about", function()
  vim.fn.writefile({
    "def clamp(x, low, high):",
    "    if x < low:",
    "        return low",
    "    return x  # bug: high is never used",
  }, dir .. "/clamp.py")
  vim.cmd.edit(dir .. "/clamp.py")
  buf = vim.api.nvim_get_current_buf()
  H.wait_until(function() return client.clients({ bufnr = buf })[1] end, 10000, "the client to attach")
  H.wait_until(function() return mistral.status_info().state == "ready" end, 30000,
    "the test backend to load (MISTRAL_LSP_BIN must be a test build: cargo test builds target/debug/mistral-lsp)")
  vim.cmd("MistralLspReview")
  local found = H.wait_until(function() return #ours() > 0 and ours() end, 30000, "the review's diagnostics")
  H.eq(1, #found, "one finding")
  local d = found[1]
  H.eq({ 3, 4, 3 }, { d.lnum, d.col, d.end_lnum }, "on the line that holds `bug`, from its first character")
  H.eq({ "bug", vim.diagnostic.severity.WARN }, { d.code, d.severity }, "category as code, a warning")
end)

H.test("the diagnostic moves down with a line inserted above it", function()
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { "import math" })
  H.wait_until(function() return ours()[1] and ours()[1].lnum == 4 end, 10000, "the diagnostic on line 5")
end)

H.test("the quick fix applies from vim.lsp.buf.code_action and the diagnostic goes", function()
  vim.api.nvim_win_set_cursor(0, { 5, 6 })
  vim.lsp.buf.code_action({ context = { only = { "quickfix" } }, apply = true })
  H.wait_until(function() return H.lines(buf)[5] == "    return x  # fixed: high is never used" end, 10000,
    "the fixed line in the buffer")
  H.eq("import math", H.lines(buf)[1], "the rest of the buffer as it was")
  H.wait_until(function() return #ours() == 0 end, 10000, "the fixed line's diagnostic to go")
end)

H.run()
