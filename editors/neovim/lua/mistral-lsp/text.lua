-- Pure text helpers for suggestions: how much of one a partial accept takes.
local M = {}

--- The next word of a suggestion: leading white space (newlines included), then a run of word
--- characters or a run of punctuation. "a + b" gives "a", then " +", then " b".
---@param text string
---@return string
function M.next_word(text)
  return text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text
end

--- The next line of a suggestion: the rest of the current line, or, when the current line is
--- done (the text starts with a newline), that newline and the whole line after it.
---@param text string
---@return string
function M.next_line(text)
  if text:sub(1, 1) == "\n" then
    return "\n" .. (text:match("^\n([^\n]*)") or "")
  end
  return text:match("^[^\n]*")
end

--- The part a partial accept takes: "all", "word" or "line".
---@param text string
---@param how "all"|"word"|"line"
---@return string
function M.part(text, how)
  if how == "word" then
    return M.next_word(text)
  elseif how == "line" then
    return M.next_line(text)
  end
  return text
end

--- Where a piece of text ends once inserted at (row, col), both 0-based, col in bytes.
---@return integer row, integer col
function M.end_of(text, row, col)
  local lines = vim.split(text, "\n", { plain = true })
  if #lines == 1 then
    return row, col + #lines[1]
  end
  return row + #lines - 1, #lines[#lines]
end

--- How many bytes of `text` were already typed before the cursor, when the server did not say
--- where its text starts: the longest start of `text` that ends the line before the cursor.
---@param before string the line up to the cursor
---@param text string
---@return integer
function M.typed_length(before, text)
  local first = text:match("^[^\n]*")
  for n = math.min(#before, #first), 1, -1 do
    if before:sub(-n) == first:sub(1, n) then
      return n
    end
  end
  return 0
end

return M
