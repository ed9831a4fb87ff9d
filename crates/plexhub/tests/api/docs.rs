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

/// The guide's Node example (`<!-- run: node … -->`) verifies signatures the hub's own code
/// makes: accepted once, refused when replayed, tampered or stale, and accepted with either
/// secret during a rotation's overlap.
#[test]
fn the_guides_node_verifier_accepts_the_hubs_signatures() {
    use plexhub_core::signing::{HmacSigner, SignedRequest, SigningSecret};

    let node = std::process::Command::new("node").arg("--version").output();
    if node.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "node is required under CI (the guide's Node example is tested)"
        );
        eprintln!("note: node not found; the guide's Node example was not run");
        return;
    }
    let marker = "<!-- run: node verify-request.mjs -->";
    let code: String = GUIDE
        .split_once(marker)
        .and_then(|(_, rest)| rest.trim_start().strip_prefix("```js\n"))
        .and_then(|rest| rest.split_once("\n```"))
        .map(|(code, _)| code.to_owned())
        .expect("the guide's Node example");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("verify-request.mjs"), code).expect("write example");

    let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
    let now: i64 = 1_800_000_000_000;
    let request = SignedRequest {
        method: "GET",
        path: "/contacts/42",
        query: "limit=5",
        tenant_id: "5f0c2a54-7d0e-4b7e-9f65-0c1f0c9d7e11",
        caller: "plugin-analytics",
        request_id: "req-1",
        user_id: "user-7",
        workspace_id: "",
    };
    let one = HmacSigner::new(std::slice::from_ref(&old)).expect("signer");
    let both = HmacSigner::new(&[new.clone(), old.clone()]).expect("signer");
    let case = |path: &str, signature: String, at: i64, expected: &str| {
        serde_json::json!({
            "request": {
                "method": "GET", "path": path, "query": "limit=5",
                "headers": {
                    "x-plexhub-signature": signature,
                    "x-tenant-id": request.tenant_id,
                    "x-caller-plugin-id": request.caller,
                    "x-request-id": request.request_id,
                    "x-user-id": request.user_id,
                },
            },
            "now": at,
            "expected": expected,
        })
    };
    let fresh = one.sign(&request, now);
    let cases = serde_json::json!([
        case("/contacts/42", fresh.clone(), now + 10, "ok"),
        case("/contacts/42", fresh, now + 20, "replayed"),
        case(
            "/contacts/43",
            one.sign(&request, now + 1),
            now + 10,
            "mismatch"
        ),
        case(
            "/contacts/42",
            one.sign(&request, now - 600_000),
            now,
            "stale"
        ),
        case("/contacts/42", both.sign(&request, now + 2), now + 10, "ok"),
    ]);
    let secrets = serde_json::json!({ old.key_id(): old.secret_text() });
    let driver = format!(
        "import {{ verifyPlexhubRequest }} from './verify-request.mjs';\n\
         const secrets = {secrets};\n\
         for (const c of {cases}) {{\n\
           const got = verifyPlexhubRequest(c.request, secrets, c.now);\n\
           console.log(got === c.expected ? 'pass' : `FAIL: expected ${{c.expected}}, got ${{got}}`);\n\
         }}\n"
    );
    std::fs::write(dir.path().join("driver.mjs"), driver).expect("write driver");
    let run = std::process::Command::new("node")
        .arg("driver.mjs")
        .current_dir(dir.path())
        .output()
        .expect("node runs");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        out.lines().filter(|line| *line == "pass").count(),
        5,
        "{out}"
    );
}
