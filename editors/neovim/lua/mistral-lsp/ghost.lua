-- Ghost text for Neovim 0.10 and 0.11: asks the server for inline completions while typing and
-- draws the suggestion as an extmark (inline virt_text for the first line, virt_lines for more).
local text = require("mistral-lsp.text")

local api = vim.api
local M = {}

M.ns = api.nvim_create_namespace("mistral-lsp.ghost")

local METHOD = "textDocument/inlineCompletion"
local INVOKED, AUTOMATIC = 1, 2
local has_011 = vim.fn.has("nvim-0.11") == 1

-- Per buffer: client_id, timer, pending (the request in flight), items ({ text, replace_end }
-- each, text being what is left to insert at the cursor), index, invoked (items from an invoked
-- request), show_index (after cycling, "(2/3)" follows the text), row, col, tick (where and when
-- the items were shown).
local states = {}

local function options()
  return require("mistral-lsp.config").options
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function in_insert_mode(buf)
  return api.nvim_get_mode().mode:sub(1, 1) == "i" and api.nvim_get_current_buf() == buf
end

local function snippet_text(value)
  local ok, parsed = pcall(function()
    return tostring(require("vim.lsp._snippet_grammar").parse(value))
  end)
  return ok and parsed or value
end

-- Turns a response into items relative to the cursor: only what is left to type.
local function to_items(buf, client, result, row, col)
  local line = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  local items, seen = {}, {}
  for _, raw in ipairs(result and (result.items or result) or {}) do
    local insert = raw.insertText
    if type(insert) == "table" then
      insert = snippet_text(insert.value or "")
    end
    local typed, replace_end = "", nil
    if raw.range then
      local first, last = raw.range.start, raw.range["end"]
      if first.line ~= row or last.line ~= row then
        insert = nil -- Ranges over other lines do not come from this server; skip them.
      else
        local start_col = vim.lsp.util._get_line_byte_from_position(buf, first, client.offset_encoding)
        local end_col = vim.lsp.util._get_line_byte_from_position(buf, last, client.offset_encoding)
        typed = line:sub(start_col + 1, col)
        replace_end = end_col > col and end_col or nil
        if start_col > col then
          insert = nil
        end
      end
    end
    if type(insert) == "string" and insert:sub(1, #typed) == typed then
      local rest = insert:sub(#typed + 1)
      if rest ~= "" and not seen[rest] then
        seen[rest] = true
        table.insert(items, { text = rest, replace_end = replace_end })
      end
    end
  end
  return items
end

local function render(buf)
  local s = states[buf]
  api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  local item = s.items and s.items[s.index]
  if not item then
    return
  end
  local hl = "MistralLspGhostText"
  local lines = vim.split(item.text, "\n", { plain = true })
  local chunks = {}
  for _, line in ipairs(lines) do
    table.insert(chunks, { { line, hl } })
  end
  if s.show_index and #s.items > 1 then
    table.insert(chunks[#chunks], { (" (%d/%d)"):format(s.index, #s.items), hl })
  end
  api.nvim_buf_set_extmark(buf, M.ns, s.row, s.col, {
    virt_text = chunks[1],
    virt_text_pos = "inline",
    virt_lines = #chunks > 1 and { unpack(chunks, 2) } or nil,
    hl_mode = "combine",
  })
end

local function show(buf, items, index, invoked, show_index)
  local s = states[buf]
  s.items, s.index, s.invoked, s.show_index = items, index, invoked, show_index
  s.row, s.col = cursor()
  s.tick = api.nvim_buf_get_changedtick(buf)
  render(buf)
end

--- Hides the suggestion of a buffer.
function M.clear(buf)
  local s = states[buf]
  if s then
    s.items, s.index, s.invoked = nil, nil, false
    pcall(api.nvim_buf_clear_namespace, buf, M.ns, 0, -1)
  end
end

--- Stops the debounce timer and cancels the request in flight.
function M.cancel(buf)
  local s = states[buf]
  if not s then
    return
  end
  if s.timer then
    s.timer:stop()
  end
  local pending = s.pending
  s.pending = nil
  local client = pending and vim.lsp.get_client_by_id(pending.client_id)
  if client then
    if has_011 then client:cancel_request(pending.id) else client.cancel_request(pending.id) end
  end
end

local function on_response(buf, request, err, result)
  local s = states[buf]
  if not s or s.pending ~= request then
    return
  end
  s.pending = nil
  if err then
    -- Failed requests are not worth a message per keystroke; they go to the LSP log.
    if err.code ~= -32800 then
      vim.lsp.log.warn("mistral-lsp: inline completion failed", err)
    end
    return
  end
  local row, col = cursor()
  if not in_insert_mode(buf) or row ~= request.row or col ~= request.col or api.nvim_buf_get_changedtick(buf) ~= request.tick then
    return -- The text or the cursor moved on: this answer is stale.
  end
  local client = vim.lsp.get_client_by_id(request.client_id)
  local items = client and to_items(buf, client, result, row, col) or {}
  if #items == 0 then
    return -- Nothing (the model may still be loading): keep what is shown.
  end
  local index = 1
  if request.kind == INVOKED and request.shown then
    index = request.delta % #items + 1
  end
  show(buf, items, index, request.kind == INVOKED, request.shown)
end

--- Asks the server for a suggestion at the cursor. `kind` 1 (invoked) asks for several to cycle
--- through, `delta` says which one to show when one is already shown.
function M.request(buf, kind, delta)
  local s = states[buf]
  if not s or not in_insert_mode(buf) then
    return
  end
  M.cancel(buf)
  local client = vim.lsp.get_client_by_id(s.client_id)
  if not client then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = kind }
  local row, col = cursor()
  local request = {
    client_id = client.id, kind = kind, delta = delta or 0, shown = s.items ~= nil,
    row = row, col = col, tick = api.nvim_buf_get_changedtick(buf),
  }
  local function handler(err, result)
    on_response(buf, request, err, result)
  end
  local ok, id
  if has_011 then
    ok, id = client:request(METHOD, params, handler, buf)
  else
    ok, id = client.request(METHOD, params, handler, buf)
  end
  if ok then
    request.id = id
    s.pending = request
  end
end

local function debounce(buf)
  local s = states[buf]
  if not options().auto_trigger or vim.fn.pumvisible() == 1 then
    return
  end
  s.timer = s.timer or vim.uv.new_timer()
  s.timer:stop()
  s.timer:start(options().debounce_ms, 0, vim.schedule_wrap(function()
    if states[buf] and in_insert_mode(buf) then
      M.request(buf, AUTOMATIC)
    end
  end))
end

-- When the user types what the suggestion says, keep showing the rest of it.
local function follow(buf, s, row, col)
  local item = s.items[s.index]
  if row ~= s.row or col <= s.col then
    return false
  end
  local line = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  local typed = line:sub(s.col + 1, col)
  if #typed >= #item.text or item.text:sub(1, #typed) ~= typed then
    return false
  end
  local rest = { text = item.text:sub(#typed + 1), replace_end = item.replace_end and item.replace_end + #typed }
  show(buf, { rest }, 1, false)
  return true
end

-- TextChangedI and CursorMovedI: cancel the request in flight, keep or hide what is shown, and
-- ask again after the debounce.
local function on_change(buf)
  local s = states[buf]
  local row, col = cursor()
  local tick = api.nvim_buf_get_changedtick(buf)
  local pending = s.pending
  if pending and pending.row == row and pending.col == col and pending.tick == tick then
    -- Autocmds fire once typeahead is empty, so they may come after a request made by a later
    -- key (for example <M-]>) at this very place: that request is current, keep it.
    return
  end
  M.cancel(buf)
  if s.items then
    local moved = row ~= s.row or col ~= s.col or tick ~= s.tick
    if moved and not follow(buf, s, row, col) then
      M.clear(buf)
    end
  end
  debounce(buf)
end

--- Starts ghost text in a buffer for a client.
function M.attach(buf, client_id)
  if states[buf] then
    states[buf].client_id = client_id
    return
  end
  states[buf] = { client_id = client_id, invoked = false }
  local group = api.nvim_create_augroup("mistral-lsp.ghost." .. buf, { clear = true })
  local function on(events, callback)
    api.nvim_create_autocmd(events, { group = group, buffer = buf, callback = function() callback(buf) end })
  end
  on("InsertEnter", debounce)
  on({ "TextChangedI", "CursorMovedI" }, on_change)
  on({ "InsertLeave", "BufLeave" }, function()
    M.cancel(buf)
    M.clear(buf)
  end)
  on({ "BufUnload", "BufWipeout" }, M.detach)
end

--- Stops ghost text in a buffer.
function M.detach(buf)
  local s = states[buf]
  if not s then
    return
  end
  M.cancel(buf)
  M.clear(buf)
  if s.timer and not s.timer:is_closing() then
    s.timer:close()
  end
  pcall(api.nvim_del_augroup_by_name, "mistral-lsp.ghost." .. buf)
  states[buf] = nil
end

--- Whether a suggestion is shown in the buffer.
function M.visible(buf)
  local s = states[buf or api.nvim_get_current_buf()]
  return s ~= nil and s.items ~= nil
end

--- Inserts the suggestion, or its next word or line (`how` = "all", "word" or "line"), and
--- keeps showing the rest. Returns false when there was nothing to accept.
function M.accept(buf, how)
  buf = buf or api.nvim_get_current_buf()
  local s = states[buf]
  local item = s and s.items and s.items[s.index]
  if not item then
    return false
  end
  M.cancel(buf)
  local part = text.part(item.text, how or "all")
  local end_col = (part == item.text and item.replace_end) or s.col
  api.nvim_buf_set_text(buf, s.row, s.col, s.row, end_col, vim.split(part, "\n", { plain = true }))
  local row, col = text.end_of(part, s.row, s.col)
  api.nvim_win_set_cursor(0, { row + 1, col })
  if part == item.text then
    M.clear(buf)
  else
    local on_same_line = not part:find("\n", 1, true)
    local rest = { text = item.text:sub(#part + 1), replace_end = on_same_line and item.replace_end and item.replace_end + #part or nil }
    show(buf, { rest }, 1, false)
  end
  return true
end

--- Hides the suggestion and cancels the request in flight. Returns whether one was shown.
function M.dismiss(buf)
  buf = buf or api.nvim_get_current_buf()
  local shown = M.visible(buf)
  M.cancel(buf)
  M.clear(buf)
  return shown
end

--- Shows the next (`delta` 1) or previous (-1) suggestion. The first time, it asks the server
--- for several (an invoked request); with nothing shown, it asks for a suggestion.
function M.cycle(buf, delta)
  buf = buf or api.nvim_get_current_buf()
  local s = states[buf]
  if not s then
    return
  end
  if s.items and s.invoked then
    s.index = (s.index - 1 + delta) % #s.items + 1
    s.show_index = true
    render(buf)
  else
    M.request(buf, INVOKED, delta)
  end
end

--- For tests: shows these suggestions at the cursor as if an invoked request returned them.
function M._show(buf, texts)
  show(buf, vim.tbl_map(function(t) return { text = t } end, texts), 1, true)
end

return M
