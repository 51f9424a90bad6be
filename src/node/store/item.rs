//! One stored item: a 16-byte header, the expiry and the client flags only when they are not
//! zero, the key and the value, appended to a segment at a 4-byte-aligned offset; handled
//! through an [`ItemRef`] (the segment and the offset).
//!
//! memcached's item header is 48–56 bytes; this one is 16:
//!
//! ```text
//! 0  cas      u64  atomic (meta invalidation changes it in place)   } swapped when the item
//! 8  time     u32  atomic, last access (memcached's it->time)       } starts 4 bytes past an
//!                                                                   } 8-byte boundary
//! 12 klen     u8
//! 13 state    u8   atomic: fetched, stale, token sent, binary key, accessed; and the layout
//!                  bits HAS_EXPTIME, HAS_FLAGS, set when the item is written, never changed
//! 14 vlen     u16  the value's length, or u16::MAX: a u32 length follows
//! 16 [exptime u32 atomic, Unix seconds, if HAS_EXPTIME]
//!    [flags u32 if HAS_FLAGS] [vlen u32 if long] key value, padded to 4 bytes
//! ```
//!
//! Items are padded to 4 bytes, not 8. The CAS is an `AtomicU64`, which must sit at an
//! 8-aligned address, so its place depends on where the item starts: at byte 0 when the item
//! starts on an 8-byte boundary (the time at 8), at byte 4 otherwise (the time at 0). Either
//! way the first 12 bytes hold both, and every other field keeps its offset.
//!
//! The header was 24 bytes until issue 24: a u32 expiry every item paid for, a u32 value
//! length, and a byte of layout bits. Now values under 64 KiB (nearly all of a cache's) say
//! their length in 16 bits, the layout bits share the state byte (every later change of that
//! byte is an atomic OR or AND of other bits), and the expiry is there only for an item that
//! has one. Its value is exact and changed in place like memcached's; an item stored without
//! one that is then given one (`touch`, `gat`, meta `T`) has no room for it and is rewritten
//! with it (the store's `retime`: same CAS, same state, the old copy dead), once. Why the
//! expiry is per item rather than per segment is in docs/architecture.md, "Item memory".
//!
//! The key and value never change once appended: a new value is a new item elsewhere, so a
//! reader holding an [`ItemRef`] never sees a half-written value. What memcached changes in
//! place is kept in the header's atomics. Times are Unix seconds in 32 bits (good until 2106).

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use ringcache_client::protocol::parse::item_size;

use super::segment::Segment;

/// Fetched since it was stored (memcached `ITEM_FETCHED`: the `h` flag, `fetch=yes`).
const FETCHED: u8 = 1;
/// Marked stale by a meta invalidation (`ITEM_STALE`: the `X` flag).
const STALE: u8 = 2;
/// A client has been handed the recache token (`ITEM_TOKEN_SENT`: `W` once, then `Z`).
const TOKEN_SENT: u8 = 4;
/// The key was sent base64-encoded (`ms … b`, memcached `ITEM_KEY_BINARY`): meta replies and
/// `me` show it encoded, whatever form a later request names it in.
pub(super) const KEY_BINARY: u8 = 8;
/// Read since it was appended to its segment: an evicted segment carries such items into a
/// fresh one (Segcache's merge), so hot keys survive the eviction of the segment they are in.
const ACCESSED: u8 = 16;

/// Layout bit of the state byte: four bytes of expiry follow the header. Layout bits are set
/// when the item is written and never changed (no atomic update of the state byte touches
/// them).
const HAS_EXPTIME: u8 = 32;
/// Layout bit: four bytes of client flags follow the header (after the expiry, if any).
const HAS_FLAGS: u8 = 64;

/// The state bits a copy of an item carries (all but ACCESSED, which a copy earns anew, and
/// the layout bit, which the copy's own layout decides).
const CARRIED: u8 = FETCHED | STALE | TOKEN_SENT | KEY_BINARY;

/// The fixed header.
pub(super) const HEADER: usize = 16;

/// The 16-bit length field's value that says a u32 length follows (values of 64 KiB − 1 and
/// more).
const LONG: u16 = u16::MAX;

/// memcached's `ITEM_UPDATE_INTERVAL`: a write-side touch of an existing item (a refused `add`,
/// an in-place `incr`) only moves its last-access time when it is older than this.
const UPDATE_INTERVAL: u64 = 60;

/// The longest key an item can hold (the header keeps the key length in 8 bits; memcached's
/// keys are at most 250 bytes). The store refuses anything longer rather than truncating.
pub const MAX_KEY_LEN: usize = u8::MAX as usize;

/// The most key and value bytes one item can hold (the header keeps the value length in 32
/// bits). memcached's own item limit is 1 GiB; the store refuses anything longer than this.
pub const MAX_DATA_LEN: usize = u32::MAX as usize - 64;

/// Exptime stored for "already expired" (a negative exptime from the client): a second after
/// the epoch, so it is never 0 ("never") and always in the past.
pub(super) const EXPIRED: u64 = 1;

/// The fields of a new item other than its bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub flags: u32,
    /// Absolute Unix time, 0 = never (see [`super::expiry`]).
    pub exptime: u64,
    pub cas: u64,
    /// Initial last-access time.
    pub time: u64,
    /// Initial FETCHED/STALE/TOKEN_SENT/KEY_BINARY bits.
    pub state: u8,
}

/// Unix seconds as stored: saturating at the 32-bit limit.
#[inline]
pub(super) fn secs(t: u64) -> u32 {
    t.min(u64::from(u32::MAX)) as u32
}

/// Bytes between the header and the key: the expiry if any, the flags if any, the long
/// length if needed.
#[inline]
fn extras(value_len: usize, has_exptime: bool, has_flags: bool) -> usize {
    4 * (usize::from(has_exptime)
        + usize::from(has_flags)
        + usize::from(value_len >= usize::from(LONG)))
}

/// Bytes an item takes in a segment: header, expiry if any, flags if any, long length if
/// any, key, value, padding to 4.
#[inline]
pub(super) fn footprint(key_len: usize, value_len: usize, flags: u32, exptime: u64) -> usize {
    (HEADER + extras(value_len, exptime != 0, flags != 0))
        .saturating_add(key_len)
        .saturating_add(value_len)
        .saturating_add(3)
        & !3
}

/// Offsets of the CAS and the last-access time in the header of an item at `p` (4-aligned):
/// the CAS takes whichever of bytes 0..8 and 4..12 is 8-aligned in memory, the time the other
/// four.
#[inline]
fn cas_and_time_at(p: *const u8) -> (usize, usize) {
    debug_assert!(p.addr() % 4 == 0);
    let a = p.addr() & 4;
    (a, 8 - 2 * a)
}

/// Writes an item at `dst` (4-aligned, `footprint` bytes, not yet visible to anyone).
///
/// # Safety
/// `dst` must be valid for writes of `footprint(key.len(), Σ parts, meta.flags,
/// meta.exptime)` bytes, 4-aligned, and not read by anyone until the caller publishes it.
pub(super) unsafe fn write(dst: *mut u8, key: &[u8], parts: &[&[u8]], meta: &Meta) {
    let vlen: usize = parts.iter().map(|p| p.len()).sum();
    let (cas_at, time_at) = cas_and_time_at(dst);
    dst.add(cas_at).cast::<u64>().write(meta.cas);
    dst.add(time_at).cast::<u32>().write(secs(meta.time));
    dst.add(12).write(key.len() as u8);
    let mut layout = 0;
    let mut at = HEADER;
    if meta.exptime != 0 {
        layout |= HAS_EXPTIME;
        dst.add(at).cast::<u32>().write(secs(meta.exptime));
        at += 4;
    }
    if meta.flags != 0 {
        layout |= HAS_FLAGS;
        dst.add(at).cast::<u32>().write(meta.flags);
        at += 4;
    }
    dst.add(13).write(meta.state & CARRIED | layout);
    if vlen >= usize::from(LONG) {
        dst.add(14).cast::<u16>().write(LONG);
        dst.add(at).cast::<u32>().write(vlen as u32);
        at += 4;
    } else {
        dst.add(14).cast::<u16>().write(vlen as u16);
    }
    let mut p = dst.add(at);
    for part in std::iter::once(key).chain(parts.iter().copied()) {
        std::ptr::copy_nonoverlapping(part.as_ptr(), p, part.len());
        p = p.add(part.len());
    }
}

/// Where an item's variable parts are, from its immutable header fields.
#[derive(Debug, Clone, Copy)]
struct Layout {
    klen: usize,
    vlen: usize,
    has_exptime: bool,
    has_flags: bool,
}

impl Layout {
    /// Offset of the key (after the header and the optional fields).
    #[inline]
    fn key_at(&self) -> usize {
        HEADER + extras(self.vlen, self.has_exptime, self.has_flags)
    }
}

/// A handle to one item: its segment (kept alive by the handle) and its offset there.
#[derive(Clone)]
pub struct ItemRef {
    seg: Arc<Segment>,
    off: u32,
}

/// The item a handle points to; the two are one type (an item is only ever reached through
/// its segment).
pub type Item = ItemRef;

impl ItemRef {
    /// The item at `off` of `seg`.
    ///
    /// # Safety
    /// A complete item must start at `off` (an index entry or a walk below `published`).
    #[inline]
    pub(super) unsafe fn at(seg: Arc<Segment>, off: u32) -> ItemRef {
        ItemRef { seg, off }
    }

    #[inline]
    fn ptr(&self) -> *mut u8 {
        // SAFETY: `off` is inside the segment (see `at`).
        unsafe { self.seg.base().add(self.off as usize) }
    }

    #[inline]
    fn cas_cell(&self) -> &AtomicU64 {
        let p = self.ptr();
        let (at, _) = cas_and_time_at(p);
        // SAFETY: the CAS field of a complete item, at an 8-aligned address (`at` is chosen
        // from the address), only ever accessed atomically once published; the segment
        // outlives `self`.
        unsafe { &*p.add(at).cast::<AtomicU64>() }
    }

    #[inline]
    fn time_cell(&self) -> &AtomicU32 {
        let p = self.ptr();
        let (_, at) = cas_and_time_at(p);
        self.u32_cell(at)
    }

    /// The expiry field, if the item has one.
    #[inline]
    fn exptime_cell(&self) -> Option<&AtomicU32> {
        (self.state() & HAS_EXPTIME != 0).then(|| self.u32_cell(HEADER))
    }

    #[inline]
    fn u32_cell(&self, at: usize) -> &AtomicU32 {
        // SAFETY: as for `cas_cell`: the time (0 or 8) and the expiry (16) are 4-aligned
        // atomics in an item that starts 4-aligned.
        unsafe { &*self.ptr().add(at).cast::<AtomicU32>() }
    }

    #[inline]
    fn state_cell(&self) -> &AtomicU8 {
        // SAFETY: as for `cas_cell`.
        unsafe { &*self.ptr().add(13).cast::<AtomicU8>() }
    }

    /// The lengths and which optional fields follow the header.
    #[inline]
    fn layout(&self) -> Layout {
        let state = self.state();
        let has_exptime = state & HAS_EXPTIME != 0;
        let has_flags = state & HAS_FLAGS != 0;
        // SAFETY: immutable header fields of a complete item (the u16 at 14 and a long length
        // after the optional fields are 2- and 4-aligned in an item that starts 4-aligned).
        unsafe {
            let p = self.ptr();
            let klen = usize::from(p.add(12).read());
            let vlen = match p.add(14).cast::<u16>().read() {
                LONG => {
                    let at = HEADER + 4 * (usize::from(has_exptime) + usize::from(has_flags));
                    p.add(at).cast::<u32>().read() as usize
                }
                short => usize::from(short),
            };
            Layout {
                klen,
                vlen,
                has_exptime,
                has_flags,
            }
        }
    }

    /// The segment it is in.
    #[inline]
    pub(super) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Its offset in the segment.
    #[inline]
    pub(super) fn offset(&self) -> u32 {
        self.off
    }

    /// Bytes it takes in its segment.
    #[inline]
    pub(super) fn footprint(&self) -> usize {
        let l = self.layout();
        footprint(
            l.klen,
            l.vlen,
            u32::from(l.has_flags),
            u64::from(l.has_exptime),
        )
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        let l = self.layout();
        // SAFETY: immutable bytes of a complete item inside the segment.
        unsafe { std::slice::from_raw_parts(self.ptr().add(l.key_at()), l.klen) }
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        let l = self.layout();
        // SAFETY: as for `key`.
        unsafe { std::slice::from_raw_parts(self.ptr().add(l.key_at() + l.klen), l.vlen) }
    }

    /// Client flags.
    #[inline]
    pub fn flags(&self) -> u32 {
        let state = self.state();
        if state & HAS_FLAGS == 0 {
            return 0;
        }
        let at = HEADER + 4 * usize::from(state & HAS_EXPTIME != 0);
        // SAFETY: immutable field after the header, 4-aligned like the item.
        unsafe { self.ptr().add(at).cast::<u32>().read() }
    }

    /// The CAS unique.
    #[inline]
    pub fn cas(&self) -> u64 {
        self.cas_cell().load(Relaxed)
    }

    /// Absolute expiry in Unix seconds; 0 = never.
    #[inline]
    pub fn exptime(&self) -> u64 {
        self.exptime_cell()
            .map_or(0, |e| u64::from(e.load(Relaxed)))
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
        u64::from(self.time_cell().load(Relaxed))
    }

    #[inline]
    fn state(&self) -> u8 {
        self.state_cell().load(Relaxed)
    }

    /// Fetched at least once since it was stored.
    #[inline]
    pub fn fetched(&self) -> bool {
        self.state() & FETCHED != 0
    }

    /// Marked stale by `md … I` or `ms … I`.
    #[inline]
    pub fn stale(&self) -> bool {
        self.state() & STALE != 0
    }

    /// A reader has already been handed the recache token.
    #[inline]
    pub fn token_sent(&self) -> bool {
        self.state() & TOKEN_SENT != 0
    }

    /// The key was stored base64-encoded (`ms <b64> … b`): memcached returns it encoded, with
    /// the `b` flag, in `mg … k` and `me`, even when a request names it in plain text.
    #[inline]
    pub fn binary_key(&self) -> bool {
        self.state() & KEY_BINARY != 0
    }

    /// Read since it was appended (see [`ACCESSED`]).
    #[inline]
    pub(super) fn accessed(&self) -> bool {
        self.state() & ACCESSED != 0
    }

    /// memcached's accounting size of the item (header, CAS, key, value, `\r\n`, flags), as
    /// compared with the item size limit and shown as `size=` by `me` and metadump.
    pub fn size(&self) -> usize {
        let l = self.layout();
        item_size(l.klen, l.vlen, self.flags())
    }

    /// The memcached slab class an item of this size would live in (`cls=`).
    pub fn slab_class(&self) -> u32 {
        super::slab::slab_class(self.size())
    }

    /// Whether it is expired at `now` (memcached: `exptime <= current_time`).
    #[inline]
    pub fn expired(&self, now: u64) -> bool {
        let e = self.exptime();
        e != 0 && e <= now
    }

    /// The state bits to carry into a copy of this item (all but ACCESSED, which a copy
    /// earns anew).
    #[inline]
    pub(super) fn carried_state(&self) -> u8 {
        self.state() & CARRIED
    }

    /// The fields of a copy of this item, as it is now.
    pub(super) fn meta(&self) -> Meta {
        Meta {
            flags: self.flags(),
            exptime: self.exptime(),
            cas: self.cas(),
            time: self.last_access(),
            state: self.carried_state(),
        }
    }

    /// Records a fetch the way memcached's segmented LRU bump does: the first fetch only marks
    /// the item fetched; later fetches move its last-access time to now. Either way the item
    /// counts as accessed for its segment's eviction.
    #[inline]
    pub(super) fn bump(&self, now: u64) {
        let state = self.state_cell();
        let s = state.load(Relaxed);
        if s & FETCHED == 0 || s & ACCESSED == 0 {
            state.fetch_or(FETCHED | ACCESSED, Relaxed);
            if s & FETCHED == 0 {
                return;
            }
        }
        let now = secs(now);
        let time = self.time_cell();
        if time.load(Relaxed) != now {
            time.store(now, Relaxed);
        }
    }

    /// memcached's `do_item_update`: moves the last-access time to now only when it is more
    /// than a minute old (a refused `add`, an in-place `incr`).
    pub(super) fn refresh_time(&self, now: u64) {
        if self.last_access() + UPDATE_INTERVAL < now {
            self.time_cell().store(secs(now), Relaxed);
        }
    }

    /// Sets a new expiry in place (touch, gat, meta `T`/`N`, `md … I T`) if the item can hold
    /// it: it has an expiry field, or the new expiry is "never". False: the item has no field
    /// for it and must be rewritten with one (the store's `retime`).
    #[must_use]
    pub(super) fn set_exptime(&self, exptime: u64) -> bool {
        match self.exptime_cell() {
            Some(cell) => {
                cell.store(secs(exptime), Relaxed);
                true
            }
            None => exptime == 0,
        }
    }

    /// Sets a new CAS in place (`md … I` keeps the value and takes a new CAS).
    pub(super) fn set_cas(&self, cas: u64) {
        self.cas_cell().store(cas, Relaxed);
    }

    /// Marks the item stale and frees the token, so the next reader wins it (`md … I`).
    pub(super) fn invalidate(&self) {
        let state = self.state_cell();
        state.fetch_or(STALE, Relaxed);
        state.fetch_and(!TOKEN_SENT, Relaxed);
    }

    /// Takes the recache token; returns whether it had already been taken.
    pub(super) fn take_token(&self) -> bool {
        self.state_cell().fetch_or(TOKEN_SENT, Relaxed) & TOKEN_SENT != 0
    }

    /// The state bits of a stale rewrite (`ms … I` with an older CAS): stale, keeping the
    /// token-sent bit of the item it replaces.
    pub(super) fn stale_state(old: &Item) -> u8 {
        STALE | (old.state() & TOKEN_SENT)
    }

    /// The value as `Bytes` that share the segment's memory (no copy): the segment stays
    /// alive as long as the `Bytes` (or any slice of it) does.
    pub fn value_bytes(&self) -> Bytes {
        if self.value().is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(ValueOf(self.clone()))
    }

    /// Whether two handles point to the same item.
    #[inline]
    pub fn ptr_eq(a: &ItemRef, b: &ItemRef) -> bool {
        Arc::ptr_eq(&a.seg, &b.seg) && a.off == b.off
    }

    /// An item alone in a segment of its own, outside any store (tests).
    #[cfg(test)]
    pub(super) fn standalone(key: &[u8], parts: &[&[u8]], meta: Meta) -> ItemRef {
        let n = footprint(
            key.len(),
            parts.iter().map(|p| p.len()).sum(),
            meta.flags,
            meta.exptime,
        );
        let seg = Arc::new(Segment::new(0, 0, n, 0, 0));
        // SAFETY: a fresh, unshared segment of exactly the item's footprint.
        unsafe {
            write(seg.base(), key, parts, &meta);
            ItemRef::at(seg, 0)
        }
    }
}

impl fmt::Debug for ItemRef {
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
            time: 50,
            state: 0,
        }
    }

    #[test]
    fn header_flags_key_and_value() {
        let item = ItemRef::standalone(b"key", &[b"val", b"ue"], meta());
        assert_eq!(item.key(), b"key");
        assert_eq!(item.value(), b"value");
        assert_eq!(item.flags(), 7);
        assert_eq!(item.cas(), 3);
        assert_eq!(item.exptime(), 100);
        assert_eq!(item.last_access(), 50);
        assert_eq!(item.footprint(), 32, "16 + 4 expiry + 4 flags + 8 bytes");
        let plain = ItemRef::standalone(b"key", &[b"value"], Meta { flags: 0, ..meta() });
        assert_eq!(plain.flags(), 0);
        assert_eq!(plain.footprint(), 28, "no flags: 16 + 4 + 8");
        let bare = ItemRef::standalone(
            b"key",
            &[b"value"],
            Meta {
                flags: 0,
                exptime: 0,
                ..meta()
            },
        );
        assert_eq!((bare.flags(), bare.exptime()), (0, 0));
        assert_eq!(bare.footprint(), 24, "neither: 16 + 8");
        assert!(bare.set_exptime(0), "never needs no field");
        assert!(!bare.set_exptime(100), "no room for an expiry");
        assert_eq!(bare.exptime(), 0);
        let flagged = ItemRef::standalone(
            b"key",
            &[b"value"],
            Meta {
                exptime: 0,
                ..meta()
            },
        );
        assert_eq!((flagged.flags(), flagged.exptime()), (7, 0));
        assert_eq!(
            (flagged.key(), flagged.value()),
            (&b"key"[..], &b"value"[..])
        );
        assert!(
            item.set_exptime(0) && item.exptime() == 0,
            "in place, to never"
        );
        assert!(item.set_exptime(5) && item.exptime() == 5);
        assert_eq!((item.flags(), item.key()), (7, &b"key"[..]));
        let empty = ItemRef::standalone(b"", &[], meta());
        assert!(empty.key().is_empty() && empty.value().is_empty());
        assert!(empty.value_bytes().is_empty());
    }

    #[test]
    fn cas_stays_8_aligned_at_either_parity() {
        let seg = Arc::new(Segment::new(0, 0, 96, 0, 0));
        for off in [0u32, 4, 36, 64] {
            // SAFETY: 28 bytes (16 + 4 expiry + 4 flags + "k" + "v", padded) inside the
            // unshared segment.
            let item = unsafe {
                write(seg.base().add(off as usize), b"k", &[b"v"], &meta());
                ItemRef::at(seg.clone(), off)
            };
            assert_eq!(
                std::ptr::from_ref(item.cas_cell()).addr() % 8,
                0,
                "at {off}"
            );
            let fields = (item.cas(), item.exptime(), item.last_access(), item.flags());
            assert_eq!(fields, (3, 100, 50, 7), "at {off}");
            assert_eq!((item.key(), item.value()), (&b"k"[..], &b"v"[..]));
            item.set_cas(u64::MAX - 1);
            assert!(item.set_exptime(u64::from(u32::MAX) - 1));
            let fields = (item.cas(), item.exptime(), item.last_access(), item.flags());
            assert_eq!(fields, (u64::MAX - 1, u64::from(u32::MAX) - 1, 50, 7));
            assert_eq!(item.footprint(), 28);
        }
    }

    #[test]
    fn value_bytes_share_the_segment() {
        let item = ItemRef::standalone(b"k", &[b"hello"], meta());
        let bytes = item.value_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(bytes.as_ptr(), item.value().as_ptr(), "no copy");
        assert_eq!(Arc::strong_count(&item.seg), 2);
        let other = item.clone();
        assert!(ItemRef::ptr_eq(&item, &other));
        drop(bytes);
        drop(other);
        assert_eq!(Arc::strong_count(&item.seg), 1);
    }

    #[test]
    fn first_fetch_marks_later_fetches_move_the_time() {
        let item = ItemRef::standalone(b"k", &[b"v"], meta());
        item.bump(60);
        assert!(item.fetched() && item.accessed());
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
        assert_eq!(item.meta().state, FETCHED, "a copy earns ACCESSED anew");
    }

    #[test]
    fn token_and_stale_bits() {
        let item = ItemRef::standalone(b"k", &[b"v"], meta());
        assert!(!item.take_token());
        assert!(item.take_token());
        item.invalidate();
        assert!(item.stale() && !item.token_sent());
        assert_eq!(Item::stale_state(&item), STALE);
        item.take_token();
        assert_eq!(Item::stale_state(&item), STALE | TOKEN_SENT);
    }

    #[test]
    fn lengths_from_64_kib_take_the_long_field() {
        for (vlen, flags, exptime, foot) in [
            (65_534, 0, 0, 16 + 1 + 65_534 + 1),
            (65_534, 9, 0, 20 + 1 + 65_534 + 1),
            (65_534, 9, 100, 24 + 1 + 65_534 + 1),
            (65_535, 0, 0, 20 + 1 + 65_535),
            (65_535, 9, 0, 24 + 1 + 65_535),
            (65_535, 0, 100, 24 + 1 + 65_535),
            (70_000, 9, 100, 28 + 1 + 70_000 + 3),
        ] {
            let v: Vec<u8> = (0..vlen).map(|i| (i % 251) as u8).collect();
            let m = Meta {
                flags,
                exptime,
                ..meta()
            };
            let item = ItemRef::standalone(b"k", &[&v[..1], &v[1..]], m);
            assert_eq!(item.value(), &v[..], "{vlen} {flags} {exptime}");
            assert_eq!((item.key(), item.flags()), (&b"k"[..], flags));
            assert_eq!(item.exptime(), exptime);
            assert_eq!(item.footprint(), foot, "{vlen} {flags} {exptime}");
            item.bump(60);
            item.invalidate();
            assert!(!item.take_token() && item.stale());
            assert_eq!(item.flags(), flags, "state changes keep the layout bit");
            assert_eq!(
                item.meta().state & HAS_FLAGS,
                0,
                "a copy's layout is its own"
            );
        }
    }

    #[test]
    fn big_values_round_trip() {
        let v = vec![0xabu8; 1 << 20];
        let item = ItemRef::standalone(&[b'k'; 250], &[&v], meta());
        assert_eq!(item.key().len(), 250);
        assert_eq!(item.value(), &v[..]);
        assert_eq!(item.size(), 57 + 250 + (1 << 20) + 2 + 4);
    }
}
