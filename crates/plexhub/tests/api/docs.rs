//! The plugin communication guide stays true: its code blocks marked as taken from a file of
//! the repository appear in that file verbatim (so they compile), and its troubleshooting table
//! explains every error code the hub documents in its OpenAPI document.

use std::path::Path;

use reqwest::Method;

use crate::helpers::{Backend, spawn};

const GUIDE: &str = include_str!("../../../../docs/PLUGIN_COMMUNICATION.md");

/// The guide's `<!-- snippet: <path> -->` blocks: the file and the code of the block after it.
fn snippets(guide: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- snippet: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let opening = lines.next().unwrap_or_default();
        assert!(
            opening.starts_with("```"),
            "a code block must follow the snippet of {path}"
        );
        let code: Vec<&str> = lines.by_ref().take_while(|line| *line != "```").collect();
        assert!(code.len() > 1, "the snippet of {path} is (nearly) empty");
        found.push((path.to_owned(), code.join("\n")));
    }
    found
}

#[test]
fn the_guide_quotes_the_examples_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let snippets = snippets(GUIDE);
    assert!(snippets.len() >= 8, "found {} snippets", snippets.len());
    for (path, code) in snippets {
        let file = std::fs::read_to_string(root.join(&path))
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        assert!(
            file.contains(&code),
            "docs/PLUGIN_COMMUNICATION.md quotes {path}, which no longer contains:\n{code}"
        );
    }
}

#[tokio::test]
async fn the_guide_explains_every_error_code() {
    let app = spawn(Backend::Sqlite).await.expect("sqlite always runs");
    let document = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;
    let codes = document.body["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(codes.len() > 40, "the hub documents its codes");
    let missing: Vec<String> = codes
        .iter()
        .filter_map(|code| code.as_str())
        .filter(|code| !GUIDE.contains(&format!("| `{code}` |")))
        .map(str::to_owned)
        .collect();
    assert!(
        missing.is_empty(),
        "the troubleshooting table lacks {missing:?}"
    );
}
