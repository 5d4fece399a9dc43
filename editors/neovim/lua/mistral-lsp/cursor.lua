-- Reports where the cursor rests (`mistral-lsp/cursor`), so that the server can read the prompt
-- of the next completion there before it is asked for one.
local M = {}

M.method = "mistral-lsp/cursor"
-- How long the cursor must rest before it is reported: holding a motion key sends nothing.
M.rest_ms = 250

local has_011 = vim.fn.has("nvim-0.11") == 1
local timer = nil
local last_sent = {} -- client id -> the params last sent, as a string
local attached = {} -- buffer -> client id

local function report()
  local buf = vim.api.nvim_get_current_buf()
  local client = attached[buf] and vim.lsp.get_client_by_id(attached[buf])
  if not client or client.is_stopped(client) then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local key = vim.inspect(params)
  if last_sent[client.id] == key then
    return
  end
  last_sent[client.id] = key
  if has_011 then client:notify(M.method, params) else client.notify(M.method, params) end
end

local function moved()
  timer = timer or vim.uv.new_timer()
  timer:stop()
  timer:start(M.rest_ms, 0, vim.schedule_wrap(report))
end

--- Reports the cursor of `buf` to the client `client_id` from now on.
function M.attach(buf, client_id)
  local first = attached[buf] == nil
  attached[buf] = client_id
  if not first then
    return
  end
  local group = vim.api.nvim_create_augroup("mistral-lsp.cursor." .. buf, { clear = true })
  vim.api.nvim_create_autocmd({ "CursorMoved", "CursorMovedI", "BufEnter" }, { group = group, buffer = buf, callback = moved })
  vim.api.nvim_create_autocmd({ "BufUnload", "BufWipeout" }, { group = group, buffer = buf, callback = function() M.detach(buf) end })
  if buf == vim.api.nvim_get_current_buf() then
    moved()
  end
end

--- Stops reporting the cursor of `buf`.
function M.detach(buf)
  if attached[buf] then
    last_sent[attached[buf]] = nil
  end
  attached[buf] = nil
  pcall(vim.api.nvim_del_augroup_by_name, "mistral-lsp.cursor." .. buf)
end

return M
