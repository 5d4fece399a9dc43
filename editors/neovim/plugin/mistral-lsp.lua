-- Commands of mistral-lsp; the server itself starts with require("mistral-lsp").setup().
if vim.g.loaded_mistral_lsp then
  return
end
vim.g.loaded_mistral_lsp = true

vim.api.nvim_create_user_command("MistralLspRestart", function()
  require("mistral-lsp").restart()
end, { desc = "Restart the mistral-lsp server" })

vim.api.nvim_create_user_command("MistralLspExplain", function(args)
  if args.range > 0 then
    require("mistral-lsp.explain").explain(args.line1, args.line2)
  else
    require("mistral-lsp.explain").explain()
  end
end, { range = true, desc = "Explain the selected lines, or the function around the cursor" })

vim.api.nvim_create_user_command("MistralLspReview", function(args)
  if args.range > 0 then
    require("mistral-lsp.review").review(args.line1, args.line2)
  else
    require("mistral-lsp.review").review()
  end
end, { range = true, desc = "Review the selected lines, or the whole buffer; findings become diagnostics" })
