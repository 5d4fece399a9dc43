-- Test harness: runs a spec's tests in a coroutine so that Neovim's main loop (typed keys, LSP
-- messages, timers, autocmds) keeps running while a test waits; every wait has a timeout.
local H = {}

local tests = {}
local results_file = assert(vim.env.TEST_RESULTS, "TEST_RESULTS is not set")

local function record(line)
  local f = assert(io.open(results_file, "a"))
  f:write(line, "\n")
  f:close()
  io.stderr:write(line, "\n")
end

--- Declares a test.
function H.test(name, fn)
  table.insert(tests, { name = name, fn = fn })
end

--- Lets the main loop run for `ms` milliseconds.
function H.sleep(ms)
  local co = coroutine.running()
  vim.defer_fn(function()
    assert(coroutine.resume(co))
  end, ms)
  coroutine.yield()
end

--- Waits until `cond()` is true, letting the main loop run; fails after `timeout` ms.
function H.wait_until(cond, timeout, what)
  local deadline = vim.uv.now() + timeout
  while true do
    local ok, value = pcall(cond)
    if ok and value then
      return value
    end
    if vim.uv.now() > deadline then
      error(("timed out after %d ms waiting for %s%s"):format(timeout, what, ok and "" or (": " .. tostring(value))), 2)
    end
    H.sleep(20)
  end
end

--- Types keys as a user would (nvim_input), then lets the main loop process them.
function H.input(keys)
  vim.api.nvim_input(keys)
  H.sleep(60)
end

--- Leaves insert mode (a failed test may have left Neovim in it).
function H.normal_mode()
  if vim.api.nvim_get_mode().mode ~= "n" then
    H.input("<Esc>")
  end
  H.wait_until(function() return vim.api.nvim_get_mode().mode == "n" end, 2000, "normal mode")
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(("%s:\n  expected: %s\n  actual:   %s"):format(what or "values differ", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.truthy(value, what)
  if not value then
    error(what or "expected a true value", 2)
  end
  return value
end

--- Records every vim.notify call (and still shows it on stderr).
function H.capture_notify()
  local notes = {}
  vim.notify = function(msg, level)
    table.insert(notes, { msg = msg, level = level or vim.log.levels.INFO })
    io.stderr:write(("notify[%s]: %s\n"):format(level, msg))
  end
  return notes
end

--- The notes of at least `level` (default ERROR).
function H.errors(notes, level)
  return vim.tbl_filter(function(n)
    return n.level >= (level or vim.log.levels.ERROR)
  end, notes)
end

--- The ghost text shown in `buf` (virt_text and virt_lines joined with newlines) and its extmark.
function H.ghost(buf)
  local ns = require("mistral-lsp.ghost").ns
  local marks = vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local function join(chunks)
    return table.concat(vim.tbl_map(function(c) return c[1] end, chunks or {}))
  end
  local details = marks[1][4]
  local lines = { join(details.virt_text) }
  for _, chunks in ipairs(details.virt_lines or {}) do
    table.insert(lines, join(chunks))
  end
  return table.concat(lines, "\n"), marks[1]
end

--- Runs :checkhealth mistral-lsp, closes its buffer and returns the report.
function H.checkhealth()
  vim.cmd("checkhealth mistral-lsp")
  local buf = vim.api.nvim_get_current_buf()
  local report = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
  io.stderr:write(report, "\n")
  pcall(vim.cmd, "tabclose")
  pcall(vim.api.nvim_buf_delete, buf, { force = true })
  return report
end

function H.lines(buf)
  return vim.api.nvim_buf_get_lines(buf or 0, 0, -1, false)
end

--- A fresh folder for files of this spec.
function H.tmpdir()
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  return dir
end

--- The settings every test server uses: the small real model, 2 threads, a small context.
function H.settings(extra)
  return vim.tbl_deep_extend("force", {
    model = assert(vim.env.MISTRAL_LSP_TEST_MODEL, "MISTRAL_LSP_TEST_MODEL is not set"),
    threads = 2,
    contextSize = 2048,
    completion = { maxTokens = 32 },
  }, extra or {})
end

--- Runs the declared tests one after the other, records the results and quits Neovim.
function H.run()
  local co = coroutine.create(function()
    for _, t in ipairs(tests) do
      local started = vim.uv.now()
      local ok, err = xpcall(t.fn, debug.traceback)
      local ms = vim.uv.now() - started
      if ok then
        record(("PASS %s (%d ms)"):format(t.name, ms))
      else
        record(("FAIL %s (%d ms)\n    %s"):format(t.name, ms, (tostring(err):gsub("\n", "\n    "))))
      end
    end
    record("DONE")
    vim.schedule(function()
      vim.cmd("qa!")
    end)
  end)
  vim.schedule(function()
    assert(coroutine.resume(co))
  end)
end

return H
