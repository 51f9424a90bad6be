//! One stored item: a 40-byte header (reference count included) and the key and value bytes,
//! all in a single allocation, handled through a one-word pointer ([`ItemRef`]).
//!
//! memcached keeps an item as one slab chunk (header, key, value); ringcache does the same with
//! one heap block per item, so a 100-byte value costs one allocation rather than an `Arc` plus a
//! separate buffer. The handle is a thin pointer with the reference count in the header (not
//! `Arc<Item>`, a two-word pointer to a block with two counts): moka keeps the value inline in
//! its per-entry record, and a one-word value keeps that record in a smaller allocator class.
//! The value, key and client flags never change once an item exists: a new value is a new item
//! that replaces the old one in the cache, so a reader holding an [`ItemRef`] never sees a
//! half-written value. What memcached changes in place on a live item is kept in atomics:
//! the expiry (touch, gat, `T`), the CAS (meta invalidation), the last access time, and the
//! fetched / stale / token-sent bits.
//!
//! Times are Unix seconds in 32 bits (good until 2106), which keeps the header at 40 bytes.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::fmt;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::atomic::{self, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use bytes::Bytes;
use ringcache_client::protocol::parse::item_size;

/// Fetched since it was stored (memcached `ITEM_FETCHED`: the `h` flag, `fetch=yes`).
const FETCHED: u8 = 1;
/// Marked stale by a meta invalidation (`ITEM_STALE`: the `X` flag).
const STALE: u8 = 2;
/// A client has been handed the recache token (`ITEM_TOKEN_SENT`: `W` once, then `Z`).
const TOKEN_SENT: u8 = 4;
/// The key was sent base64-encoded (`ms … b`, memcached `ITEM_KEY_BINARY`): meta replies and
/// `me` show it encoded, whatever form a later request names it in.
pub(super) const KEY_BINARY: u8 = 8;

/// memcached's `ITEM_UPDATE_INTERVAL`: a write-side touch of an existing item (a refused `add`,
/// an in-place `incr`) only moves its last-access time when it is older than this.
const UPDATE_INTERVAL: u64 = 60;

/// The longest key an item can hold (the header keeps the key length in 16 bits). The parser
/// allows 250 bytes; the store refuses anything longer than this rather than truncating.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

/// The most key and value bytes one item can hold (the header keeps their length in 32 bits).
/// memcached's own item limit is 1 GiB; the store refuses anything longer than this.
pub const MAX_DATA_LEN: usize = u32::MAX as usize;

/// Exptime stored for "already expired" (a negative exptime from the client): a second after
/// the epoch, so it is never 0 ("never") and always in the past.
pub(super) const EXPIRED: u64 = 1;

/// The fixed part of an item. `repr(C)` so its size (40 bytes) is exactly where the data starts.
#[repr(C)]
struct Head {
    /// Handles ([`ItemRef`]) to this item; it is freed when the last one drops.
    refs: AtomicU32,
    /// Key and value bytes after the header.
    len: u32,
    cas: AtomicU64,
    /// Store sequence number: an immediate `flush_all` invalidates every item at or below the
    /// sequence it saw. Exact even within one second, and independent of the CAS, which a client
    /// may choose itself (meta `E`).
    seq: u64,
    /// Absolute Unix time the item expires at; 0 = never.
    exptime: AtomicU32,
    /// memcached's `it->time`: set when stored, moved by fetches (see [`Item::bump`]); `la=` in
    /// metadump, the `l` flag, and the time a delayed `flush_all` compares against.
    time: AtomicU32,
    flags: u32,
    key_len: u16,
    state: AtomicU8,
    /// The memory-limit generation this item was weighed under (see `Store::set_memory_limit`).
    epoch: AtomicU8,
}

/// Header followed by the key and the value.
#[repr(C)]
struct Raw<D: ?Sized> {
    head: Head,
    data: D,
}

/// One cache item; always handled through an [`ItemRef`].
#[repr(transparent)]
pub struct Item(Raw<[u8]>);

/// A counted handle to an [`Item`], one word wide: `Arc<Item>` without the weak count and with
/// the length kept in the item instead of the pointer.
pub struct ItemRef {
    ptr: NonNull<Head>,
}

// SAFETY: an item's fields are immutable or atomics, and its reference count is atomic, exactly
// as for `Arc<T>` with `T: Send + Sync`.
unsafe impl Send for ItemRef {}
// SAFETY: as above.
unsafe impl Sync for ItemRef {}

/// The layout of an item with `n` bytes of key and value: the header, the bytes, padding to
/// the header's alignment (what `Layout::for_value` computes for a `Raw<[u8]>`). `None` only
/// beyond `isize::MAX`.
fn layout(n: usize) -> Option<Layout> {
    let size = std::mem::size_of::<Head>().checked_add(n)?;
    Some(
        Layout::from_size_align(size, std::mem::align_of::<Head>())
            .ok()?
            .pad_to_align(),
    )
}

/// The fields of a new item other than its bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub flags: u32,
    /// Absolute Unix time, 0 = never (see [`super::expiry`]).
    pub exptime: u64,
    pub cas: u64,
    pub seq: u64,
    /// Initial last-access time.
    pub time: u64,
    /// Initial FETCHED/STALE/TOKEN_SENT/KEY_BINARY bits.
    pub state: u8,
}

/// Unix seconds as stored: saturating at the 32-bit limit.
#[inline]
fn secs(t: u64) -> u32 {
    t.min(u64::from(u32::MAX)) as u32
}

impl Item {
    #[inline]
    fn head(&self) -> &Head {
        &self.0.head
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.0.data[..usize::from(self.head().key_len)]
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.0.data[usize::from(self.head().key_len)..]
    }

    /// Client flags.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.head().flags
    }

    /// The CAS unique.
    #[inline]
    pub fn cas(&self) -> u64 {
        self.head().cas.load(Relaxed)
    }

    /// Absolute expiry in Unix seconds; 0 = never.
    #[inline]
    pub fn exptime(&self) -> u64 {
        u64::from(self.head().exptime.load(Relaxed))
    }

    /// Seconds of life left at `now` (negative once expired); `None` = never expires.
    pub fn ttl(&self, now: u64) -> Option<i64> {
        match self.exptime() {
            0 => None,
            e => Some((e as i64).saturating_sub(now.min(i64::MAX as u64) as i64)),
        }
    }

    /// Unix time of the last access as memcached tracks it (`la=` in metadump).
    #[inline]
    pub fn last_access(&self) -> u64 {
        u64::from(self.head().time.load(Relaxed))
    }

    /// Fetched at least once since it was stored.
    #[inline]
    pub fn fetched(&self) -> bool {
        self.head().state.load(Relaxed) & FETCHED != 0
    }

    /// Marked stale by `md … I` or `ms … I`.
    #[inline]
    pub fn stale(&self) -> bool {
        self.head().state.load(Relaxed) & STALE != 0
    }

    /// A reader has already been handed the recache token.
    #[inline]
    pub fn token_sent(&self) -> bool {
        self.head().state.load(Relaxed) & TOKEN_SENT != 0
    }

    /// The key was stored base64-encoded (`ms <b64> … b`): memcached returns it encoded, with
    /// the `b` flag, in `mg … k` and `me`, even when a request names it in plain text.
    #[inline]
    pub fn binary_key(&self) -> bool {
        self.head().state.load(Relaxed) & KEY_BINARY != 0
    }

    /// memcached's accounting size of the item (header, CAS, key, value, `\r\n`, flags), as
    /// compared with the item size limit and shown as `size=` by `me` and metadump.
    pub fn size(&self) -> usize {
        item_size(self.key().len(), self.value().len(), self.flags())
    }

    /// The memcached slab class an item of this size would live in (`cls=`).
    pub fn slab_class(&self) -> u32 {
        super::dump::slab_class(self.size())
    }

    /// Whether it is expired at `now` (memcached: `exptime <= current_time`).
    #[inline]
    pub fn expired(&self, now: u64) -> bool {
        let e = self.exptime();
        e != 0 && e <= now
    }

    #[inline]
    pub(super) fn seq(&self) -> u64 {
        self.head().seq
    }

    /// The raw state bits, to carry over into a rewritten item.
    #[inline]
    pub(super) fn state(&self) -> u8 {
        self.head().state.load(Relaxed)
    }

    /// Records a fetch the way memcached's segmented LRU bump does: the first fetch only marks
    /// the item fetched; later fetches move its last-access time to now.
    #[inline]
    pub(super) fn bump(&self, now: u64) {
        let head = self.head();
        if head.state.load(Relaxed) & FETCHED == 0 {
            head.state.fetch_or(FETCHED, Relaxed);
            return;
        }
        let now = secs(now);
        if head.time.load(Relaxed) != now {
            head.time.store(now, Relaxed);
        }
    }

    /// memcached's `do_item_update`: moves the last-access time to now only when it is more
    /// than a minute old (a refused `add`, an in-place `incr`).
    pub(super) fn refresh_time(&self, now: u64) {
        if self.last_access() + UPDATE_INTERVAL < now {
            self.head().time.store(secs(now), Relaxed);
        }
    }

    /// Sets a new expiry in place (touch, gat, meta `T`/`N`, `md … I T`).
    pub(super) fn set_exptime(&self, exptime: u64) {
        self.head().exptime.store(secs(exptime), Relaxed);
    }

    /// Sets a new CAS in place (`md … I` keeps the value and takes a new CAS).
    pub(super) fn set_cas(&self, cas: u64) {
        self.head().cas.store(cas, Relaxed);
    }

    /// Marks the item stale and frees the token, so the next reader wins it (`md … I`).
    pub(super) fn invalidate(&self) {
        let state = &self.head().state;
        state.fetch_or(STALE, Relaxed);
        state.fetch_and(!TOKEN_SENT, Relaxed);
    }

    /// Takes the recache token; returns whether it had already been taken.
    pub(super) fn take_token(&self) -> bool {
        self.head().state.fetch_or(TOKEN_SENT, Relaxed) & TOKEN_SENT != 0
    }

    #[inline]
    pub(super) fn epoch(&self) -> u8 {
        self.head().epoch.load(Relaxed)
    }

    #[inline]
    pub(super) fn set_epoch(&self, epoch: u8) {
        self.head().epoch.store(epoch, Relaxed);
    }

    /// The state bits of a stale rewrite (`ms … I` with an older CAS): stale, keeping the
    /// token-sent bit of the item it replaces.
    pub(super) fn stale_state(old: &Item) -> u8 {
        STALE | (old.state() & TOKEN_SENT)
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value_len", &self.value().len())
            .field("flags", &self.flags())
            .field("exptime", &self.exptime())
            .field("cas", &self.cas())
            .field("last_access", &self.last_access())
            .field("fetched", &self.fetched())
            .field("stale", &self.stale())
            .field("token_sent", &self.token_sent())
            .field("binary_key", &self.binary_key())
            .finish()
    }
}

impl ItemRef {
    /// A new item holding `key` followed by the concatenation of `value` parts (append and
    /// prepend join two parts without an intermediate buffer). The bytes are copied, so the
    /// item never keeps the caller's (network) buffer alive.
    ///
    /// `key` must be at most [`MAX_KEY_LEN`] bytes and key and value together at most
    /// [`MAX_DATA_LEN`]; the store checks before calling (and this panics otherwise).
    pub(super) fn new(key: &[u8], value: &[&[u8]], meta: Meta) -> ItemRef {
        let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        let key = &key[..usize::from(key_len)];
        let n = value
            .iter()
            .fold(key.len(), |n, part| n.saturating_add(part.len()));
        let len = u32::try_from(n).expect("item data over MAX_DATA_LEN");
        let head = Head {
            refs: AtomicU32::new(1),
            len,
            cas: AtomicU64::new(meta.cas),
            seq: meta.seq,
            exptime: AtomicU32::new(secs(meta.exptime)),
            time: AtomicU32::new(secs(meta.time)),
            flags: meta.flags,
            key_len,
            state: AtomicU8::new(meta.state & (FETCHED | STALE | TOKEN_SENT | KEY_BINARY)),
            epoch: AtomicU8::new(0),
        };
        // Only a size beyond `isize::MAX` can fail, which no key and value already in memory
        // reach; treat it as the allocation failure it would be.
        let Some(layout) = layout(n) else {
            handle_alloc_error(Layout::new::<Head>())
        };
        // SAFETY: `layout` has a non-zero size (the header alone is 40 bytes). The fat pointer
        // built from the allocation and `n` describes a `Raw<[u8]>` (a `repr(C)` struct whose
        // unsized tail is `[u8]`, so the slice length becomes its metadata) of exactly
        // `layout`'s size and alignment; `Item` is `repr(transparent)` over it. Every byte of
        // the header and data is written before any reference to the item is formed (padding
        // need not be). The handle owns the one reference counted in the header; the block is
        // freed with the same layout, recomputed from `len`, in `ItemRef::drop`.
        unsafe {
            let mem = alloc(layout);
            if mem.is_null() {
                handle_alloc_error(layout);
            }
            let item = ptr::slice_from_raw_parts_mut(mem, n) as *mut Item;
            ptr::addr_of_mut!((*item).0.head).write(head);
            let mut dst = ptr::addr_of_mut!((*item).0.data) as *mut u8;
            for part in std::iter::once(key).chain(value.iter().copied()) {
                ptr::copy_nonoverlapping(part.as_ptr(), dst, part.len());
                dst = dst.add(part.len());
            }
            ItemRef {
                ptr: NonNull::new_unchecked(mem as *mut Head),
            }
        }
    }

    /// The value as `Bytes` that share this item's memory (no copy): the item stays alive as
    /// long as the `Bytes` (or any slice of it) does.
    pub fn value_bytes(&self) -> Bytes {
        if self.value().is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(ValueOf(self.clone()))
    }

    /// Whether two handles point to the same item (`Arc::ptr_eq`).
    #[inline]
    pub fn ptr_eq(a: &ItemRef, b: &ItemRef) -> bool {
        a.ptr == b.ptr
    }

    /// Handles to this item (`Arc::strong_count`), for tests.
    #[cfg(test)]
    pub fn strong_count(this: &ItemRef) -> usize {
        this.head().refs.load(Relaxed) as usize
    }
}

impl Deref for ItemRef {
    type Target = Item;

    #[inline]
    fn deref(&self) -> &Item {
        // SAFETY: `ptr` points to a live item (this handle holds a reference) whose header
        // records its data length; the fat pointer rebuilt from the two is the one `Item::new`
        // created, covering the whole block.
        unsafe {
            let len = (*self.ptr.as_ptr()).len as usize;
            &*(ptr::slice_from_raw_parts(self.ptr.as_ptr() as *const u8, len) as *const Item)
        }
    }
}

impl Clone for ItemRef {
    #[inline]
    fn clone(&self) -> ItemRef {
        // Relaxed, as in `Arc::clone`: a new handle is made from an existing one, which
        // already keeps the item alive.
        let old = self.head().refs.fetch_add(1, Relaxed);
        if old >= i32::MAX as u32 {
            // As `Arc` does on overflow: unreachable without leaking billions of handles.
            std::process::abort();
        }
        ItemRef { ptr: self.ptr }
    }
}

impl Drop for ItemRef {
    #[inline]
    fn drop(&mut self) {
        // The ordering of `Arc::drop`: release our uses of the item, and acquire everyone
        // else's before freeing it.
        if self.head().refs.fetch_sub(1, atomic::Ordering::Release) != 1 {
            return;
        }
        atomic::fence(atomic::Ordering::Acquire);
        // SAFETY: this was the last handle, so nobody else can reach the block. It was
        // allocated in `Item::new` with `layout(len)` (which succeeded then, so it does now),
        // and the header needs no drop (atomics and integers).
        unsafe {
            let len = (*self.ptr.as_ptr()).len as usize;
            if let Some(layout) = layout(len) {
                dealloc(self.ptr.as_ptr() as *mut u8, layout);
            }
        }
    }
}

impl fmt::Debug for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Owner of an item's value for [`ItemRef::value_bytes`].
struct ValueOf(ItemRef);

impl AsRef<[u8]> for ValueOf {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            flags: 7,
            exptime: 100,
            cas: 3,
            seq: 1,
            time: 50,
            state: 0,
        }
    }

    #[test]
    fn key_and_value_live_in_one_block() {
        let item = ItemRef::new(b"key", &[b"val", b"ue"], meta());
        assert_eq!(item.key(), b"key");
        assert_eq!(item.value(), b"value");
        assert_eq!(item.flags(), 7);
        assert_eq!(item.cas(), 3);
        assert_eq!(item.exptime(), 100);
        assert_eq!(item.last_access(), 50);
        assert_eq!(std::mem::size_of::<Head>(), 40);
        assert_eq!(std::mem::size_of_val(&*item), 40 + 8);
        assert_eq!(std::mem::size_of::<ItemRef>(), 8);
        let empty = ItemRef::new(b"", &[], meta());
        assert!(empty.key().is_empty() && empty.value().is_empty());
        assert!(empty.value_bytes().is_empty());
    }

    #[test]
    fn value_bytes_share_the_item() {
        let item = ItemRef::new(b"k", &[b"hello"], meta());
        let bytes = item.value_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(bytes.as_ptr(), item.value().as_ptr(), "no copy");
        assert_eq!(ItemRef::strong_count(&item), 2);
        let other = item.clone();
        assert!(ItemRef::ptr_eq(&item, &other));
        drop(bytes);
        drop(other);
        assert_eq!(ItemRef::strong_count(&item), 1);
    }

    #[test]
    fn first_fetch_marks_later_fetches_move_the_time() {
        let item = ItemRef::new(b"k", &[b"v"], meta());
        item.bump(60);
        assert!(item.fetched());
        assert_eq!(
            item.last_access(),
            50,
            "memcached's first bump only sets FETCHED"
        );
        item.bump(61);
        assert_eq!(item.last_access(), 61);
        item.refresh_time(100);
        assert_eq!(item.last_access(), 61, "less than a minute old");
        item.refresh_time(200);
        assert_eq!(item.last_access(), 200);
    }

    #[test]
    fn token_and_stale_bits() {
        let item = ItemRef::new(b"k", &[b"v"], meta());
        assert!(!item.take_token());
        assert!(item.take_token());
        item.invalidate();
        assert!(item.stale() && !item.token_sent());
        assert_eq!(Item::stale_state(&item), STALE);
        item.take_token();
        assert_eq!(Item::stale_state(&item), STALE | TOKEN_SENT);
    }

    #[test]
    fn big_values_round_trip() {
        let v = vec![0xabu8; 1 << 20];
        let item = ItemRef::new(&[b'k'; 250], &[&v], meta());
        assert_eq!(item.key().len(), 250);
        assert_eq!(item.value(), &v[..]);
        assert_eq!(item.size(), 57 + 250 + (1 << 20) + 2 + 4);
    }
}
