//! Finding the binaries a test runs. `env!("CARGO_BIN_EXE_ringcache")` exists only inside the
//! ringcache package's own tests; everything else (the bench, its tests) finds the binary here.

use std::path::{Path, PathBuf};

/// `name` in `/usr/bin` (Debian's memcached), else on `PATH`.
pub fn system_bin(name: &str) -> Option<PathBuf> {
    find_binary(&format!("/usr/bin/{name}"), name)
}

/// `path` if it is a file, else `name` on `PATH`.
pub fn find_binary(path: &str, name: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}

/// Debian's memcached, if installed.
pub fn memcached_bin() -> Option<PathBuf> {
    system_bin("memcached")
}

/// The `ringcache` binary for a test outside the ringcache package: `$RINGCACHE_BIN`, else
/// `ringcache` in the target directory this test runs from (`target/<profile>/deps/test-HASH`),
/// debug first, then release. `None` when it was not built (`cargo test --workspace` and
/// `cargo build --release` build it).
pub fn ringcache_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RINGCACHE_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    ringcache_in(target, &["debug", "release"])
}

/// `target/<profile>/ringcache` for the first profile in `profiles` that has it.
pub fn ringcache_in(target: &Path, profiles: &[&str]) -> Option<PathBuf> {
    profiles
        .iter()
        .map(|p| target.join(p).join("ringcache"))
        .find(|p| p.is_file())
}
