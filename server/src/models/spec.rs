//! Model specs: what the `model` setting names, parsed.

use std::path::PathBuf;

/// Where the model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    /// A `.gguf` file on disk.
    Path(PathBuf),
    /// `hf:OWNER/REPO/FILE.gguf`, optionally `@REVISION` after the repo and `#sha256=HEX` at the end.
    HuggingFace { repo: String, file: String, revision: String, sha256: Option<String> },
    /// The deterministic test backend; see `engine::test_backend`. Test builds only.
    #[cfg(feature = "test-backend")]
    Test(String),
}

impl ModelSpec {
    pub fn parse(text: &str) -> Result<ModelSpec, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("no model is set: set `model` to a path to a .gguf file or to hf:OWNER/REPO/FILE.gguf".into());
        }
        #[cfg(feature = "test-backend")]
        if let Some(rest) = text.strip_prefix("test:") {
            return Ok(ModelSpec::Test(rest.to_owned()));
        }
        let Some(rest) = text.strip_prefix("hf:") else {
            return Ok(ModelSpec::Path(PathBuf::from(text)));
        };
        let (rest, sha256) = match rest.split_once("#sha256=") {
            Some((rest, hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (rest, Some(hex.to_ascii_lowercase()))
            }
            Some(_) => return Err(format!("`{text}`: #sha256= must be followed by 64 hex digits")),
            None => (rest, None),
        };
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        let [owner, repo, file] = parts[..] else {
            return Err(format!("`{text}` is not hf:OWNER/REPO/FILE.gguf"));
        };
        let (repo, revision) = repo.split_once('@').unwrap_or((repo, "main"));
        if owner.is_empty() || repo.is_empty() || file.is_empty() || revision.is_empty() {
            return Err(format!("`{text}` is not hf:OWNER/REPO/FILE.gguf"));
        }
        Ok(ModelSpec::HuggingFace {
            repo: format!("{owner}/{repo}"),
            file: file.to_owned(),
            revision: revision.to_owned(),
            sha256,
        })
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSpec::Path(path) => write!(f, "{}", path.display()),
            ModelSpec::HuggingFace { repo, file, .. } => write!(f, "hf:{repo}/{file}"),
            #[cfg(feature = "test-backend")]
            ModelSpec::Test(rest) => write!(f, "test:{rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_hub_specs() {
        assert_eq!(ModelSpec::parse("/m/a.gguf"), Ok(ModelSpec::Path("/m/a.gguf".into())));
        assert_eq!(
            ModelSpec::parse("hf:o/r/sub/f.gguf"),
            Ok(ModelSpec::HuggingFace {
                repo: "o/r".into(),
                file: "sub/f.gguf".into(),
                revision: "main".into(),
                sha256: None
            })
        );
        let hex = "AB".repeat(32);
        assert_eq!(
            ModelSpec::parse(&format!("hf:o/r@v2/f.gguf#sha256={hex}")),
            Ok(ModelSpec::HuggingFace {
                repo: "o/r".into(),
                file: "f.gguf".into(),
                revision: "v2".into(),
                sha256: Some("ab".repeat(32))
            })
        );
    }

    #[test]
    fn malformed_specs_are_errors() {
        for bad in ["", "hf:", "hf:o/r", "hf:o//f.gguf", "hf:o/r/f.gguf#sha256=12"] {
            assert!(ModelSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
