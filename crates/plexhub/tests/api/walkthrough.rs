//! README's walkthrough and the guide's section 2 run as written: every ```sh block marked
//! `<!-- walkthrough -->`, README's first, in order, against one hub and the sample binaries,
//! and each output they show (the `#   …` lines under a command) is checked against what the
//! command printed (a command shown answering `error: …` must fail). In shown output `…` stands for any text and `<secret>` for a secret; a word
//! with either (`phk_3f9c….<secret>`) stands, in later commands, for what it matched.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use regex::Regex;
use tokio::process::{Child, Command};

use crate::helpers::{ADMIN, Backend, cargo_build, spawn};

const README: &str = include_str!("../../../../README.md");
const GUIDE: &str = include_str!("../../../../docs/PLUGIN_COMMUNICATION.md");

/// The hub address the docs use; the test's hub stands in for it.
const DOCS_HUB: &str = "http://127.0.0.1:4000";

/// One command of a block and the output the docs show under it.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
    /// Runs in the background (`&`, or a stream the docs stop with Ctrl-C).
    background: bool,
}

/// The steps of every `<!-- walkthrough -->` block of `doc`.
fn steps(doc: &str) -> Vec<Vec<Step>> {
    let mut blocks = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "<!-- walkthrough -->" {
            continue;
        }
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "a ```sh block must follow the marker"
        );
        let mut block: Vec<Step> = Vec::new();
        let mut pending = String::new();
        for line in lines.by_ref().take_while(|line| *line != "```") {
            if let Some(shown) = line.strip_prefix("#   ") {
                let step = block.last_mut().expect("shown output follows a command");
                step.shown.push(shown.to_owned());
                continue;
            }
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            pending.push_str(line.trim_end_matches('\\').trim_end());
            if line.ends_with('\\') {
                pending.push(' ');
                continue;
            }
            let full = std::mem::take(&mut pending);
            let (command, comment) = match full.find("  #") {
                Some(at) => (full[..at].trim().to_owned(), full[at..].to_owned()),
                None => (full.trim().to_owned(), String::new()),
            };
            let detached = command.ends_with('&');
            block.push(Step {
                command: command.trim_end_matches('&').trim().to_owned(),
                shown: Vec::new(),
                background: detached || comment.contains("Ctrl-C"),
            });
        }
        blocks.push(block);
    }
    blocks
}

/// A line of shown output as a pattern, with one group per placeholder word.
fn pattern(shown: &str) -> (Regex, Vec<String>) {
    // An arrow is the docs' annotation, not output.
    let shown = shown.split('←').next().unwrap_or_default().trim();
    let mut words = Vec::new();
    let parts: Vec<String> = shown
        .split_whitespace()
        .map(|word| {
            if word == "…" {
                return ".*".to_owned();
            }
            if !word.contains('…') && !word.contains("<secret>") {
                return regex::escape(word);
            }
            words.push(word.to_owned());
            // The hex digits before `…` (an id's start) are an example too.
            let inner = example_id()
                .replace_all(&regex::escape(word), r"\S*")
                .replace(r"<secret>", r"\S+");
            format!("({inner})")
        })
        .collect();
    let regex = Regex::new(&format!("^{}$", parts.join(r"\s+"))).expect("pattern");
    (regex, words)
}

/// An example id's visible start and the ellipsis after it, in a shown word.
fn example_id() -> &'static Regex {
    static EXAMPLE_ID: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    EXAMPLE_ID.get_or_init(|| Regex::new("[0-9a-f]*…").expect("pattern"))
}

/// Matches the shown lines, in order, against `output`'s lines (a shown `…` alone skips any);
/// returns the placeholder words and what they matched, or the first line not found.
fn matches(shown: &[String], output: &str) -> Result<Vec<(String, String)>, String> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    let mut at = 0;
    let mut found = Vec::new();
    for line in shown.iter().filter(|line| line.trim() != "…") {
        let (regex, words) = pattern(line);
        let hit = lines[at..]
            .iter()
            .position(|actual| regex.is_match(actual))
            .ok_or_else(|| line.clone())?;
        let captures = regex.captures(lines[at + hit]).expect("matched");
        for (index, word) in words.into_iter().enumerate() {
            found.push((word, captures[index + 1].to_owned()));
        }
        at += hit + 1;
    }
    Ok(found)
}

/// The sample plugins' binaries, built beside the scaffold test's, and the CLI, linked into a
/// directory put first on the PATH.
async fn binaries(root: &Path, dir: &Path) {
    let built = cargo_build(
        root,
        &["-p", "plexhub-example-crm", "-p", "plexhub-example-hello"],
        "the sample plugins",
    )
    .await;
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_plexhub"), dir.join("plexhub")).expect("link");
    for sample in ["plexhub-crm", "plexhub-hello"] {
        std::os::unix::fs::symlink(built.join(sample), dir.join(sample)).expect("link");
    }
}

#[tokio::test]
async fn the_walkthrough_and_the_guide_run_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("checkout");
    let bin = tempfile::tempdir().expect("temp dir");
    binaries(&root, bin.path()).await;
    let app = spawn(Backend::Sqlite).await.expect("hub");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut known: Vec<(String, String)> = Vec::new();
    let mut detached: Vec<Child> = Vec::new();
    let blocks: Vec<Vec<Step>> = steps(README).into_iter().chain(steps(GUIDE)).collect();
    assert!(
        blocks.len() >= 5,
        "found {} walkthrough blocks",
        blocks.len()
    );
    for block in blocks {
        let mut streams: Vec<Child> = Vec::new();
        for step in block {
            if step.command.starts_with("alias ") {
                continue;
            }
            let mut command = step
                .command
                .replace(DOCS_HUB, &app.base)
                .replace("./target/release/", "");
            // Longest first: `3f9c…` is also part of `phk_3f9c….<secret>`.
            known.sort_by_key(|(word, _)| std::cmp::Reverse(word.len()));
            for (word, actual) in &known {
                command = command.replace(word.as_str(), actual);
            }
            let mut shell = Command::new("bash");
            shell
                .args(["-c", &command])
                .current_dir(&root)
                .env("PATH", &path)
                .env("PLEXHUB_URL", &app.base)
                .env("PLEXHUB_ADMIN_TOKEN", ADMIN)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            if step.background {
                let log = bin
                    .path()
                    .join(format!("background-{}.log", detached.len() + streams.len()));
                let file = std::fs::File::create(&log).expect("log file");
                let child = shell
                    .stdout(file.try_clone().expect("log file"))
                    .stderr(file)
                    .spawn()
                    .expect("bash starts");
                let shown = step.shown.clone();
                let seen = tokio::time::timeout(Duration::from_secs(20), async {
                    loop {
                        let output = std::fs::read_to_string(&log).unwrap_or_default();
                        if let Ok(found) = matches(&shown, &output) {
                            return found;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .await;
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let found = seen.unwrap_or_else(|_| {
                    panic!(
                        "`{}` never printed what the docs show:\n{output}",
                        step.command
                    )
                });
                known.extend(found);
                if step.shown.is_empty() {
                    streams.push(child);
                } else {
                    detached.push(child);
                }
                continue;
            }
            let run = tokio::time::timeout(Duration::from_secs(60), shell.output())
                .await
                .expect("the command ends within a minute")
                .expect("bash runs");
            let output = format!(
                "{}{}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
            // A command the docs show refused (`error: …`) must fail; any other must succeed.
            let refused = step.shown.iter().any(|line| line.starts_with("error:"));
            assert_eq!(
                !run.status.success(),
                refused,
                "`{}` exited with {}:\n{output}",
                step.command,
                run.status
            );
            match matches(&step.shown, &output) {
                Ok(found) => known.extend(found),
                Err(line) => panic!(
                    "`{}` did not print the docs' line {line:?}; it printed:\n{output}",
                    step.command
                ),
            }
        }
        // A block's streams (watch) end with it, as Ctrl-C would end them.
        for mut stream in streams {
            let _ = stream.start_kill();
            let _ = stream.wait().await;
        }
    }
    for mut child in detached {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
