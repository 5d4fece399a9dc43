-- Minimal init for the tests: the plugin on the runtimepath and nothing from the user.
vim.opt.runtimepath:prepend(assert(vim.env.PLUGIN_ROOT, "PLUGIN_ROOT is not set"))
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.cmd("filetype plugin indent on")
-- The Python ftplugin probes the python3 provider, which takes seconds; no provider is needed.
for _, provider in ipairs({ "python3", "node", "perl", "ruby" }) do
  vim.g["loaded_" .. provider .. "_provider"] = 0
end
