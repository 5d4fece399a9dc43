//! Gathering cross-file context for a prompt: definitions of the names used near the cursor, from
//! other open buffers and from the files the current file imports, then recent chunks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use parking_lot::Mutex;
use ropey::Rope;
use tree_sitter::Tree;

use crate::documents::uri::{display_path, to_path};
use crate::documents::Snapshot;
use crate::prompt::ring::{self, Chunk};
use crate::prompt::snippets::{self, Snippet, Source};
use crate::prompt::{Counter, Extra, Window};
use crate::syntax::{self, Language};

/// Imported files larger than this are not read.
const MAX_IMPORTED_BYTES: u64 = 512 * 1024;

/// A parsed file read from disk, cached by modification time. Clones are cheap (the rope and the
/// tree share their nodes).
#[derive(Clone)]
struct Parsed {
    modified: SystemTime,
    text: Rope,
    tree: Tree,
    language: Language,
}

/// Parsed imported files by their real path.
fn imported_cache() -> &'static Mutex<HashMap<PathBuf, Parsed>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Parsed>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Definitions from the files `snapshot` imports, read from disk.
///
/// Only files inside the workspace are read: an import's path is resolved through `..` and
/// symlinks and must end inside the workspace root, or, without a workspace, inside the current
/// file's own directory (that directory and below), so that an import never puts the files of
/// another directory (secrets included) into the prompt. Paths are shown relative to that same
/// directory.
fn imported_snippets(snapshot: &Snapshot, names: &HashSet<&str>, root: Option<&Path>) -> Vec<Snippet> {
    let (Some(language), Some(tree), Some(path)) = (snapshot.language, &snapshot.tree, to_path(&snapshot.uri)) else {
        return Vec::new();
    };
    let Some(dir) = path.parent() else { return Vec::new() };
    let Ok(boundary) = std::fs::canonicalize(root.unwrap_or(dir)) else { return Vec::new() };
    let crate_src = dir.ancestors().find(|d| d.join("Cargo.toml").is_file()).map(|d| d.join("src"));
    let mut found = Vec::new();
    for import in snippets::imports(language, &snapshot.text, tree).into_iter().take(32) {
        for candidate in snippets::import_candidates(language, &import) {
            let file = match candidate.strip_prefix("{crate}/") {
                Some(rest) => match &crate_src {
                    Some(src) => src.join(rest),
                    None => continue,
                },
                None => dir.join(&candidate),
            };
            let Some((real, parsed)) = read_inside(&file, &boundary, language) else { continue };
            let shown = real.strip_prefix(&boundary).unwrap_or(&real).display().to_string();
            let source = Source { path: &shown, text: &parsed.text, tree: &parsed.tree, language: parsed.language };
            found.extend(snippets::definitions(&source, names));
            break;
        }
    }
    found
}

/// Reads and parses `file`, or takes it from the cache if it has not changed since, when its real
/// path lies inside `boundary` (a canonical path) and it is a regular file of at most
/// [`MAX_IMPORTED_BYTES`]; returns its real path too. Checking the kind before opening means a
/// FIFO named like a module is never opened, so it cannot block.
fn read_inside(file: &Path, boundary: &Path, language: Language) -> Option<(PathBuf, Parsed)> {
    let real = std::fs::canonicalize(file).ok()?;
    if !real.starts_with(boundary) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    if !meta.is_file() || meta.len() > MAX_IMPORTED_BYTES {
        return None;
    }
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let cached = imported_cache().lock().get(&real).filter(|parsed| parsed.modified == modified).cloned();
    if let Some(parsed) = cached {
        return Some((real, parsed));
    }
    // Read and parsed without holding the cache's lock, so that a slow disk or a large file holds
    // up nobody else; two readers of the same file at once both parse it, and either result does.
    let content = std::fs::read_to_string(&real).ok()?;
    let text = Rope::from_str(&content);
    let tree = syntax::parse(language, &text, None)?;
    let parsed = Parsed { modified, text, tree, language };
    imported_cache().lock().insert(real.clone(), parsed.clone());
    Some((real, parsed))
}

/// Definitions of the names used in `code`, nearest (last used) first, one per name: from other
/// open buffers and the files `snapshot` imports, and, when `outside` is given (a byte range of
/// `snapshot` that `code` is), from `snapshot` itself outside that range. Without it, names the
/// current file defines are left out (the prompt shows the file already).
pub fn definitions_used(
    snapshot: &Snapshot,
    code: &str,
    others: &[Snapshot],
    root: Option<&Path>,
    outside: Option<std::ops::Range<usize>>,
) -> Vec<Snippet> {
    let ranked = snippets::used_names(code);
    let wanted: HashSet<&str> = ranked.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    let local = match (snapshot.language, &snapshot.tree) {
        (Some(language), Some(tree)) => {
            let path = display_path(&snapshot.uri, root);
            let source = Source { path: &path, text: &snapshot.text, tree, language };
            snippets::definitions(&source, &wanted)
        }
        _ => Vec::new(),
    };
    let wanted: HashSet<&str> = match &outside {
        // The file's own definitions outside the code explained are context like any other.
        Some(range) => {
            for snippet in local {
                if !range.contains(&snippet.start) {
                    found.push(snippet);
                }
            }
            wanted
        }
        // Names the current file defines itself need no snippet.
        None => {
            let local: HashSet<String> = local.into_iter().map(|s| s.name).collect();
            wanted.into_iter().filter(|n| !local.contains(*n)).collect()
        }
    };
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
    found
}

/// Tokens an extra costs besides its text: the path and the separators around it.
const EXTRA_OVERHEAD: usize = 8;

/// The tokens `extras` take of the context budget, as [`extras`] counts them.
pub fn cost(extras: &[Extra], counter: &dyn Counter) -> usize {
    extras.iter().map(|extra| counter.count(&extra.text) + EXTRA_OVERHEAD).sum()
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
    let found = definitions_used(snapshot, &near, others, root, None);

    let mut chosen: Vec<Extra> = Vec::new();
    let mut spent = 0;
    for snippet in found {
        let cost = counter.count(&snippet.text) + EXTRA_OVERHEAD;
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
        let cost = counter.count(&chunk.text) + EXTRA_OVERHEAD;
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

    /// A fresh directory for one test, removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("mistral-lsp-context-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes `text` at `relative`, creating the directories on the way.
        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The extras for the Python file at `path` holding `text`, with the cursor at its end.
    fn python_extras(path: &Path, text: &str, root: Option<&Path>) -> Vec<Extra> {
        let main = Document::new(&format!("file://{}", path.display()), "python", 1, text).snapshot();
        let win = window::window(&main.text, main.tree.as_ref(), main.text.len_bytes(), 1000, 100, &Estimate);
        extras(&main, &win, &[], &[], root, 500, &Estimate)
    }

    #[test]
    fn imported_files_are_read_from_disk() {
        let dir = TempDir::new("read");
        dir.write("helpers.py", "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n");
        let text = "from helpers import clamp\n\ny = clamp(\n";
        for root in [Some(dir.0.as_path()), None] {
            let found = python_extras(&dir.0.join("main.py"), text, root);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].path, "helpers.py");
            assert!(found[0].text.starts_with("def clamp(x, lo, hi):"));
        }
    }

    #[test]
    fn relative_imports_that_climb_out_of_the_workspace_are_not_read() {
        let dir = TempDir::new("climb");
        dir.write("outside/secret.py", "API_KEY = 'hunter2'\n");
        let text = "from ...outside.secret import API_KEY\n\nkey = API_KEY\n";
        let main = dir.write("workspace/pkg/main.py", text);
        // The same import is read when the workspace holds the file, so the rule is what stops it.
        assert_eq!(python_extras(&main, text, Some(&dir.0)).len(), 1);
        assert_eq!(python_extras(&main, text, Some(&dir.0.join("workspace"))), vec![]);
        // Without a workspace, only the current file's directory and below are read.
        assert_eq!(python_extras(&main, text, None), vec![]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_workspace_are_not_followed() {
        let dir = TempDir::new("symlink");
        let secret = dir.write("outside/secret.py", "API_KEY = 'hunter2'\n");
        let workspace = dir.0.join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        std::os::unix::fs::symlink(&secret, workspace.join("settings.py")).unwrap();
        let text = "from settings import API_KEY\n\nkey = API_KEY\n";
        assert_eq!(python_extras(&workspace.join("main.py"), text, Some(&dir.0)).len(), 1);
        assert_eq!(python_extras(&workspace.join("main.py"), text, Some(&workspace)), vec![]);
    }

    #[cfg(unix)]
    #[test]
    #[allow(clippy::disallowed_methods)] // A thread, so that a read that blocks fails the test.
    fn a_fifo_named_like_a_module_is_skipped_without_blocking() {
        let dir = TempDir::new("fifo");
        let status = std::process::Command::new("mkfifo").arg(dir.0.join("pipe.py")).status().unwrap();
        assert!(status.success());
        dir.write("pipe/__init__.py", "def drain():\n    pass\n");
        // Opening the FIFO for reading would wait for a writer for ever; the package is read instead.
        let (done, answer) = std::sync::mpsc::channel();
        let root = dir.0.clone();
        std::thread::spawn(move || {
            let _ = done.send(python_extras(&root.join("main.py"), "from pipe import drain\n\ndrain(\n", Some(&root)));
        });
        let found = answer.recv_timeout(std::time::Duration::from_secs(10)).expect("the FIFO blocked the read");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "pipe/__init__.py");
    }
}
