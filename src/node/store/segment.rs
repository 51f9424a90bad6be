//! Segments: large fixed-size buffers that items are appended to, and the table that names
//! them by a small id.
//!
//! A segment is written once, front to back, under its own lock; the bytes of an item never
//! change after it is appended (only its header's atomics do), so readers need no lock to read
//! a value: they hold the segment through an `Arc`, and a segment's memory lives until the last
//! reader lets go of it, whatever the cache did with it meanwhile. Segments are what moka holds
//! and evicts (see the store's module doc); items leave one by one only through the index.
//!
//! Ids are small (20 bits) so that an index slot can name a segment and an offset in 8 bytes.
//! An id is reused only after every index entry that pointed into its old segment is gone, so
//! an index entry always names the segment it was made for.
//!
//! The buffers of ordinary segments are recycled through a small [`Pool`] instead of going back
//! to the allocator: a busy cache frees and makes a segment per megabyte written, and an
//! allocator handed that churn from several threads keeps freed megabytes resident (measured
//! under `ringcache-bench soak`: live allocations peaked at 66 MiB while RSS reached 120–150
//! MiB, with mimalloc and with glibc alike). With the pool, the buffers ever allocated are
//! the most segments alive at once plus the pool's few, so the node's RSS follows its memory
//! limit (docs/operations.md, "Memory").

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

/// Segment ids are below this (they fit the index slot's 20 bits).
pub(super) const MAX_SEGMENTS: u32 = 1 << 20;

/// The largest ordinary segment (offsets are 18 bits of 4-byte units).
pub(super) const MAX_SEGMENT_SIZE: usize = 1 << 20;

/// Table chunks are allocated on first use: a small cache touches one.
const CHUNK: usize = 1024;

/// Writer-side state of a segment.
#[derive(Debug, Default)]
pub(super) struct WriteState {
    /// Bytes handed out so far.
    pub used: usize,
    /// No more appends: the segment is being reclaimed.
    pub retired: bool,
}

/// One segment.
pub(super) struct Segment {
    pub id: u32,
    /// Creation order (ids are reused, this is not).
    pub serial: u64,
    ptr: NonNull<u8>,
    cap: usize,
    /// The flush generation it was created in: an immediate `flush_all` invalidates every
    /// item of every segment from an older generation.
    pub gen: u64,
    /// The TTL bucket it was opened for.
    pub bucket: u8,
    /// Appends and retirement.
    write: Mutex<WriteState>,
    /// Every item below this offset is completely written (walkers read up to here).
    published: AtomicUsize,
    /// Items appended (for the index share of its weight).
    pub items: AtomicU32,
    /// Bytes of items the index still points to.
    pub live: AtomicU64,
    /// The expiry moka was last told (Unix seconds); 0 = none (the segment never expires).
    pub told: AtomicU32,
    /// Still the open segment of its bucket.
    pub open: AtomicBool,
    /// Queued for compaction (once).
    pub queued: AtomicBool,
    /// Claimed by a reclaim (eviction, expiry or compaction): done once.
    pub reclaiming: AtomicBool,
    /// The memory-limit generation its weight was computed under.
    pub epoch: AtomicU8,
    /// Where the buffer goes when the segment is dropped, if it has the pool's size.
    pool: Option<Arc<Pool>>,
}

// SAFETY: the buffer is only written below `used` by the holder of `write`, at offsets no
// reader can reach until the item is published (through the index lock or `published`);
// published bytes are immutable except header fields, which are only accessed as atomics.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

impl Segment {
    /// A zeroed segment of `cap` bytes (a multiple of 8). Zeroed memory comes from the OS
    /// untouched, so an empty segment costs address space, not resident memory. (The store's
    /// segments come from [`Table::create`], which recycles buffers.)
    #[cfg(test)]
    pub(super) fn new(id: u32, serial: u64, cap: usize, gen: u64, bucket: u8) -> Segment {
        let cap = cap.max(8).next_multiple_of(8);
        Segment::with_buffer(id, serial, alloc_buffer(cap), cap, gen, bucket, None)
    }

    /// A segment over `ptr` (`cap` bytes from [`alloc_buffer`]; written or zeroed, so every
    /// byte is initialized), returning it to `pool` when dropped.
    fn with_buffer(
        id: u32,
        serial: u64,
        ptr: NonNull<u8>,
        cap: usize,
        gen: u64,
        bucket: u8,
        pool: Option<Arc<Pool>>,
    ) -> Segment {
        Segment {
            id,
            serial,
            ptr,
            cap,
            gen,
            bucket,
            write: Mutex::new(WriteState::default()),
            published: AtomicUsize::new(0),
            items: AtomicU32::new(0),
            live: AtomicU64::new(0),
            told: AtomicU32::new(0),
            open: AtomicBool::new(true),
            queued: AtomicBool::new(false),
            reclaiming: AtomicBool::new(false),
            epoch: AtomicU8::new(0),
            pool,
        }
    }

    #[inline]
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// The start of the buffer.
    #[inline]
    pub(super) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The writer lock (appends, sealing, retirement).
    pub(super) fn lock(&self) -> MutexGuard<'_, WriteState> {
        // Appends write bytes before they publish them: a panic between leaves unpublished
        // bytes nobody reads, so a poisoned lock is still sound to use.
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks bytes up to `end` as completely written (the caller holds the writer lock).
    #[inline]
    pub(super) fn publish(&self, end: usize) {
        self.published.store(end, Ordering::Release);
    }

    /// Bytes of complete items.
    #[inline]
    pub(super) fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            if pool.put(self.ptr, self.cap) {
                return;
            }
        }
        // SAFETY: from `alloc_buffer` with this size, and no longer in use.
        unsafe { free_buffer(self.ptr, self.cap) };
    }
}

/// `cap` zeroed bytes, 8-aligned (`cap` a non-zero multiple of 8).
fn alloc_buffer(cap: usize) -> NonNull<u8> {
    let layout = Layout::from_size_align(cap, 8).unwrap_or_else(|_| {
        // Only a size beyond `isize::MAX`, which no item limit allows.
        handle_alloc_error(Layout::new::<u64>())
    });
    // SAFETY: `layout` has a non-zero size.
    let raw = unsafe { alloc_zeroed(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}

/// Frees a buffer of `alloc_buffer`.
///
/// # Safety
/// `ptr` came from `alloc_buffer(cap)` and nothing uses it any more.
unsafe fn free_buffer(ptr: NonNull<u8>, cap: usize) {
    dealloc(ptr.as_ptr(), Layout::from_size_align_unchecked(cap, 8));
}

/// A buffer owned by the pool.
struct Buffer(NonNull<u8>);

// SAFETY: a pooled buffer is owned by the pool alone; nothing else points into it.
unsafe impl Send for Buffer {}

/// Freed buffers of the ordinary segment size, kept for the next segments instead of being
/// returned to the allocator (see the module doc). At most `max` are kept: a burst of frees
/// beyond that goes back to the allocator.
pub(super) struct Pool {
    size: usize,
    max: usize,
    free: Mutex<Vec<Buffer>>,
}

impl Pool {
    /// A pool of buffers of `size` bytes (a multiple of 8) holding at most `max`.
    pub(super) fn new(size: usize, max: usize) -> Pool {
        Pool {
            size,
            max,
            free: Mutex::new(Vec::with_capacity(max)),
        }
    }

    /// A pooled buffer of `cap` bytes, or a fresh zeroed one. A pooled one holds an old
    /// segment's bytes, which nothing reads: readers stop at `published`.
    fn take(&self, cap: usize) -> NonNull<u8> {
        if cap == self.size {
            if let Some(b) = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                return b.0;
            }
        }
        alloc_buffer(cap)
    }

    /// Keeps `ptr` if it has the pool's size and there is room; `false` if the caller frees it.
    fn put(&self, ptr: NonNull<u8>, cap: usize) -> bool {
        if cap != self.size {
            return false;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() >= self.max {
            return false;
        }
        free.push(Buffer(ptr));
        true
    }

    /// Buffers held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let size = self.size;
        for b in self
            .free
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            // SAFETY: pooled buffers came from `alloc_buffer(size)` and are unused.
            unsafe { free_buffer(b.0, size) };
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id)
            .field("cap", &self.cap)
            .field("gen", &self.gen)
            .field("bucket", &self.bucket)
            .field("published", &self.published())
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish()
    }
}

type Slot = RwLock<Option<Arc<Segment>>>;

/// Segment id → segment. Lower ids are reused first, so only as many chunks as the most
/// segments ever alive at once are allocated.
pub(super) struct Table {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    /// Buffers of ordinary segments.
    pool: Arc<Pool>,
    free: Mutex<Vec<u32>>,
    next: AtomicU32,
    serial: AtomicU64,
    /// Registered segments.
    count: AtomicU32,
}

impl Table {
    /// A table whose segments of `segment_size` bytes recycle their buffers through a pool
    /// of at most `pooled`.
    pub(super) fn new(segment_size: usize, pooled: usize) -> Table {
        Table {
            chunks: (0..MAX_SEGMENTS as usize / CHUNK)
                .map(|_| OnceLock::new())
                .collect(),
            pool: Arc::new(Pool::new(segment_size.max(8).next_multiple_of(8), pooled)),
            free: Mutex::new(Vec::new()),
            next: AtomicU32::new(0),
            serial: AtomicU64::new(0),
            count: AtomicU32::new(0),
        }
    }

    fn slot(&self, id: u32) -> &Slot {
        let chunk = self.chunks[id as usize / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| RwLock::new(None)).collect());
        &chunk[id as usize % CHUNK]
    }

    /// A fresh segment under a free id, registered. `None` when every id is taken (a
    /// million live segments: the caller evicts first).
    pub(super) fn create(&self, cap: usize, gen: u64, bucket: u8) -> Option<Arc<Segment>> {
        let id = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            match free.pop() {
                Some(id) => id,
                None => {
                    let id = self.next.fetch_add(1, Ordering::Relaxed);
                    if id >= MAX_SEGMENTS {
                        self.next.store(MAX_SEGMENTS, Ordering::Relaxed);
                        return None;
                    }
                    id
                }
            }
        };
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let cap = cap.max(8).next_multiple_of(8);
        let ptr = self.pool.take(cap);
        let seg = Arc::new(Segment::with_buffer(
            id,
            serial,
            ptr,
            cap,
            gen,
            bucket,
            Some(self.pool.clone()),
        ));
        *self.slot(id).write().unwrap_or_else(|p| p.into_inner()) = Some(seg.clone());
        self.count.fetch_add(1, Ordering::Relaxed);
        Some(seg)
    }

    /// The segment under `id`.
    #[inline]
    pub(super) fn get(&self, id: u32) -> Option<Arc<Segment>> {
        let chunk = self.chunks.get(id as usize / CHUNK)?.get()?;
        chunk[id as usize % CHUNK]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `seg` is the segment registered under its id (not one whose id was freed and
    /// taken again). An item is only ever indexed into its registered segment, so an index
    /// entry naming `seg`'s id belongs to `seg` exactly when this holds.
    pub(super) fn holds(&self, seg: &Segment) -> bool {
        self.slot(seg.id)
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|s| std::ptr::eq(&**s, seg))
    }

    /// Unregisters `seg` and frees its id. The caller has removed every index entry into it.
    pub(super) fn remove(&self, seg: &Segment) {
        let mut slot = self.slot(seg.id).write().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|s| std::ptr::eq(&**s, seg)) {
            *slot = None;
            drop(slot);
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.free
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(seg.id);
        }
    }

    /// Every registered segment (a few handles per MiB of cache).
    pub(super) fn all(&self) -> Vec<Arc<Segment>> {
        let end = self.next.load(Ordering::Relaxed).min(MAX_SEGMENTS);
        (0..end).filter_map(|id| self.get(id)).collect()
    }

    /// Registered segments.
    #[cfg(test)]
    pub(super) fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reused_after_removal() {
        let t = Table::new(64, 2);
        let a = t.create(64, 0, 0).unwrap();
        let b = t.create(64, 0, 0).unwrap();
        assert_eq!((a.id, b.id), (0, 1));
        assert!(Arc::ptr_eq(&t.get(1).unwrap(), &b));
        t.remove(&a);
        assert!(t.get(0).is_none());
        assert_eq!(t.count(), 1);
        let c = t.create(64, 0, 0).unwrap();
        assert_eq!(c.id, 0, "the freed id first");
        // Removing a stale handle does not unregister the new segment under its id.
        t.remove(&a);
        assert!(Arc::ptr_eq(&t.get(0).unwrap(), &c));
        assert_eq!(t.all().len(), 2);
    }

    /// The pool hands a dropped segment's buffer to the next segment of its size, keeps at
    /// most its `max`, and leaves buffers of other sizes to the allocator.
    #[test]
    fn dropped_segment_buffers_are_reused_up_to_the_pools_size() {
        let t = Table::new(64, 2);
        let segs: Vec<_> = (0..3).map(|_| t.create(64, 0, 0).unwrap()).collect();
        let bases: Vec<usize> = segs.iter().map(|s| s.base() as usize).collect();
        for s in &segs {
            t.remove(s);
        }
        drop(segs);
        assert_eq!(t.pool.len(), 2, "three freed, the pool keeps two");
        let again = t.create(64, 0, 0).unwrap();
        assert!(bases.contains(&(again.base() as usize)), "a pooled buffer");
        assert_eq!(t.pool.len(), 1);
        let large = t.create(128, 0, 0).unwrap();
        t.remove(&large);
        drop(large);
        assert_eq!(t.pool.len(), 1, "a buffer of another size is not pooled");
    }

    #[test]
    fn segments_are_zeroed_and_aligned() {
        let s = Segment::new(3, 0, 100, 0, 0);
        assert_eq!(s.cap(), 104);
        assert_eq!(s.base() as usize % 8, 0);
        // SAFETY: within the buffer, nobody else has it.
        let bytes = unsafe { std::slice::from_raw_parts(s.base(), s.cap()) };
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
