//! Build script: the git commit the binary is built from, for `ringcache_build_info{commit}`
//! (src/metrics.rs). `RINGCACHE_COMMIT` in the environment wins (the Docker image passes it as
//! a build argument: its build context has no `.git`); else `git rev-parse`; else "unknown".
//! Nothing here can fail the build: a tarball without git history still builds.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RINGCACHE_COMMIT");
    let commit = std::env::var("RINGCACHE_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RINGCACHE_COMMIT={commit}");
}

/// `git rev-parse --short=12 HEAD`, if this is a git checkout; asks cargo to run this again
/// when HEAD moves (a commit or a checkout rewrites the files watched).
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    if !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            let path = Path::new(&dir).join(file);
            // A watched file that does not exist would rerun this on every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}
