//! Number parsing with the acceptance rules of memcached's `safe_strto*` helpers.
//!
//! memcached accepts an optional sign, rejects trailing garbage and empty tokens, and refuses a
//! minus sign on unsigned fields. These helpers work on raw token bytes so no UTF-8 check or
//! allocation is needed on the hot path.

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

/// Appends the decimal form of `n` to `buf` without going through `fmt`.
#[inline]
pub fn put_u64(buf: &mut bytes::BytesMut, n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends the decimal form of a signed `n` to `buf`.
#[inline]
pub fn put_i64(buf: &mut bytes::BytesMut, n: i64) {
    if n < 0 {
        buf.extend_from_slice(b"-");
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
