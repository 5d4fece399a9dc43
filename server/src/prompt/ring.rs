//! A ring buffer of recently edited or viewed chunks of code, for cross-file context.
//!
//! As llama.vim does: a chunk very similar to one already held replaces it, and at prompt time a
//! chunk too similar to the code around the cursor is left out, because it makes the model
//! repeat code that is already there.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// Chunks held at most.
pub const CAPACITY: usize = 16;
/// Lines a chunk holds at most.
pub const CHUNK_LINES: usize = 64;

/// A piece of some file the user worked with.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub path: String,
    pub text: String,
    lines: HashSet<u64>,
}

impl Chunk {
    pub fn new(path: &str, text: &str) -> Chunk {
        Chunk { path: path.to_owned(), text: text.to_owned(), lines: line_set(text) }
    }
}

/// Hashes of the non-blank lines of `text`, trimmed.
pub fn line_set(text: &str) -> HashSet<u64> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            l.hash(&mut hasher);
            hasher.finish()
        })
        .collect()
}

/// Shared lines over the smaller set's size: 1.0 when one chunk's lines all appear in the other.
pub fn similarity(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let smaller = a.len().min(b.len());
    if smaller == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / smaller as f64
}

#[derive(Debug, Default)]
pub struct Ring {
    chunks: VecDeque<Chunk>,
}

impl Ring {
    /// Adds a chunk; a near-duplicate (more than 0.9 similar) it replaces, the oldest it evicts.
    pub fn add(&mut self, chunk: Chunk) {
        if chunk.lines.len() < 3 {
            return;
        }
        self.chunks.retain(|old| similarity(&old.lines, &chunk.lines) <= 0.9);
        self.chunks.push_back(chunk);
        while self.chunks.len() > CAPACITY {
            self.chunks.pop_front();
        }
    }

    /// Chunks worth showing next to `current` (the code around the cursor), oldest first: those
    /// more than 0.5 similar to it are left out.
    pub fn relevant(&self, current: &str) -> Vec<Chunk> {
        let current = line_set(current);
        self.chunks.iter().filter(|c| similarity(&c.lines, &current) <= 0.5).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// The lines around `line` (0-based) of `text`, at most [`CHUNK_LINES`].
pub fn chunk_around(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = line.saturating_sub(CHUNK_LINES / 2).min(lines.len());
    let end = (start + CHUNK_LINES).min(lines.len());
    lines[start..end].join("\n")
}

/// The lines around `line` (0-based) of a rope, at most [`CHUNK_LINES`], without copying the rest.
pub fn chunk_around_rope(text: &ropey::Rope, line: usize) -> String {
    let lines = text.len_lines();
    let start = line.saturating_sub(CHUNK_LINES / 2).min(lines);
    let end = (start + CHUNK_LINES).min(lines);
    let from = text.line_to_byte(start);
    let to = if end < lines { text.line_to_byte(end) } else { text.len_bytes() };
    text.byte_slice(from..to).to_string().trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(names: &[&str]) -> String {
        names.iter().map(|n| format!("def {n}(x):\n    return x\n")).collect()
    }

    #[test]
    fn near_duplicates_replace_each_other() {
        let mut ring = Ring::default();
        ring.add(Chunk::new("a.py", &code(&["a", "b", "c", "d"])));
        ring.add(Chunk::new("a.py", &code(&["a", "b", "c", "d", "e"])));
        assert_eq!(ring.len(), 1);
        ring.add(Chunk::new("b.py", &code(&["p", "q", "r"])));
        assert_eq!(ring.len(), 2);
    }

    #[test]
    fn tiny_chunks_are_ignored_and_the_oldest_goes() {
        let mut ring = Ring::default();
        ring.add(Chunk::new("a.py", "x = 1\n"));
        assert!(ring.is_empty());
        for i in 0..CAPACITY + 3 {
            ring.add(Chunk::new("f.py", &code(&[&format!("f{i}"), &format!("g{i}"), &format!("h{i}")])));
        }
        assert_eq!(ring.len(), CAPACITY);
        assert!(ring.relevant("")[0].text.contains("f3"));
    }

    #[test]
    fn chunks_like_the_current_code_are_left_out() {
        let mut ring = Ring::default();
        ring.add(Chunk::new("a.py", &code(&["a", "b", "c"])));
        ring.add(Chunk::new("b.py", &code(&["x", "y", "z"])));
        let relevant = ring.relevant(&code(&["a", "b"]));
        assert_eq!(relevant.len(), 1);
        assert_eq!(relevant[0].path, "b.py");
    }

    #[test]
    fn chunks_around_a_line() {
        let text: String = (0..200).map(|i| format!("{i}\n")).collect();
        let chunk = chunk_around(&text, 100);
        assert!(chunk.starts_with("68\n") && chunk.ends_with("131"), "{chunk}");
        assert_eq!(chunk_around("a\nb", 0), "a\nb");
    }
}
