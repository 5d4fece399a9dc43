-- Minimal init for the tests: the plugin on the runtimepath and nothing from the user.
vim.opt.runtimepath:prepend(assert(vim.env.PLUGIN_ROOT, "PLUGIN_ROOT is not set"))
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.cmd("filetype plugin indent on")
