//! The background sweep: ringcache's LRU crawler.
//!
//! Two jobs need a walk over every segment, and both may be slow on a big cache, so neither runs
//! on the request path: removing items a `flush_all` made invisible or that expired (memcached
//! leaves them to its LRU crawler too; segments left mostly dead are then compacted), and
//! re-weighing segments after `cache_memlimit` so that moka evicts down to (or fills up to) the
//! new limit. One thread is started on demand and exits when there is
//! nothing left to do; requests made while it runs are folded into another pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::counters::C;
use super::{hash, ItemRef, Shared, Status};

/// Whether a sweep is running or wanted.
#[derive(Debug, Default)]
pub(super) struct Sweep {
    running: AtomicBool,
    requested: AtomicBool,
}

impl Sweep {
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// Asks for a sweep, starting the sweep thread unless one is running (it will do another pass).
pub(super) fn start(shared: &Arc<Shared>) {
    let s = &shared.sweep;
    s.requested.store(true, Ordering::Release);
    if s.running.swap(true, Ordering::AcqRel) {
        return;
    }
    let me = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("ringcache-sweep".into())
        .spawn(move || run(&me));
    if spawned.is_err() {
        // No thread to be had: memory is still reclaimed as items are read or evicted.
        s.running.store(false, Ordering::Release);
    }
}

fn run(shared: &Shared) {
    let s = &shared.sweep;
    loop {
        while s.requested.swap(false, Ordering::AcqRel) {
            pass(shared);
        }
        s.running.store(false, Ordering::Release);
        // A request made between the last pass and clearing `running` found the flag still
        // set and left: pick it up unless another thread already has.
        if !s.requested.load(Ordering::Acquire) || s.running.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}

/// One walk over every segment (segments made meanwhile may or may not be seen; only a list of
/// segment handles is collected, a few per MiB of cache): dead items leave the index, and
/// segments weighed under an older memory limit are re-weighed. Then the maintenance that
/// made due (compaction of emptied segments, moka's evictions after a lowered limit).
pub(super) fn pass(shared: &Shared) {
    let common = &shared.common;
    let now = common.clock.now();
    let epoch = common.weights.epoch.load(Ordering::Acquire);
    for seg in shared.segments.all() {
        let end = seg.published();
        let mut off = 0;
        while off < end {
            // SAFETY: items are contiguous from 0 to `published`, each `footprint` long.
            let item = unsafe { ItemRef::at(seg.clone(), off as u32) };
            off += item.footprint();
            let dead = common.status(&item, now);
            if dead == Status::Live {
                continue;
            }
            let h = hash(item.key());
            let _g = shared.lock(h);
            if shared.unlink_if_same(h, &item) {
                common.counters.incr(h, C::CrawlerReclaimed);
                if dead == Status::Expired && !item.fetched() {
                    common.counters.incr(h, C::ExpiredUnfetched);
                }
            }
        }
        if seg.epoch.load(Ordering::Relaxed) != epoch {
            let w = seg.lock();
            if !w.retired {
                // The same segment again: moka calls the weigher and adjusts its total.
                shared.cache.insert(seg.id, seg.clone());
                common.due.store(true, Ordering::Release);
            }
        }
    }
    shared.maintain_now();
}
