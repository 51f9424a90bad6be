//! The open-file limit a server needs: raised at start-up to what `max_connections` asks for.
//!
//! Linux starts most processes with a soft `RLIMIT_NOFILE` of 1 024, so a node told to take
//! 50 000 connections (issue 24) would fail its 1 000th `accept` with `EMFILE` and serve on
//! under a limit nobody chose. memcached raises the limit to `-c` at start-up and exits when it
//! cannot; ringcache raises the soft limit to what the servers of this process need, and the
//! hard limit with it when the process may (root), else up to the hard limit, and when that is not enough it says so in a
//! warning naming both numbers and what to do, then serves with what it has (the accept loop
//! already backs off on `EMFILE`: docs/operations.md, "Connections").

/// Descriptors beyond the client connections: listeners, the metrics endpoint, the runtime's
/// epoll and wakers, config and TLS files, DNS sockets, a node's connections to its peers.
pub const HEADROOM: u64 = 256;

/// What [`raise`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Descriptors asked for.
    pub wanted: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to `connections` + [`HEADROOM`] (never lowers it), up to
/// the hard limit (raised too when this process may), and warns when that falls short.
/// Called once per server started in this process, so `ringcache local`'s nodes and proxy
/// each ask for theirs.
pub fn raise(connections: usize) -> Option<Outcome> {
    use rlimit::Resource;
    let wanted = (connections as u64).saturating_add(HEADROOM);
    let (soft, hard) = match Resource::NOFILE.get() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit (RLIMIT_NOFILE): {e}");
            return None;
        }
    };
    let mut now = soft;
    let mut hard = hard;
    if wanted > hard {
        // As memcached does: a process allowed to (root, CAP_SYS_RESOURCE) raises the hard
        // limit too; anyone else gets `EPERM` and takes what the hard limit allows.
        if Resource::NOFILE.set(wanted, wanted).is_ok() {
            now = wanted;
            hard = wanted;
        }
    }
    let target = wanted.min(hard);
    if target > now {
        match Resource::NOFILE.set(target, hard) {
            Ok(()) => now = target,
            Err(e) => tracing::warn!("cannot raise the open-file limit to {target}: {e}"),
        }
    }
    if now < wanted {
        tracing::warn!(
            "max_connections needs {wanted} open files but the limit is {now} (hard limit \
             {hard}): connections past about {} will be refused by the kernel; raise the hard \
             limit (`ulimit -Hn`, systemd's LimitNOFILE=, docker's --ulimit nofile=) or lower \
             max_connections",
            now.saturating_sub(HEADROOM)
        );
    } else if now > soft {
        tracing::info!("open-file limit raised from {soft} to {now} for max_connections");
    }
    Some(Outcome {
        wanted,
        soft: now,
        hard,
    })
}
