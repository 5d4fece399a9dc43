//! Conversion between editor positions (line, column in some encoding) and byte offsets in a rope.
//!
//! Lines are split at `\n`, `\r\n` and `\r`, exactly as LSP splits them; the rope is built with
//! `cr_lines` for that reason. A column past the end of a line means the end of that line (the
//! LSP rule); a line past the end of the text is an error the caller decides about.

use ropey::Rope;

/// How columns are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Bytes of UTF-8.
    Utf8,
    /// UTF-16 code units: the LSP default.
    #[default]
    Utf16,
    /// Unicode scalar values.
    Utf32,
}

/// A zero-based line and a column counted in some [`Encoding`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: u32,
    pub column: u32,
}

/// The line asked for does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineOutOfRange {
    pub line: u32,
    pub line_count: usize,
}

impl std::fmt::Display for LineOutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is past the end of the document ({} lines)", self.line, self.line_count)
    }
}

impl std::error::Error for LineOutOfRange {}

/// Returns the byte offset of `pos`, clamping the column to the end of its line.
pub fn byte_offset(rope: &Rope, pos: LineCol, encoding: Encoding) -> Result<usize, LineOutOfRange> {
    let line = pos.line as usize;
    if line >= rope.len_lines() {
        return Err(LineOutOfRange { line: pos.line, line_count: rope.len_lines() });
    }
    let start_char = rope.line_to_char(line);
    let end_char = start_char + line_len_chars(rope, line);
    let column = pos.column as usize;
    let char_idx = match encoding {
        Encoding::Utf32 => (start_char + column).min(end_char),
        Encoding::Utf8 => {
            let start_byte = rope.char_to_byte(start_char);
            let end_byte = rope.char_to_byte(end_char);
            // A column inside a multi-byte character rounds down to its start.
            rope.byte_to_char((start_byte + column).min(end_byte))
        }
        Encoding::Utf16 => {
            let start_cu = rope.char_to_utf16_cu(start_char);
            let end_cu = rope.char_to_utf16_cu(end_char);
            // A column between the two halves of a surrogate pair rounds down.
            rope.utf16_cu_to_char((start_cu + column).min(end_cu))
        }
    };
    Ok(rope.char_to_byte(char_idx))
}

/// Like [`byte_offset`], but a line past the end means the end of the text.
pub fn byte_offset_clamped(rope: &Rope, pos: LineCol, encoding: Encoding) -> usize {
    byte_offset(rope, pos, encoding).unwrap_or(rope.len_bytes())
}

/// Returns the line and column of a byte offset (rounded down to a character boundary).
pub fn line_col(rope: &Rope, byte: usize, encoding: Encoding) -> LineCol {
    let byte = byte.min(rope.len_bytes());
    let char_idx = rope.byte_to_char(byte);
    let line = rope.char_to_line(char_idx);
    let start_char = rope.line_to_char(line);
    let column = match encoding {
        Encoding::Utf32 => char_idx - start_char,
        Encoding::Utf8 => rope.char_to_byte(char_idx) - rope.char_to_byte(start_char),
        Encoding::Utf16 => rope.char_to_utf16_cu(char_idx) - rope.char_to_utf16_cu(start_char),
    };
    LineCol { line: line as u32, column: column as u32 }
}

/// Number of characters on `line`, without its line break.
fn line_len_chars(rope: &Rope, line: usize) -> usize {
    let slice = rope.line(line);
    let mut len = slice.len_chars();
    if len > 0 && slice.char(len - 1) == '\n' {
        len -= 1;
    }
    if len > 0 && slice.char(len - 1) == '\r' {
        len -= 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(text: &str, line: u32, column: u32, encoding: Encoding) -> Result<usize, LineOutOfRange> {
        byte_offset(&Rope::from_str(text), LineCol { line, column }, encoding)
    }

    #[test]
    fn columns_in_each_encoding() {
        // "é" is 2 bytes, 1 UTF-16 unit; "😀" is 4 bytes, 2 UTF-16 units, 1 scalar.
        let text = "aé😀b\nx";
        assert_eq!(offset(text, 0, 2, Encoding::Utf16), Ok(3));
        assert_eq!(offset(text, 0, 4, Encoding::Utf16), Ok(7));
        assert_eq!(offset(text, 0, 3, Encoding::Utf32), Ok(7));
        assert_eq!(offset(text, 0, 3, Encoding::Utf8), Ok(3));
        assert_eq!(offset(text, 1, 1, Encoding::Utf16), Ok(10));
    }

    #[test]
    fn column_inside_a_character_rounds_down() {
        let text = "😀x";
        assert_eq!(offset(text, 0, 1, Encoding::Utf16), Ok(0));
        assert_eq!(offset(text, 0, 2, Encoding::Utf8), Ok(0));
    }

    #[test]
    fn column_past_the_line_end_means_the_line_end() {
        assert_eq!(offset("ab\r\ncd", 0, 99, Encoding::Utf16), Ok(2));
        assert_eq!(offset("ab\ncd", 0, 99, Encoding::Utf8), Ok(2));
        assert_eq!(offset("ab\rcd", 0, 3, Encoding::Utf32), Ok(2));
        assert_eq!(offset("ab", 0, 99, Encoding::Utf16), Ok(2));
    }

    #[test]
    fn line_past_the_end_is_an_error() {
        assert_eq!(offset("ab\n", 1, 0, Encoding::Utf16), Ok(3));
        assert_eq!(offset("ab\n", 2, 0, Encoding::Utf16), Err(LineOutOfRange { line: 2, line_count: 2 }));
        let rope = Rope::from_str("ab\n");
        assert_eq!(byte_offset_clamped(&rope, LineCol { line: 7, column: 0 }, Encoding::Utf16), 3);
    }

    #[test]
    fn line_col_round_trips() {
        let text = "aé😀b\r\nx\ry";
        let rope = Rope::from_str(text);
        for encoding in [Encoding::Utf8, Encoding::Utf16, Encoding::Utf32] {
            for (byte, ch) in text.char_indices() {
                if ch == '\n' && text[..byte].ends_with('\r') {
                    // Inside a CRLF line break: not a position an editor can name.
                    continue;
                }
                let pos = line_col(&rope, byte, encoding);
                assert_eq!(byte_offset(&rope, pos, encoding), Ok(byte), "{encoding:?} {byte}");
            }
        }
        assert_eq!(line_col(&rope, 12, Encoding::Utf16), LineCol { line: 2, column: 0 });
    }
}
