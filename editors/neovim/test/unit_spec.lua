-- Unit tests without a server: options, text helpers, the 0.10 and 0.12 code paths (with
-- vim.fn.has and vim.lsp stubbed), the help file against the options and the server's schema,
-- and the plugin layout for packpath and lazy.nvim installs.
local H = dofile(vim.env.TEST_DIR .. "/helpers.lua")
local config = require("mistral-lsp.config")
local text = require("mistral-lsp.text")
local root = vim.env.PLUGIN_ROOT

-- Runs `fn` with some of vim.fn.has's answers replaced, and vim.lsp functions stubbed.
local function with_stubs(has, lsp, fn)
  local real_has = vim.fn.has
  local saved = {}
  vim.fn.has = function(feature)
    if has[feature] ~= nil then
      return has[feature] and 1 or 0
    end
    return real_has(feature)
  end
  for k, v in pairs(lsp) do
    saved[k] = vim.lsp[k]
    vim.lsp[k] = v
  end
  local ok, err = pcall(fn)
  vim.fn.has = real_has
  for k in pairs(lsp) do
    vim.lsp[k] = saved[k]
  end
  if not ok then
    error(err, 0)
  end
end

H.test("options: defaults, overrides, and problems reported with the default kept", function()
  local options, problems = config.resolve(nil)
  H.eq(config.defaults, options, "no options")
  H.eq({}, problems, "no problems")
  options, problems = config.resolve({ cmd = "/x/mistral-lsp", keymaps = { accept = "<C-y>", next = false }, debounce_ms = 50 })
  H.eq({ "/x/mistral-lsp" }, options.cmd, "a string cmd becomes a list")
  H.eq("<C-y>", options.keymaps.accept, "a key overridden")
  H.eq(false, options.keymaps.next, "a key turned off")
  H.eq("<M-w>", options.keymaps.accept_word, "other keys keep their default")
  H.eq(50, options.debounce_ms, "debounce_ms")
  H.eq({}, problems, "no problems")
  options, problems = config.resolve({ colour = "red", debounce_ms = "fast", keymaps = { accept_all = "x" } })
  H.eq(150, options.debounce_ms, "the default kept")
  table.sort(problems)
  H.eq({ "option `debounce_ms` should be a number, not a string", "unknown keymap `accept_all`", "unknown option `colour`" },
    problems, "problems")
end)

H.test("text: next word, next line, where inserted text ends", function()
  for _, case in ipairs({
    { "a + b", "a" }, { " + b", " +" }, { " b", " b" }, { "(x)", "(" }, { "\n    return x", "\n    return" },
    { "   ", "   " }, { "foo_bar.baz", "foo_bar" },
  }) do
    H.eq(case[2], text.next_word(case[1]), "next_word " .. vim.inspect(case[1]))
  end
  for _, case in ipairs({
    { "a + b\n\ndef f():", "a + b" }, { "\n\ndef f():", "\n" }, { "\ndef f():\n  pass", "\ndef f():" }, { "x", "x" },
  }) do
    H.eq(case[2], text.next_line(case[1]), "next_line " .. vim.inspect(case[1]))
  end
  H.eq({ 3, 7 }, { text.end_of("abc", 3, 4) }, "one line")
  H.eq({ 5, 2 }, { text.end_of("abc\n\nde", 3, 4) }, "three lines")
  H.eq(7, text.typed_length("    return ", "return a + b"), "typed part found")
  H.eq(0, text.typed_length("x = (", "a)"), "nothing typed")
end)

H.test("0.10 path: vim.lsp.start from a FileType autocmd, never vim.lsp.config", function()
  local client = require("mistral-lsp.client")
  local started, configured = {}, false
  local dir = H.tmpdir()
  vim.fn.mkdir(dir .. "/proj/.git", "p")
  vim.fn.writefile({ "x = 1" }, dir .. "/proj/a.py")
  with_stubs({ ["nvim-0.11"] = false }, {
    start = function(cfg, opts)
      table.insert(started, { cfg = cfg, opts = opts })
      return 1
    end,
    config = function() configured = true end,
    enable = function() configured = true end,
  }, function()
    H.eq("start", client.strategy(), "strategy on 0.10")
    local options = config.resolve({ cmd = { vim.env.MISTRAL_LSP_BIN }, settings = { threads = 2 } })
    H.truthy(client.start(options), "started")
    vim.cmd.edit(dir .. "/proj/a.py")
    started.buf = vim.api.nvim_get_current_buf()
    vim.cmd.edit(dir .. "/notes.txt") -- not a configured file type
  end)
  H.eq(false, configured, "vim.lsp.config/enable not used")
  H.eq(1, #started, "one start, for the Python buffer")
  local cfg = started[1].cfg
  H.eq("mistral_lsp", cfg.name, "name")
  H.eq({ vim.env.MISTRAL_LSP_BIN }, cfg.cmd, "cmd")
  H.eq(vim.fs.normalize(vim.uv.fs_realpath(dir .. "/proj")), vim.fs.normalize(vim.uv.fs_realpath(cfg.root_dir)), "root_dir from .git")
  H.eq({ threads = 2 }, cfg.init_options, "init_options")
  H.eq({ mistralLsp = { threads = 2 } }, cfg.settings, "settings")
  H.eq({ dynamicRegistration = false }, cfg.capabilities.textDocument.inlineCompletion, "inline completion capability")
  H.truthy(cfg.capabilities.textDocument.completion, "Neovim's own capabilities kept")
  H.eq(started.buf, started[1].opts.bufnr, "started for the Python buffer")
  vim.api.nvim_del_augroup_by_name("mistral-lsp.start")
end)

H.test("0.11 path: vim.lsp.config and vim.lsp.enable", function()
  local client = require("mistral-lsp.client")
  local calls = {}
  with_stubs({ ["nvim-0.11"] = true }, {
    start = function() table.insert(calls, "start") end,
    config = function(name, cfg) table.insert(calls, { "config", name, cfg.filetypes, cfg.root_markers }) end,
    enable = function(name) table.insert(calls, { "enable", name }) end,
  }, function()
    H.eq("config", client.strategy(), "strategy on 0.11")
    H.truthy(client.start(config.resolve({ cmd = { vim.env.MISTRAL_LSP_BIN }, filetypes = { "python" } })), "started")
  end)
  H.eq({ { "config", "mistral_lsp", { "python" }, { ".git" } }, { "enable", "mistral_lsp" } }, calls, "calls")
end)

H.test("0.12 path: the built-in inline completion drives the keys", function()
  local mistral = require("mistral-lsp")
  local native = require("mistral-lsp.native")
  local calls = {}
  local fake = {
    enable = function(on, filter) table.insert(calls, { "enable", on, filter.bufnr }) end,
    get = function(opts)
      table.insert(calls, { "get", opts.on_accept ~= nil })
      if opts.on_accept then
        calls.accepted = opts.on_accept({ insert_text = "a + b\nc", client_id = 1 })
      end
      return calls.shown
    end,
    select = function(opts) table.insert(calls, { "select", opts.count }) end,
  }
  vim.lsp.inline_completion = fake
  with_stubs({ ["nvim-0.12"] = true }, {}, function()
    H.eq("native", mistral.backend_name(), "the built-in on 0.12")
    config.options.builtin = false
    H.eq("ghost", mistral.backend_name(), "builtin = false")
    config.options.builtin = true
    native.attach(7, 1)
    H.eq(nil, native.expr("accept", 7), "nothing shown: the key falls back")
    calls.shown = true
    H.eq("", native.expr("accept", 7), "accept")
    H.eq("", native.expr("accept_word", 7), "accept word")
    H.eq("a", calls.accepted.insert_text, "accept word inserts one word")
    H.eq("", native.expr("accept_line", 7), "accept line")
    H.eq("a + b", calls.accepted.insert_text, "accept line inserts one line")
    H.eq("", native.expr("dismiss", 7), "dismiss")
    H.eq(nil, calls.accepted, "dismiss inserts nothing")
    H.eq("", native.expr("next", 7), "next")
    H.eq("", native.expr("prev", 7), "prev")
  end)
  vim.lsp.inline_completion = nil
  H.eq({ { "enable", true, 7 }, { "get", false }, { "get", false }, { "get", true }, { "get", true }, { "get", true },
    { "select", 1 }, { "select", -1 } }, vim.list_slice(calls, 1), "calls")
  -- Partial accepts keep what the item's range already covers.
  local range = { to_extmark = function() return 0, 4 end }
  H.eq("return a", native.partial({ insert_text = "return a + b", range = range }, "word", "    return ", 11).insert_text, "with a range")
  H.eq("return a", native.partial({ insert_text = "return a + b", range = {} }, "word", "    return ", 11).insert_text, "an unknown range")
  H.eq("a", native.partial({ insert_text = "a + b" }, "word", "    return ", 11).insert_text, "no range")
end)

-- The text of the help file from a tag to the next tag of the plugin.
local help = table.concat(vim.fn.readfile(root .. "/doc/mistral-lsp.txt"), "\n")
local function entry(tag)
  local at = help:find("*" .. tag .. "*", 1, true)
  if not at then
    return nil
  end
  local next_tag = help:find("*mistral-lsp", at + #tag + 2, true) or #help
  return help:sub(at, next_tag)
end

H.test("the help file documents every option with its default", function()
  for key, default in pairs(config.defaults) do
    local doc = H.truthy(entry("mistral-lsp-opt-" .. key), "no help entry for option " .. key)
    if type(default) ~= "table" then
      H.truthy(doc:find(("default `%s`"):format(tostring(default)), 1, true), "the default of " .. key)
    end
  end
  for name, lhs in pairs(config.defaults.keymaps) do
    H.truthy(help:find(("keymaps.%s%s`\"%s\"`"):format(name, (" "):rep(13 - #name), lhs), 1, true), "keymap " .. name)
  end
  H.truthy(entry("mistral-lsp-opt-filetypes"):find(table.concat(config.defaults.filetypes, " "):sub(1, 40), 1, true), "the file types")
end)

H.test("the help file documents every server setting of `mistral-lsp settings-schema`", function()
  local schema = vim.json.decode(table.concat(vim.fn.readfile(vim.env.MISTRAL_LSP_SCHEMA), "\n"))
  local keys = vim.tbl_map(function(k) return k:gsub("^mistralLsp%.", "") end, vim.tbl_keys(schema))
  H.truthy(#keys >= 12, "the schema has the settings")
  local documented = {}
  for key in help:gmatch("%*mistral%-lsp%-settings%.([%w%.]+)%*") do
    documented[key] = true
  end
  for full, spec in pairs(schema) do
    local key = full:gsub("^mistralLsp%.", "")
    local doc = H.truthy(entry("mistral-lsp-settings." .. key), "no help entry for server setting " .. key)
    documented[key] = nil
    local default = spec.default
    local shown = type(default) == "table" and "{}" or type(default) == "string" and ('"' .. default .. '"') or tostring(default)
    if #shown < 20 then
      H.truthy(doc:find("default `" .. shown .. "`", 1, true), ("the default of %s (%s)"):format(key, shown))
    end
    for _, choice in ipairs(spec.enum or {}) do
      H.truthy(doc:find('`"' .. choice .. '"`', 1, true), ("the choice %s of %s"):format(choice, key))
    end
  end
  H.eq({}, vim.tbl_keys(documented), "documented settings the server does not have")
end)

H.test("doc/tags is up to date", function()
  local dir = H.tmpdir()
  vim.fn.writefile(vim.fn.readfile(root .. "/doc/mistral-lsp.txt"), dir .. "/mistral-lsp.txt")
  vim.cmd.helptags(vim.fn.fnameescape(dir))
  H.eq(vim.fn.readfile(dir .. "/tags"), vim.fn.readfile(root .. "/doc/tags"), "doc/tags (run :helptags editors/neovim/doc)")
end)

H.test("a packpath install (pack/*/start) loads the plugin, its command and its help", function()
  local dir = H.tmpdir()
  vim.fn.mkdir(dir .. "/pack/test/start", "p")
  vim.uv.fs_symlink(root, dir .. "/pack/test/start/mistral-lsp")
  local check = table.concat({
    "local ok = pcall(require, 'mistral-lsp')",
    "local help = pcall(vim.cmd.help, 'mistral-lsp-options')",
    "io.stdout:write(vim.json.encode({ require = ok, command = vim.fn.exists(':MistralLspRestart') == 2, help = help, health = #vim.api.nvim_get_runtime_file('lua/mistral-lsp/health.lua', false) }))",
  }, "; ")
  local result = vim.system({ vim.env.NVIM_BIN, "--headless", "-u", "NORC", "-i", "NONE", "--cmd", "set packpath^=" .. dir .. " rtp-=" .. root,
    "-c", "lua " .. check, "-c", "qa!" }, { text = true, env = { XDG_CONFIG_HOME = dir .. "/config", XDG_DATA_HOME = dir .. "/data" } }):wait(20000)
  H.eq({ require = true, command = true, help = true, health = 1 }, vim.json.decode(result.stdout), "in a fresh Neovim: " .. result.stderr)
end)

H.test("lazy.nvim finds the main module (one module under lua/) and opts go to setup()", function()
  local mods = vim.fn.readdir(root .. "/lua")
  H.eq({ "mistral-lsp" }, mods, "the modules lazy.nvim looks at")
  H.eq("function", type(require("mistral-lsp").setup), "setup()")
end)

H.test("every Lua file starts with a comment line saying what it is for", function()
  local files = vim.fs.find(function(name) return name:match("%.lua$") end, { path = root, type = "file", limit = math.huge })
  files = vim.tbl_filter(function(f) return not f:find("/.test-cache/", 1, true) end, files)
  H.truthy(#files >= 10, "found the files")
  for _, file in ipairs(files) do
    local first = vim.fn.readfile(file, "", 1)[1] or ""
    H.truthy(first:match("^%-%- %S.+"), file .. " starts with: " .. first)
  end
end)

H.run()
