//! Review findings written for people and for CI: text, our JSON, SARIF 2.1.0, GitHub workflow
//! commands and reviewdog's rdjson. Pure: findings and file texts in, a string out.

use serde_json::{json, Value};

use super::{Category, Severity};
use crate::postprocess::findings::Finding;

/// The output formats of `mistral-lsp review`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
    Sarif,
    Github,
    Rdjson,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "text" => Format::Text,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "github" => Format::Github,
            "rdjson" => Format::Rdjson,
            _ => return None,
        })
    }
}

/// The findings of one file, with the text they point into.
pub struct FileFindings<'a> {
    /// The path as reported: relative to where the review ran, `/` separated.
    pub path: &'a str,
    pub text: &'a str,
    pub findings: &'a [Finding],
}

const CATEGORIES: [Category; 4] = [Category::Bug, Category::Security, Category::Performance, Category::Maintainability];

fn rule_id(category: Category) -> String {
    format!("mistral-lsp/{}", category.as_str())
}

fn rule_text(category: Category) -> &'static str {
    match category {
        Category::Bug => "A defect: wrong results, a crash or an unhandled case.",
        Category::Security => "A security problem.",
        Category::Performance => "A serious performance problem.",
        Category::Maintainability => "Code that is likely to cause defects when it is changed.",
    }
}

/// The findings in `format`.
pub fn render(format: Format, files: &[FileFindings]) -> String {
    match format {
        Format::Text => text(files),
        Format::Json => pretty(&ours(files)),
        Format::Sarif => pretty(&sarif(files)),
        Format::Github => github(files),
        Format::Rdjson => pretty(&rdjson(files)),
    }
}

fn pretty(value: &Value) -> String {
    let mut out = serde_json::to_string_pretty(value).unwrap_or_default();
    out.push('\n');
    out
}

/// The lines of `text` (0-based, inclusive), without their line ends.
fn lines_of(text: &str, (first, last): (usize, usize)) -> Vec<&str> {
    text.split('\n').skip(first).take(last + 1 - first).map(|l| l.strip_suffix('\r').unwrap_or(l)).collect()
}

fn text(files: &[FileFindings]) -> String {
    let mut out = String::new();
    for file in files {
        for f in file.findings {
            let (first, last) = (f.lines.0 + 1, f.lines.1 + 1);
            let lines = if first == last { format!("{first}") } else { format!("{first}-{last}") };
            out.push_str(&format!(
                "{}:{lines}: {} [{}] {}\n",
                file.path,
                f.severity.as_str(),
                f.category.as_str(),
                f.message
            ));
            if let Some(fix) = &f.fix {
                for line in lines_of(file.text, f.lines) {
                    out.push_str(&format!("    - {line}\n"));
                }
                for line in fix.lines() {
                    out.push_str(&format!("    + {line}\n"));
                }
            }
        }
    }
    out
}

/// Our JSON: documented in the README (`mistral-lsp review --format json`).
fn ours(files: &[FileFindings]) -> Value {
    let findings: Vec<Value> = files
        .iter()
        .flat_map(|file| {
            file.findings.iter().map(|f| {
                json!({
                    "path": file.path,
                    "startLine": f.lines.0 + 1,
                    "endLine": f.lines.1 + 1,
                    "severity": f.severity.as_str(),
                    "category": f.category.as_str(),
                    "message": f.message,
                    "code": lines_of(file.text, f.lines).join("\n"),
                    "fix": f.fix,
                    "fixGain": f.fix_gain,
                    "fingerprint": fingerprint(file, f),
                })
            })
        })
        .collect();
    json!({ "version": 1, "findings": findings })
}

/// A fingerprint that survives lines moving: the path, the category and the flagged code with
/// its blanks normalized (FNV-1a, 64 bits, hex).
fn fingerprint(file: &FileFindings, finding: &Finding) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let code: Vec<String> =
        lines_of(file.text, finding.lines).iter().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for part in [file.path, finding.category.as_str(), &code.join("\n")] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// SARIF 2.1.0: one run, a rule per category, results with regions, partial fingerprints and
/// fixes that replace whole lines.
fn sarif(files: &[FileFindings]) -> Value {
    let rules: Vec<Value> = CATEGORIES
        .iter()
        .map(|&c| {
            json!({
                "id": rule_id(c),
                "name": c.as_str(),
                "shortDescription": { "text": rule_text(c) },
                "properties": { "tags": ["ai-review"] },
            })
        })
        .collect();
    let mut results = Vec::new();
    for file in files {
        for f in file.findings {
            let index = CATEGORIES.iter().position(|&c| c == f.category).unwrap_or(0);
            let last_text = lines_of(file.text, (f.lines.1, f.lines.1)).join("");
            let region = json!({
                "startLine": f.lines.0 + 1,
                "startColumn": 1,
                "endLine": f.lines.1 + 1,
                "endColumn": last_text.chars().count() + 1,
            });
            let mut result = json!({
                "ruleId": rule_id(f.category),
                "ruleIndex": index,
                "level": sarif_level(f.severity),
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file.path },
                        "region": region,
                    },
                }],
                "partialFingerprints": { "mistralLsp/v1": fingerprint(file, f) },
            });
            if let Some(fix) = &f.fix {
                result["fixes"] = json!([{
                    "description": { "text": "Replace the lines with the suggested fix." },
                    "artifactChanges": [{
                        "artifactLocation": { "uri": file.path },
                        "replacements": [{
                            "deletedRegion": {
                                "startLine": f.lines.0 + 1,
                                "startColumn": 1,
                                "endLine": f.lines.1 + 2,
                                "endColumn": 1,
                            },
                            "insertedContent": { "text": fix },
                        }],
                    }],
                }]);
            }
            results.push(result);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "mistral-lsp",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/mistral-lsp/mistral-lsp",
                    "rules": rules,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// GitHub Actions workflow commands: an annotation per finding.
fn github(files: &[FileFindings]) -> String {
    let mut out = String::new();
    for file in files {
        for f in file.findings {
            let command = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "notice",
            };
            out.push_str(&format!(
                "::{command} file={},line={},endLine={},title={}::{}\n",
                escape_property(file.path),
                f.lines.0 + 1,
                f.lines.1 + 1,
                escape_property(&format!("mistral-lsp ({})", f.category.as_str())),
                escape_data(&f.message),
            ));
        }
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// reviewdog's rdjson: 1-based lines and columns in UTF-8 bytes, fixes as suggestions.
fn rdjson(files: &[FileFindings]) -> Value {
    let mut diagnostics = Vec::new();
    for file in files {
        for f in file.findings {
            let last_text = lines_of(file.text, (f.lines.1, f.lines.1)).join("");
            let first_text = lines_of(file.text, (f.lines.0, f.lines.0)).join("");
            let indent = first_text.len() - first_text.trim_start().len();
            let mut diagnostic = json!({
                "message": f.message,
                "location": {
                    "path": file.path,
                    "range": {
                        "start": { "line": f.lines.0 + 1, "column": indent + 1 },
                        "end": { "line": f.lines.1 + 1, "column": last_text.len() + 1 },
                    },
                },
                "severity": match f.severity {
                    Severity::Error => "ERROR",
                    Severity::Warning => "WARNING",
                    Severity::Info => "INFO",
                },
                "source": { "name": "mistral-lsp" },
                "code": { "value": f.category.as_str() },
            });
            if let Some(fix) = &f.fix {
                diagnostic["suggestions"] = json!([{
                    "range": {
                        "start": { "line": f.lines.0 + 1, "column": 1 },
                        "end": { "line": f.lines.1 + 2, "column": 1 },
                    },
                    "text": fix,
                }]);
            }
            diagnostics.push(diagnostic);
        }
    }
    json!({
        "source": { "name": "mistral-lsp", "url": "https://github.com/mistral-lsp/mistral-lsp" },
        "diagnostics": diagnostics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "def f(xs):\n    total = 0\n    for x in xs:\n        total -= x\n    return total\n";

    fn findings() -> Vec<Finding> {
        vec![
            Finding {
                lines: (3, 3),
                category: Category::Bug,
                severity: Severity::Error,
                message: "Subtracts: the sum, 100%, is wanted".into(),
                fix: Some("        total += x\n".into()),
                fix_gain: Some(2.5),
            },
            Finding {
                lines: (1, 2),
                category: Category::Performance,
                severity: Severity::Info,
                message: "Use sum()".into(),
                fix: None,
                fix_gain: None,
            },
        ]
    }

    fn render_one(format: Format) -> String {
        let findings = findings();
        render(format, &[FileFindings { path: "src/a.py", text: TEXT, findings: &findings }])
    }

    #[test]
    fn text_names_the_place_and_shows_the_fix() {
        assert_eq!(
            render_one(Format::Text),
            "src/a.py:4: error [bug] Subtracts: the sum, 100%, is wanted\n    -         total -= x\n    +         total += x\n\
src/a.py:2-3: info [performance] Use sum()\n"
        );
    }

    #[test]
    fn github_commands_escape_their_properties_and_data() {
        assert_eq!(
            render_one(Format::Github),
            "::error file=src/a.py,line=4,endLine=4,title=mistral-lsp (bug)::Subtracts: the sum, 100%25, is wanted\n\
::notice file=src/a.py,line=2,endLine=3,title=mistral-lsp (performance)::Use sum()\n"
        );
    }

    #[test]
    fn sarif_has_rules_regions_fingerprints_and_fixes() {
        let sarif: Value = serde_json::from_str(&render_one(Format::Sarif)).unwrap();
        let run = &sarif["runs"][0];
        assert_eq!(sarif["version"], "2.1.0");
        assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 4);
        let first = &run["results"][0];
        assert_eq!(first["ruleId"], "mistral-lsp/bug");
        assert_eq!(first["level"], "error");
        let region = &first["locations"][0]["physicalLocation"]["region"];
        assert_eq!(
            (region["startLine"].clone(), region["endLine"].clone(), region["endColumn"].clone()),
            (json!(4), json!(4), json!(19))
        );
        assert_eq!(
            first["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"],
            "        total += x\n"
        );
        assert_eq!(run["results"][1]["level"], "note");
        assert!(run["results"][1].get("fixes").is_none());
    }

    #[test]
    fn fingerprints_follow_the_code_not_its_line() {
        let findings = findings();
        let moved_text = format!("\n\n{TEXT}");
        let mut moved = findings[0].clone();
        moved.lines = (5, 5);
        let here = fingerprint(&FileFindings { path: "a.py", text: TEXT, findings: &findings }, &findings[0]);
        let there = fingerprint(&FileFindings { path: "a.py", text: &moved_text, findings: &[] }, &moved);
        let other = fingerprint(&FileFindings { path: "a.py", text: TEXT, findings: &findings }, &findings[1]);
        assert_eq!(here, there);
        assert_ne!(here, other);
    }

    #[test]
    fn rdjson_counts_bytes_from_one_and_carries_suggestions() {
        let rdjson: Value = serde_json::from_str(&render_one(Format::Rdjson)).unwrap();
        let first = &rdjson["diagnostics"][0];
        assert_eq!(first["location"]["range"]["start"], json!({ "line": 4, "column": 9 }));
        assert_eq!(first["location"]["range"]["end"], json!({ "line": 4, "column": 19 }));
        assert_eq!(first["severity"], "ERROR");
        assert_eq!(first["suggestions"][0]["text"], "        total += x\n");
        let ours: Value = serde_json::from_str(&render_one(Format::Json)).unwrap();
        assert_eq!(ours["findings"][1]["code"], "    total = 0\n    for x in xs:");
    }
}
