//! What the wire fuzz targets share: the first input byte picks a chunk size, and the rest of
//! the input, read in chunks of that size (as TCP may deliver it), must read as it does whole.

use std::fmt::Debug;

use bytes::BytesMut;

/// Feeds `data` into a buffer `chunk` bytes at a time and takes items out with `next` after
/// each piece, until it has none (`Ok(None)`) or fails (`Err`: the stream is broken and reading
/// stops). Returns the items and whether reading stopped at a failure.
pub fn feed<T, E>(
    data: &[u8],
    chunk: usize,
    mut next: impl FnMut(&mut BytesMut) -> Result<Option<T>, E>,
) -> (Vec<T>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match next(&mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// The chunk size the first byte picks (1 to 32) and the stream after it; `None` for an empty
/// input.
pub fn split(input: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, data) = input.split_first()?;
    Some((usize::from(first % 32) + 1, data))
}

/// Reads `data` whole and `chunk` bytes at a time with `read` (which returns the items and
/// whether the stream ended in an error) and checks that both readings agree: the same items
/// as far as both got, and as many when neither ended in an error (where an error strikes may
/// depend on how much has arrived). Returns the items read whole.
pub fn read_both_ways<T: PartialEq + Debug>(
    data: &[u8],
    chunk: usize,
    read: impl Fn(&[u8], usize) -> (Vec<T>, bool),
) -> Vec<T> {
    let (whole, whole_err) = read(data, data.len().max(1));
    let (pieces, pieces_err) = read(data, chunk);
    let n = whole.len().min(pieces.len());
    assert_eq!(
        whole[..n],
        pieces[..n],
        "chunked delivery ({chunk} bytes) reads differently"
    );
    if !whole_err && !pieces_err {
        assert_eq!(
            whole.len(),
            pieces.len(),
            "chunked delivery ({chunk} bytes) reads a different number of items"
        );
    }
    whole
}
