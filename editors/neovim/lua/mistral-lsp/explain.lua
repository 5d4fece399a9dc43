-- :MistralLspExplain: the server explains a range, or the function around the cursor, and the
-- markdown fills a floating window as it is written. q closes the window and stops the job.
local client = require("mistral-lsp.client")

local M = {}

-- The explanation on screen: { client, request_id, buf, win, id }; one at a time.
M.current = nil

local MAX_HEIGHT = 20

local function close()
  local current = M.current
  M.current = nil
  if not current then
    return
  end
  if current.request_id then
    current.client:cancel_request(current.request_id)
  end
  if vim.api.nvim_win_is_valid(current.win) then
    vim.api.nvim_win_close(current.win, true)
  end
end

local function show(current, text)
  if not vim.api.nvim_buf_is_valid(current.buf) then
    return
  end
  local lines = vim.split(text, "\n", { plain = true })
  vim.bo[current.buf].modifiable = true
  vim.api.nvim_buf_set_lines(current.buf, 0, -1, false, lines)
  vim.bo[current.buf].modifiable = false
  if vim.api.nvim_win_is_valid(current.win) then
    local width = vim.api.nvim_win_get_width(current.win)
    local height = 0
    for _, line in ipairs(lines) do
      height = height + math.max(1, math.ceil(vim.fn.strdisplaywidth(line) / width))
    end
    vim.api.nvim_win_set_height(current.win, math.max(1, math.min(MAX_HEIGHT, height)))
  end
end

--- Handler of `mistral-lsp/explanation`: the markdown so far.
function M.on_notification(params)
  local current = M.current
  if not current or (current.id and current.id ~= params.id) then
    return
  end
  current.id = params.id
  if params.text ~= "" then
    show(current, params.text)
  end
end

local function open_float()
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].filetype = "markdown"
  vim.bo[buf].bufhidden = "wipe"
  local width = math.min(88, vim.o.columns - 4)
  local win = vim.api.nvim_open_win(buf, true, {
    relative = "cursor", row = 1, col = 0, width = width, height = 1,
    style = "minimal", border = "rounded", title = " mistral-lsp: explaining… ", title_pos = "center",
  })
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "reading the code…" })
  vim.bo[buf].modifiable = false
  vim.keymap.set("n", "q", close, { buffer = buf, desc = "mistral-lsp: close the explanation and stop it" })
  vim.api.nvim_create_autocmd("WinClosed", {
    pattern = tostring(win), once = true,
    callback = function()
      if M.current and M.current.win == win then
        close()
      end
    end,
  })
  return buf, win
end

--- Explains lines `first`..`last` (1-based) of the current buffer, or with no lines the code
--- around the cursor.
function M.explain(first, last)
  local buf, c = client.current()
  if not c then
    return
  end
  local range
  if first then
    range = client.lines_range(c, buf, first, last)
  else
    local position = vim.lsp.util.make_position_params(0, c.offset_encoding or "utf-16").position
    range = { start = position, ["end"] = position }
  end
  close()
  local float_buf, win = open_float()
  local current = { client = c, buf = float_buf, win = win }
  M.current = current
  local arguments = { { uri = vim.uri_from_bufnr(buf), range = range } }
  local ok, request_id = c:request("workspace/executeCommand", { command = "mistral-lsp.explain", arguments = arguments },
    function(err, result)
      current.request_id = nil
      if M.current ~= current then
        return
      end
      if vim.api.nvim_win_is_valid(win) then
        vim.api.nvim_win_set_config(win, { title = " mistral-lsp: explanation (q closes) ", title_pos = "center" })
      end
      if err then
        show(current, "mistral-lsp: " .. (err.message or tostring(err)))
      else
        show(current, result.markdown)
      end
    end, buf)
  if ok then
    current.request_id = request_id
  else
    show(current, "mistral-lsp: the server is not running")
  end
end

return M
