//! The changed lines of a unified diff (`git diff --unified=0`), per file, for reviewing only
//! what changed. Pure: text in, 0-based inclusive line ranges of the new files out.

use std::collections::BTreeMap;

/// Changed lines of each file the diff keeps (deleted files left out), in the new file's
/// numbering, 0-based and inclusive. A hunk that only deletes marks the line after the deletion
/// (or the last line), where the change shows.
pub fn changed_lines(diff: &str) -> BTreeMap<String, Vec<(usize, usize)>> {
    let mut files: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in diff.lines() {
        if let Some(path) = line.strip_prefix("+++ ") {
            current = match path.trim_end() {
                "/dev/null" => None,
                path => Some(path.strip_prefix("b/").unwrap_or(path).to_owned()),
            };
            continue;
        }
        let (Some(path), Some(header)) = (&current, line.strip_prefix("@@ ")) else { continue };
        let Some(new) = header.split_whitespace().find_map(|part| part.strip_prefix('+')) else { continue };
        let (start, count) = match new.split_once(',') {
            Some((start, count)) => (start.parse::<usize>(), count.parse::<usize>()),
            None => (new.parse::<usize>(), Ok(1)),
        };
        let (Ok(start), Ok(count)) = (start, count) else { continue };
        let range = if count == 0 {
            // Lines deleted after line `start` (1-based): the line that follows, 0-based `start`.
            (start, start)
        } else {
            (start - 1, start - 1 + count - 1)
        };
        files.entry(path.clone()).or_default().push(range);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_become_new_line_ranges_per_file() {
        let diff = "\
diff --git a/src/a.py b/src/a.py
index 1..2 100644
--- a/src/a.py
+++ b/src/a.py
@@ -3 +3 @@ def f():
-    return x
+    return y
@@ -10,0 +11,2 @@ def g():
+    a = 1
+    b = 2
@@ -20,2 +22,0 @@ def h():
-    gone = 1
-    gone = 2
diff --git a/old.rs b/old.rs
deleted file mode 100644
--- a/old.rs
+++ /dev/null
@@ -1,3 +0,0 @@
-fn main() {}
diff --git a/new.rs b/new.rs
new file mode 100644
--- /dev/null
+++ b/new.rs
@@ -0,0 +1,2 @@
+fn main() {
+}
";
        let found = changed_lines(diff);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found["src/a.py"], [(2, 2), (10, 11), (22, 22)]);
        assert_eq!(found["new.rs"], [(0, 1)]);
    }
}
