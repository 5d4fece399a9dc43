-- Neovim init for the README screenshot: the plugin with the test model in a fixed-size tmux
-- pane; it writes marker files so that screenshot.sh knows when the ghost text is on screen.
vim.opt.runtimepath:prepend(assert(vim.env.PLUGIN_ROOT, "PLUGIN_ROOT is not set"))
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.g.loaded_python3_provider = 0
vim.cmd("filetype plugin indent on")
vim.o.termguicolors = true
vim.o.number = true
vim.o.laststatus = 2
vim.o.showmode = true
vim.o.statusline = " %t %= %{v:lua.require'mistral-lsp'.status()} "

require("mistral-lsp").setup({
  cmd = { vim.env.MISTRAL_LSP_BIN },
  settings = {
    model = vim.env.MISTRAL_LSP_TEST_MODEL,
    threads = 2,
    contextSize = 2048,
    completion = { maxTokens = 48 },
  },
})

local markers = assert(vim.env.MARKERS, "MARKERS is not set")
local function mark(name, text)
  vim.fn.writefile(vim.split(text or "", "\n"), markers .. "/" .. name)
end

vim.api.nvim_create_autocmd("User", {
  pattern = "MistralLspStatus",
  callback = function()
    if require("mistral-lsp").status_info().state == "ready" then
      mark("ready")
    end
  end,
})

-- Once ghost text is shown, redraw and say so (with its text, for the check).
local ns = require("mistral-lsp.ghost").ns
local timer = vim.uv.new_timer()
timer:start(100, 100, vim.schedule_wrap(function()
  local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
  if #marks > 0 then
    timer:stop()
    vim.cmd("redraw")
    mark("ghost", marks[1][4].virt_text[1][1])
  end
end))
