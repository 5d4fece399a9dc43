-- End-to-end: setup({}) with no options finds mistral-lsp on PATH, leaves the model to the
-- environment (MISTRAL_LSP_MODEL), shows suggestions; :checkhealth checks the model on its own.
local H = dofile(vim.env.TEST_DIR .. "/helpers.lua")
local mistral = require("mistral-lsp")
local client = require("mistral-lsp.client")

local notes = H.capture_notify()
-- What a user's shell would hold: the binary on PATH and the model in the environment.
vim.env.PATH = vim.env.MISTRAL_LSP_BIN_DIR .. ":" .. vim.env.PATH
vim.env.MISTRAL_LSP_MODEL = vim.env.MISTRAL_LSP_TEST_MODEL
vim.env.MISTRAL_LSP_THREADS = "2"
vim.env.MISTRAL_LSP_CONTEXT_SIZE = "2048"

H.test("setup({}) with no options", function()
  mistral.setup({})
  H.eq({}, notes, "no messages")
  H.eq("", mistral.status(), "status() before any server runs")
end)

H.test(":checkhealth with no server running starts one briefly to check the model", function()
  local report = H.checkhealth()
  H.truthy(not report:find("ERROR"), "no ERROR in the report")
  H.truthy(not report:find("WARNING"), "no WARNING in the report")
  H.truthy(report:find("OK binary found: " .. vim.env.MISTRAL_LSP_BIN, 1, true), "the binary from PATH")
  H.truthy(report:find("OK model ready: .*a short check"), "the model checked")
  H.eq({}, client.clients(), "the check's server is gone")
end)

H.test("a Python file gets the server from PATH, the model from MISTRAL_LSP_MODEL, and ghost text", function()
  local dir = H.tmpdir()
  vim.fn.writefile({ "def add(a, b):", '    """Return the sum of a and b."""', "    return" }, dir .. "/add.py")
  vim.cmd.edit(dir .. "/add.py")
  local buf = vim.api.nvim_get_current_buf()
  local lsp = H.wait_until(function() return client.clients({ bufnr = buf })[1] end, 10000, "the client")
  H.eq(vim.env.MISTRAL_LSP_BIN, lsp.config.cmd[1], "the binary found on PATH")
  H.wait_until(function() return mistral.status_info().state == "ready" end, 120000, "the model to load")
  local status = lsp:request_sync("workspace/executeCommand", { command = "mistral-lsp.status", arguments = {} }, 5000, buf)
  H.eq(vim.env.MISTRAL_LSP_TEST_MODEL, status.result.model, "the model from the environment")
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  H.input("A ")
  H.wait_until(function() return H.ghost(buf) end, 90000, "ghost text")
  H.truthy(vim.startswith(H.ghost(buf), "a + b"), "the suggestion: " .. H.ghost(buf))
  H.input("<Esc>")
  H.eq({}, notes, "no messages")
end)

H.run()
