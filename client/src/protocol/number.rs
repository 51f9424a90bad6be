//! Number parsing and formatting on raw token bytes (no UTF-8 check or allocation).
//!
//! Two families: the strict `parse_*` (digits with an optional `+`, range-checked) read numbers
//! in server replies, which memcached always writes canonically; the `safe_strto*` functions read
//! request fields exactly as memcached's helpers of the same names do, quirks included (leading
//! white space, `-0`, anything after a white-space byte ignored, 32-bit fields truncated).

/// Parses an unsigned 64-bit decimal (`safe_strtoull`): optional `+`, digits, nothing else.
#[inline]
pub fn parse_u64(tok: &[u8]) -> Option<u64> {
    let digits = match tok.first()? {
        b'+' => &tok[1..],
        _ => tok,
    };
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses an unsigned 32-bit decimal (`safe_strtoul`).
#[inline]
pub fn parse_u32(tok: &[u8]) -> Option<u32> {
    parse_u64(tok).and_then(|n| u32::try_from(n).ok())
}

/// Parses a signed 32-bit decimal (`safe_strtol`), returned widened to `i64`.
#[inline]
pub fn parse_i32(tok: &[u8]) -> Option<i64> {
    let (neg, rest) = match tok.first()? {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, tok),
    };
    if rest.is_empty() || rest.first() == Some(&b'+') {
        return None;
    }
    let n = parse_u64(rest)? as i64;
    let n = if neg { -n } else { n };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&n)
        .then_some(n)
}

/// C's `isspace` in the "C" locale: what `strtol` skips before a number and what memcached's
/// `safe_strto*` accept right after one.
#[inline]
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The conversion `strtoull`/`strtoll` do on a token, and the check memcached's `safe_strto*`
/// helpers make on where it stopped: leading white space, one optional sign, at least one digit,
/// and then either the end of the token or a white-space byte (whatever follows it is ignored).
/// Returns the sign and the magnitude; `None` when there is no number or it overflows 64 bits.
#[inline]
fn c_strto(tok: &[u8]) -> Option<(bool, u64)> {
    let mut i = tok.iter().take_while(|&&b| c_isspace(b)).count();
    let neg = match tok.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = tok[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in &tok[i..i + digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    match tok.get(i + digits) {
        None => Some((neg, n)),
        Some(&b) if c_isspace(b) => Some((neg, n)),
        Some(_) => None,
    }
}

/// memcached's `safe_strtoull`, quirks included: `strtoull` negates a minus-signed number modulo
/// 2^64, and the result is refused only if it then looks negative as a signed value (so `-0` is 0
/// and `-18446744073709551615` is 1). Used for request fields; replies use [`parse_u64`].
#[inline]
pub fn safe_strtoull(tok: &[u8]) -> Option<u64> {
    let (neg, n) = c_strto(tok)?;
    let v = if neg { n.wrapping_neg() } else { n };
    if (v as i64) < 0 && tok.contains(&b'-') {
        return None;
    }
    Some(v)
}

/// memcached's `safe_strtoul` on a 64-bit Linux build: `safe_strtoull`'s rules on an
/// `unsigned long`, then stored in a `uint32_t`, so `4294967296` silently becomes 0.
#[inline]
pub fn safe_strtoul(tok: &[u8]) -> Option<u32> {
    safe_strtoull(tok).map(|v| v as u32)
}

/// memcached's `safe_strtol` on a 64-bit Linux build: `strtol` into a 64-bit `long` (refused only
/// on 64-bit overflow), then stored in an `int32_t`, so `4294967297` silently becomes 1 and
/// `2147483648` becomes -2147483648. Returned widened to `i64`.
#[inline]
pub fn safe_strtol(tok: &[u8]) -> Option<i64> {
    let (neg, n) = c_strto(tok)?;
    let v: i64 = if neg {
        if n > 1 << 63 {
            return None;
        }
        (n as i64).wrapping_neg()
    } else {
        i64::try_from(n).ok()?
    };
    Some(i64::from(v as i32))
}

/// Appends the decimal form of `n` to `buf` without going through `fmt` (`itoa`).
#[inline]
pub fn put_u64(buf: &mut impl bytes::BufMut, n: u64) {
    buf.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends the decimal form of a signed `n` to `buf`.
#[inline]
pub fn put_i64(buf: &mut impl bytes::BufMut, n: i64) {
    if n < 0 {
        buf.put_u8(b'-');
    }
    put_u64(buf, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn unsigned_rules() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"+7"), Some(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+"), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
    }

    #[test]
    fn signed_rules() {
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483647"), Some(2147483647));
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"-2147483648"), Some(-2147483648));
        assert_eq!(parse_i32(b"-"), None);
        assert_eq!(parse_i32(b"--1"), None);
        assert_eq!(parse_i32(b"+-1"), None);
    }

    #[test]
    fn formatting() {
        let mut b = BytesMut::new();
        put_u64(&mut b, 0);
        b.extend_from_slice(b" ");
        put_u64(&mut b, u64::MAX);
        b.extend_from_slice(b" ");
        put_i64(&mut b, -42);
        assert_eq!(&b[..], b"0 18446744073709551615 -42");
    }
}
