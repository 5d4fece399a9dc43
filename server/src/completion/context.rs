//! Gathering cross-file context for a prompt: definitions of the names used near the cursor, from
//! other open buffers and from the files the current file imports, then recent chunks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use parking_lot::Mutex;
use ropey::Rope;
use tree_sitter::Tree;

use crate::documents::Snapshot;
use crate::prompt::ring::{self, Chunk};
use crate::prompt::snippets::{self, Snippet, Source};
use crate::prompt::{Counter, Extra, Window};
use crate::syntax::{self, Language};

/// Imported files larger than this are not read.
const MAX_IMPORTED_BYTES: u64 = 512 * 1024;

/// A file's path as the prompt shows it: relative to the workspace root when inside it.
pub fn display_path(uri: &str, root: Option<&Path>) -> String {
    let path = uri_path(uri);
    match (root, &path) {
        (Some(root), Some(path)) => path.strip_prefix(root).unwrap_or(path).display().to_string(),
        (None, Some(path)) => {
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
        }
        (_, None) => uri.rsplit('/').next().unwrap_or(uri).to_owned(),
    }
}

/// The local path of a `file://` URI, with percent-escapes decoded.
pub fn uri_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                decoded.push(byte);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&decoded).into_owned()))
}

/// A parsed file read from disk, cached by modification time.
struct Parsed {
    modified: SystemTime,
    text: Rope,
    tree: Tree,
    language: Language,
}

fn imported_cache() -> &'static Mutex<HashMap<PathBuf, Parsed>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Parsed>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Definitions from the files `snapshot` imports, read from disk.
fn imported_snippets(snapshot: &Snapshot, names: &HashSet<&str>, root: Option<&Path>) -> Vec<Snippet> {
    let (Some(language), Some(tree), Some(path)) = (snapshot.language, &snapshot.tree, uri_path(&snapshot.uri)) else {
        return Vec::new();
    };
    let Some(dir) = path.parent() else { return Vec::new() };
    let crate_src = dir.ancestors().find(|d| d.join("Cargo.toml").is_file()).map(|d| d.join("src"));
    let mut found = Vec::new();
    let mut cache = imported_cache().lock();
    for import in snippets::imports(language, &snapshot.text, tree).into_iter().take(32) {
        for candidate in snippets::import_candidates(language, &import) {
            let file = match candidate.strip_prefix("{crate}/") {
                Some(rest) => match &crate_src {
                    Some(src) => src.join(rest),
                    None => continue,
                },
                None => dir.join(&candidate),
            };
            let Ok(meta) = std::fs::metadata(&file) else { continue };
            if !meta.is_file() || meta.len() > MAX_IMPORTED_BYTES {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let fresh = cache.get(&file).is_some_and(|p| p.modified == modified);
            if !fresh {
                let Ok(content) = std::fs::read_to_string(&file) else { continue };
                let text = Rope::from_str(&content);
                let Some(tree) = syntax::parse(language, &text, None) else { continue };
                cache.insert(file.clone(), Parsed { modified, text, tree, language });
            }
            if let Some(parsed) = cache.get(&file) {
                let shown = root.and_then(|r| file.strip_prefix(r).ok()).unwrap_or(&file).display().to_string();
                let source = Source { path: &shown, text: &parsed.text, tree: &parsed.tree, language: parsed.language };
                found.extend(snippets::definitions(&source, names));
            }
            break;
        }
    }
    found
}

/// Extra context for the prompt, within `budget` tokens, in a stable order.
pub fn extras(
    snapshot: &Snapshot,
    window: &Window,
    others: &[Snapshot],
    chunks: &[Chunk],
    root: Option<&Path>,
    budget: usize,
    counter: &dyn Counter,
) -> Vec<Extra> {
    if budget == 0 {
        return Vec::new();
    }
    // Names used near the cursor: the last lines above it and the first below.
    let above: Vec<&str> = window.prefix.lines().rev().take(40).collect();
    let near = format!(
        "{}\n{}{}",
        above.into_iter().rev().collect::<Vec<_>>().join("\n"),
        window.line_before,
        window.suffix.lines().take(10).collect::<Vec<_>>().join("\n")
    );
    let ranked = snippets::used_names(&near);
    let wanted: HashSet<&str> = ranked.iter().map(String::as_str).collect();
    // Names the current file defines itself need no snippet.
    let local: HashSet<String> = match (snapshot.language, &snapshot.tree) {
        (Some(language), Some(tree)) => {
            let source = Source { path: "", text: &snapshot.text, tree, language };
            snippets::definitions(&source, &wanted).into_iter().map(|s| s.name).collect()
        }
        _ => HashSet::new(),
    };
    let wanted: HashSet<&str> = wanted.into_iter().filter(|n| !local.contains(*n)).collect();

    let mut found = Vec::new();
    if !wanted.is_empty() {
        for other in others.iter().filter(|o| o.uri != snapshot.uri) {
            if let (Some(language), Some(tree)) = (other.language, &other.tree) {
                let path = display_path(&other.uri, root);
                let source = Source { path: &path, text: &other.text, tree, language };
                found.extend(snippets::definitions(&source, &wanted));
            }
        }
        found.extend(imported_snippets(snapshot, &wanted, root));
    }
    // Nearest names first; one definition per name.
    let rank = |name: &str| ranked.iter().position(|n| n == name).unwrap_or(usize::MAX);
    found.sort_by_key(|s| rank(&s.name));
    let mut seen = HashSet::new();
    found.retain(|s| seen.insert(s.name.clone()));

    let mut chosen: Vec<Extra> = Vec::new();
    let mut spent = 0;
    for snippet in found {
        let cost = counter.count(&snippet.text) + 8;
        if spent + cost > budget {
            continue;
        }
        spent += cost;
        chosen.push(Extra { path: snippet.path, text: snippet.text });
    }
    let current = format!("{}{}{}", window.prefix, window.line_before, window.suffix);
    let current_path = display_path(&snapshot.uri, root);
    let current_lines = ring::line_set(&current);
    for chunk in chunks.iter().rev() {
        if chunk.path == current_path && ring::similarity(&ring::line_set(&chunk.text), &current_lines) > 0.5 {
            continue;
        }
        let cost = counter.count(&chunk.text) + 8;
        if spent + cost > budget {
            continue;
        }
        spent += cost;
        chosen.push(Extra { path: chunk.path.clone(), text: chunk.text.clone() });
    }
    // A stable order keeps the prompt's start, and so the cache, the same from one keystroke to
    // the next.
    chosen.sort_by(|a, b| (&a.path, &a.text).cmp(&(&b.path, &b.text)));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Document;
    use crate::prompt::{window, Estimate};

    #[test]
    fn paths_are_shown_relative_to_the_workspace() {
        assert_eq!(display_path("file:///w/src/a%20b.py", Some(Path::new("/w"))), "src/a b.py");
        assert_eq!(display_path("file:///elsewhere/x.rs", Some(Path::new("/w"))), "/elsewhere/x.rs");
        assert_eq!(display_path("file:///w/x.rs", None), "x.rs");
        assert_eq!(display_path("untitled:Untitled-1", None), "untitled:Untitled-1");
    }

    #[test]
    fn definitions_of_nearby_names_come_from_other_buffers() {
        let util = Document::new(
            "file:///w/util.py",
            "python",
            1,
            "def scale(values, k):\n    return [v * k for v in values]\n\ndef unused():\n    pass\n",
        )
        .snapshot();
        let main = Document::new(
            "file:///w/main.py",
            "python",
            1,
            "from util import scale\n\ndef run(xs):\n    return scale(xs, 2)\n",
        )
        .snapshot();
        let cursor = main.text.len_bytes() - 1;
        let win = window::window(&main.text, main.tree.as_ref(), cursor, 1000, 100, &Estimate);
        let found = extras(&main, &win, &[util.clone(), main.clone()], &[], Some(Path::new("/w")), 500, &Estimate);
        assert_eq!(
            found,
            vec![Extra {
                path: "util.py".into(),
                text: "def scale(values, k):\n    return [v * k for v in values]".into()
            }]
        );
        assert!(extras(&main, &win, &[util], &[], None, 0, &Estimate).is_empty(), "no budget, no extras");
    }

    #[test]
    fn imported_files_are_read_from_disk() {
        let dir = std::env::temp_dir().join(format!("mistral-lsp-context-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("helpers.py"), "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n").unwrap();
        let uri = format!("file://{}/main.py", dir.display());
        let main = Document::new(&uri, "python", 1, "from helpers import clamp\n\ny = clamp(\n").snapshot();
        let win = window::window(&main.text, main.tree.as_ref(), main.text.len_bytes(), 1000, 100, &Estimate);
        let found = extras(&main, &win, &[], &[], Some(&dir), 500, &Estimate);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "helpers.py");
        assert!(found[0].text.starts_with("def clamp(x, lo, hi):"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
