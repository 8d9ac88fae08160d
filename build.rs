//! Build-time facts for `gattway --version`: the git commit the binary was built
//! from ("unknown" outside a git checkout, e.g. from crates.io).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=GATTWAY_GIT_COMMIT={commit}");
    // Built again when the checkout moves to another commit. Paths asked of git:
    // in a worktree `.git` is a file, and a watched path that does not exist
    // would run this script, and build the crate, on every build.
    let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) else {
        return;
    };
    println!("cargo:rerun-if-changed={head}");
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        // A branch's ref is its own file, or a line of packed-refs once packed.
        let loose = git(&["rev-parse", "--git-path", &reference]);
        let path = match loose {
            Some(p) if std::path::Path::new(&p).exists() => Some(p),
            _ => git(&["rev-parse", "--git-path", "packed-refs"]),
        };
        if let Some(path) = path {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
