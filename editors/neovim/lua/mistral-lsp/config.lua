-- Options of the Neovim plugin: the defaults, and merging and checking what setup() is given.
-- Every option is documented in doc/mistral-lsp.txt (`:help mistral-lsp-options`).
local M = {}

-- The defaults. Keep this table and the help file in step: a test compares them.
M.defaults = {
  -- The server command: a path, a name looked up on PATH, or a list with arguments.
  cmd = { "mistral-lsp" },
  -- Environment variables for the server process (for example MISTRAL_LSP_MODEL).
  cmd_env = {},
  -- File types the server attaches to.
  filetypes = {
    "bash", "c", "cpp", "cs", "css", "elixir", "go", "haskell", "html", "java", "javascript",
    "javascriptreact", "json", "kotlin", "lua", "markdown", "ocaml", "php", "python", "ruby",
    "rust", "scala", "scss", "sh", "sql", "swift", "toml", "typescript", "typescriptreact",
    "vim", "yaml", "zig", "zsh",
  },
  -- Files that mark a project root (the server also works on single files).
  root_markers = { ".git" },
  -- Server settings (section `mistralLsp`), sent as init_options and as workspace settings.
  settings = {},
  -- Request a suggestion while typing; with false, only the next/previous keys request one.
  auto_trigger = true,
  -- Milliseconds of quiet typing before a suggestion is requested.
  debounce_ms = 150,
  -- Use Neovim's own vim.lsp.inline_completion where it exists (0.12 and newer).
  builtin = true,
  -- Insert-mode keys; false turns one off.
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-w>",
    accept_line = "<M-l>",
    dismiss = "<C-]>",
    next = "<M-]>",
    prev = "<M-[>",
  },
  -- Milliseconds :checkhealth waits for the model when it has to start a server to check it.
  health_timeout_ms = 30000,
}

-- The options in use: the defaults until setup() is called.
M.options = vim.deepcopy(M.defaults)

local kinds = {
  cmd = { "string", "table" },
  cmd_env = "table",
  filetypes = "table",
  root_markers = "table",
  settings = "table",
  auto_trigger = "boolean",
  debounce_ms = "number",
  builtin = "boolean",
  keymaps = "table",
  health_timeout_ms = "number",
}

--- Merges user options over the defaults. Returns the options and a list of problems (unknown or
--- badly typed keys are reported and replaced by their default).
---@param user table|nil
---@return table options, string[] problems
function M.resolve(user)
  local problems = {}
  local options = vim.deepcopy(M.defaults)
  for key, value in pairs(user or {}) do
    local kind = kinds[key]
    if kind == nil then
      table.insert(problems, ("unknown option `%s`"):format(key))
    elseif not vim.tbl_contains(type(kind) == "table" and kind or { kind }, type(value)) then
      local expected = type(kind) == "table" and table.concat(kind, " or ") or kind
      table.insert(problems, ("option `%s` should be a %s, not a %s"):format(key, expected, type(value)))
    elseif key == "keymaps" then
      for name, lhs in pairs(value) do
        if M.defaults.keymaps[name] == nil then
          table.insert(problems, ("unknown keymap `%s`"):format(name))
        elseif lhs ~= false and type(lhs) ~= "string" then
          table.insert(problems, ("keymap `%s` should be a string or false"):format(name))
        else
          options.keymaps[name] = lhs
        end
      end
    elseif key == "cmd" and type(value) == "string" then
      options.cmd = { value }
    else
      options[key] = value
    end
  end
  return options, problems
end

return M
