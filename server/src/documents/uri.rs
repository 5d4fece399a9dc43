//! `file://` URIs and local paths: decoding, encoding, and how a path is shown in prompts.

use std::path::{Path, PathBuf};

/// The local path of a `file://` URI, with percent-escapes decoded.
pub fn to_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok()));
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    Some(PathBuf::from(String::from_utf8_lossy(&decoded).into_owned()))
}

/// The `file://` URI of an absolute path, percent-encoding every byte but unreserved ones and `/`.
pub fn from_path(path: &Path) -> String {
    let mut uri = String::from("file://");
    for byte in path.to_string_lossy().bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// A file's path as the prompt shows it: relative to the workspace root when inside it.
pub fn display_path(uri: &str, root: Option<&Path>) -> String {
    let path = to_path(uri);
    match (root, &path) {
        (Some(root), Some(path)) => path.strip_prefix(root).unwrap_or(path).display().to_string(),
        (None, Some(path)) => {
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
        }
        (_, None) => uri.rsplit('/').next().unwrap_or(uri).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_uris_round_trip() {
        for path in ["/home/a b/x.py", "/tmp/100%/é😀.rs", "/p/#q?r;s.py", "/plain/file.rs"] {
            let uri = from_path(Path::new(path));
            assert!(!uri[7..].contains([' ', '#', '?']), "{uri}");
            assert_eq!(to_path(&uri).as_deref(), Some(Path::new(path)), "{uri}");
        }
        assert_eq!(from_path(Path::new("/home/a b/x.py")), "file:///home/a%20b/x.py");
    }

    #[test]
    fn bad_escapes_stay_as_they_are() {
        for (uri, path) in
            [("file:///a%2", "/a%2"), ("file:///a%zzb", "/a%zzb"), ("file:///%", "/%"), ("file:///%41", "/A")]
        {
            assert_eq!(to_path(uri).as_deref(), Some(Path::new(path)), "{uri}");
        }
        assert_eq!(to_path("untitled:Untitled-1"), None);
    }

    #[test]
    fn display_paths() {
        let root = Path::new("/ws");
        assert_eq!(display_path("file:///ws/pkg/a%20b.py", Some(root)), "pkg/a b.py");
        assert_eq!(display_path("file:///elsewhere/x.py", Some(root)), "/elsewhere/x.py");
        assert_eq!(display_path("file:///elsewhere/x.py", None), "x.py");
        assert_eq!(display_path("untitled:Untitled-1", None), "untitled:Untitled-1");
    }
}
