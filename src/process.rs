//! What `ringcache node` does as a process for memcached's `-P` and `-u`: the pid file, and
//! giving up root once the listeners are bound (so a node started by root may still listen on
//! a port below 1024 and read root-owned certificates, as memcached does).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// A pid file, written at creation and removed on drop (memcached's `-P`, removed at exit).
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's id and a newline to `path`.
    pub fn write(path: &Path) -> Result<PidFile, Error> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| Error::Config(format!("pid file {}: {e}", path.display())))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// When the process runs as root, becomes `user` (its uid, primary gid and supplementary
/// groups), for good; otherwise does nothing, as memcached ignores `-u` then. glibc applies
/// setuid/setgid to every thread of the process, the runtime's workers included.
pub fn drop_privileges(user: &str) -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let fail = |what: &str| {
        Error::Config(format!(
            "-u {user}: {what}: {}",
            std::io::Error::last_os_error()
        ))
    };
    let name = CString::new(user).map_err(|_| Error::Config(format!("-u {user:?}: bad name")))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is read at once,
    // before any other call that could reuse it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(Error::Config(format!("-u {user}: no such user")));
    }
    // SAFETY: pw is non-null and points at a valid passwd entry.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // Groups first: once the uid is not root, they can no longer be changed.
    // SAFETY: name is a valid C string; initgroups reads it only.
    if unsafe { libc::initgroups(name.as_ptr(), gid) } != 0 {
        return Err(fail("initgroups"));
    }
    // SAFETY: plain system calls on integers.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(fail("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(fail("setuid"));
    }
    Ok(())
}
