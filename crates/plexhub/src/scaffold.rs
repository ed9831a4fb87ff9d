//! `plexhub new plugin`: writes a standalone plugin project (Rust or TypeScript) that builds
//! outside this workspace, with the SDK taken from the checkout the CLI was built from.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use plexhub_core::ids::{PluginId, ServiceName};

/// The port the generated plugin listens on by default.
const DEFAULT_PORT: u16 = 3300;

/// `plexhub new …`
#[derive(Subcommand)]
pub enum NewCommand {
    /// Write a plugin project: a manifest with one service and a dependency on CRM, a main that
    /// registers, heartbeats, serves a signed-request-verified route and calls CRM, and a README
    /// with the commands that publish, install, run and check it.
    Plugin {
        /// The plugin's name: lowercase letters, digits and hyphens (its id is `plugin-<name>`,
        /// its service `<name>.hello`).
        name: String,
        /// Language of the project.
        #[arg(long, value_enum, default_value_t = Language::Rust)]
        lang: Language,
        /// Where to write it (default `./<name>`); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The plexhub checkout whose SDK the project uses (default: the one this CLI was
        /// built from).
        #[arg(long)]
        checkout: Option<PathBuf>,
    },
}

/// A generated project's language.
#[derive(Clone, Copy, ValueEnum)]
pub enum Language {
    /// Rust, with the `plexhub-sdk` crate.
    Rust,
    /// TypeScript on Node ≥ 20, with the `@plexhub/sdk` package.
    Ts,
}

/// Runs `plexhub new …`.
pub fn run(command: NewCommand) -> anyhow::Result<()> {
    let NewCommand::Plugin {
        name,
        lang,
        dir,
        checkout,
    } = command;
    let plugin_id = PluginId::parse(&format!("plugin-{name}")).map_err(|_| {
        anyhow::anyhow!("invalid name {name:?}: use lowercase letters, digits and hyphens")
    })?;
    let service = ServiceName::parse(&format!("{name}.hello"))
        .map_err(|error| anyhow::anyhow!("invalid name {name:?}: {error}"))?;
    let checkout = match checkout {
        Some(path) => path,
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")),
    };
    let checkout = checkout.canonicalize().with_context(|| {
        format!(
            "the plexhub checkout {} is not there (the SDK is not published yet): pass --checkout <path of a plexhub clone>",
            checkout.display()
        )
    })?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    if dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        bail!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    let (sdk, language, files) = match lang {
        Language::Rust => (checkout.join("crates/plexhub-sdk"), "Rust", RUST_FILES),
        Language::Ts => (checkout.join("sdks/typescript"), "TypeScript", TS_FILES),
    };
    if !sdk.is_dir() {
        bail!(
            "{} has no SDK at {}: pass --checkout <path of a plexhub clone>",
            checkout.display(),
            sdk.display()
        );
    }
    let (build_command, run_command, main_file, lang_name) = match lang {
        Language::Rust => ("cargo build", "cargo run", "`src/main.rs`", "rust"),
        Language::Ts => (
            "npm install && npm run build",
            "npm start",
            "`src/main.ts`",
            "ts",
        ),
    };
    let port = DEFAULT_PORT.to_string();
    let sdk_path = sdk.to_string_lossy();
    let fill = |template: &str| {
        [
            ("{{name}}", name.as_str()),
            ("{{plugin_id}}", plugin_id.as_str()),
            ("{{service}}", service.as_str()),
            ("{{sdk_path}}", sdk_path.as_ref()),
            ("{{port}}", port.as_str()),
            ("{{language}}", language),
            ("{{lang}}", lang_name),
            ("{{build_command}}", build_command),
            ("{{run_command}}", run_command),
            ("{{main_file}}", main_file),
        ]
        .iter()
        .fold(template.to_owned(), |text, (placeholder, value)| {
            text.replace(placeholder, value)
        })
    };
    let common = [
        ("manifest.json", include_str!("../templates/manifest.json")),
        ("README.md", include_str!("../templates/README.md")),
    ];
    for (path, template) in common.iter().chain(files) {
        write(&dir.join(path), &fill(template))?;
    }
    if let Language::Rust = lang {
        // The versions this checkout builds and tests with (cargo drops what the project does
        // not use).
        let lock = checkout.join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, dir.join("Cargo.lock"))
                .with_context(|| format!("cannot copy {}", lock.display()))?;
        }
    }
    println!("wrote {} ({language}) in {}", plugin_id, dir.display());
    println!("next: read {}", dir.join("README.md").display());
    Ok(())
}

/// The Rust project's own files.
const RUST_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/main.rs", include_str!("../templates/rust/src/main.rs")),
];

/// The TypeScript project's own files.
const TS_FILES: &[(&str, &str)] = &[
    ("package.json", include_str!("../templates/ts/package.json")),
    (
        "tsconfig.json",
        include_str!("../templates/ts/tsconfig.json"),
    ),
    ("src/main.ts", include_str!("../templates/ts/src/main.ts")),
];

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
