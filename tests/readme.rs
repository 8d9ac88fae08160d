//! README says only what is true: every config key in the configuration table
//! (docs/CONFIGURATION.md) exists and every key is in it; every command-line flag
//! README shows exists and every flag is shown.

use std::collections::BTreeSet;

use clap::CommandFactory;

const README: &str = include_str!("../README.md");
const CONFIGURATION: &str = include_str!("../docs/CONFIGURATION.md");

/// The section of README under `## title`, up to the next `## `.
fn section(title: &str) -> &'static str {
    let start = README
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has no section {title:?}"));
    let rest = &README[start + 4 + title.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// Every key path of the config: tables are walked, anything else (arrays
/// included) is a key.
fn config_keys() -> BTreeSet<String> {
    fn walk(v: &toml::Value, path: &mut Vec<String>, out: &mut BTreeSet<String>) {
        match v {
            toml::Value::Table(t) if !t.is_empty() => {
                for (k, child) in t {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.join("."));
            }
        }
    }
    let mut out = BTreeSet::new();
    let defaults = toml::Value::try_from(gattway::config::Config::default()).unwrap();
    walk(&defaults, &mut Vec::new(), &mut out);
    out
}

#[test]
fn the_config_table_documents_every_key_and_only_keys() {
    let mut documented = BTreeSet::new();
    for line in CONFIGURATION.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        for key in first_cell.split('`').skip(1).step_by(2) {
            documented.insert(key.trim_start_matches("[[").trim_end_matches("]]").to_string());
        }
    }
    let keys = config_keys();
    let missing: Vec<_> = keys.difference(&documented).collect();
    // Keys whose default is "none" are not in the defaults: a file setting one is
    // refused only if the key does not exist (`unknown field`), not for its type.
    let exists = |key: &String| {
        keys.contains(key)
            || toml::from_str::<gattway::config::Config>(&format!("{key} = 0"))
                .err()
                .is_none_or(|e| !e.to_string().contains("unknown field"))
    };
    let unknown: Vec<_> = documented.iter().filter(|k| !exists(k)).collect();
    assert!(
        missing.is_empty(),
        "config keys docs/CONFIGURATION.md does not document: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/CONFIGURATION.md documents keys that do not exist: {unknown:?}"
    );
}

#[test]
fn the_command_line_section_shows_every_flag_and_only_flags() {
    let mut flags = BTreeSet::new();
    let mut subcommands = BTreeSet::new();
    let cli = gattway::cli::Cli::command();
    let mut commands = vec![&cli];
    commands.extend(cli.get_subcommands());
    for c in &commands {
        if c.get_name() != "gattway" {
            subcommands.insert(c.get_name().to_string());
        }
        for a in c.get_arguments() {
            if let Some(long) = a.get_long() {
                if !["help", "version"].contains(&long) {
                    flags.insert(format!("--{long}"));
                }
            }
        }
    }
    let shown = section("Command line");
    let block = shown
        .split("```")
        .nth(1)
        .expect("a code block of the command line");
    let shown_flags: BTreeSet<String> = block
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = flags.difference(&shown_flags).collect();
    let unknown: Vec<_> = shown_flags
        .difference(&flags)
        .filter(|f| *f != "--help" && *f != "--version")
        .collect();
    assert!(
        missing.is_empty(),
        "flags README's command line does not show: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "README shows flags that do not exist: {unknown:?}"
    );
    for s in subcommands {
        assert!(
            block.contains(&format!("\n  {s}")),
            "subcommand {s} missing from README's command line"
        );
    }
}
