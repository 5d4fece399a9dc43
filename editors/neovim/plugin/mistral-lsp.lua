-- Commands of mistral-lsp; the server itself starts with require("mistral-lsp").setup().
if vim.g.loaded_mistral_lsp then
  return
end
vim.g.loaded_mistral_lsp = true

vim.api.nvim_create_user_command("MistralLspRestart", function()
  require("mistral-lsp").restart()
end, { desc = "Restart the mistral-lsp server" })
