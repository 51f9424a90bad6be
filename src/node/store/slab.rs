//! memcached's slab classes, for the `cls=` field of `me` and `lru_crawler metadump`.
//!
//! The segment store has no slab classes; it reports the class memcached (default settings)
//! would put an item of the same size in, so tools that read `cls` see familiar numbers. The
//! lowest layer of the store (`item.rs`) asks for it, so it depends on nothing in the store.

/// memcached's default slab page / largest chunk (`slab_chunk_max`, 512 KiB).
const SLAB_CHUNK_MAX: u32 = 512 * 1024;

/// memcached's default slab class sizes (`-n 48 -f 1.25`): starting at 96 bytes, each class
/// 1.25 times the previous rounded up to 8 bytes, until the next would pass `slab_chunk_max`
/// / 1.25; then one class of `slab_chunk_max`. Index 0 is unused, as in memcached.
const SLAB_SIZES: ([u32; 64], usize) = {
    let mut sizes = [0u32; 64];
    let mut size: u32 = 96;
    let mut i = 1;
    // `size >= slab_chunk_max / 1.25`, in integers.
    while i < 63 && (size as u64) * 5 < (SLAB_CHUNK_MAX as u64) * 4 {
        if size % 8 != 0 {
            size += 8 - size % 8;
        }
        sizes[i] = size;
        // `size *= 1.25` on an unsigned int truncates, which is exactly this.
        size = size * 5 / 4;
        i += 1;
    }
    sizes[i] = SLAB_CHUNK_MAX;
    (sizes, i)
};

/// The slab class memcached (default settings) would store an item of `size` bytes in: the
/// smallest class whose chunks fit it; items larger than the largest chunk are chunked and
/// report the largest class.
pub fn slab_class(size: usize) -> u32 {
    let (sizes, largest) = &SLAB_SIZES;
    let found = sizes[1..=*largest].partition_point(|&chunk| (chunk as usize) < size);
    (found + 1).min(*largest) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table memcached 1.6.18 prints with `-vv` at default settings.
    #[test]
    fn slab_classes_match_memcached_defaults() {
        let (sizes, largest) = SLAB_SIZES;
        assert_eq!(largest, 39);
        assert_eq!(&sizes[1..6], &[96, 120, 152, 192, 240]);
        assert_eq!(sizes[12], 1184);
        assert_eq!(sizes[38], 394_840);
        assert_eq!(sizes[39], 524_288);
        assert_eq!(slab_class(61), 1);
        assert_eq!(slab_class(96), 1);
        assert_eq!(slab_class(97), 2);
        assert_eq!(slab_class(400_060), 39);
        assert_eq!(
            slab_class(600_060),
            39,
            "chunked items report the largest class"
        );
    }
}
