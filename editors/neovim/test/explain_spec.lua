-- End-to-end: :MistralLspExplain with the real server and model: a floating markdown window
-- that fills as the explanation streams, the code action list offering it, and q that closes
-- the window and stops the job.
local H = dofile(vim.env.TEST_DIR .. "/helpers.lua")
local mistral = require("mistral-lsp")
local client = require("mistral-lsp.client")
local explain = require("mistral-lsp.explain")

H.capture_notify()
mistral.setup({ cmd = { vim.env.MISTRAL_LSP_BIN }, settings = H.settings() })

local dir = H.tmpdir()
local buf, lsp

H.test("the server offers 'Explain this code' as a code action", function()
  vim.fn.writefile({ "def add(a, b):", "    total = a + b", "    return total" }, dir .. "/add.py")
  vim.cmd.edit(dir .. "/add.py")
  buf = vim.api.nvim_get_current_buf()
  lsp = H.wait_until(function() return client.clients({ bufnr = buf })[1] end, 10000, "the client to attach")
  H.wait_until(function() return mistral.status_info().state == "ready" end, 120000, "the model to load")
  vim.api.nvim_win_set_cursor(0, { 2, 4 })
  local params = vim.lsp.util.make_range_params(0, lsp.offset_encoding)
  params.context = { diagnostics = {} }
  local answer = lsp:request_sync("textDocument/codeAction", params, 10000, buf)
  H.eq("Explain this code", answer.result[1].title, "the action")
end)

H.test(":MistralLspExplain streams into a markdown float, and q closes it and stops the job", function()
  vim.api.nvim_win_set_cursor(0, { 2, 4 })
  vim.cmd("MistralLspExplain")
  local current = H.truthy(explain.current, "an explanation on screen")
  H.eq("markdown", vim.bo[current.buf].filetype, "the float's filetype")
  -- Text from the model arrives while the job still runs.
  H.wait_until(function()
    return current.id ~= nil and H.lines(current.buf)[1] ~= "reading the code…"
  end, 120000, "the first words of the explanation")
  H.truthy(current.request_id, "the request is still running")
  local status = function()
    return lsp:request_sync("workspace/executeCommand", { command = "mistral-lsp.status" }, 10000, buf).result
  end
  local generated = status().generatedTokens
  vim.api.nvim_set_current_win(current.win)
  H.input("q")
  H.wait_until(function() return not vim.api.nvim_win_is_valid(current.win) end, 5000, "the float to close")
  H.eq(nil, explain.current, "nothing on screen")
  -- Stopped: the count of generated tokens stays where it was once the job has ended.
  H.sleep(1500)
  local after = status().generatedTokens
  H.sleep(1500)
  H.eq(after, status().generatedTokens, "no more tokens after q")
  H.truthy(after - generated < 640, "the job stopped before its 640-token limit")
end)

H.test(":MistralLspExplain on blank lines says there is nothing to explain", function()
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { "", "", "" })
  vim.cmd("4,5MistralLspExplain")
  local current = H.truthy(explain.current, "a float")
  H.wait_until(function() return H.lines(current.buf)[1]:find("nothing to explain") ~= nil end, 10000, "the message")
  vim.api.nvim_set_current_win(current.win)
  H.input("q")
end)

H.run()
