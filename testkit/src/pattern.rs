//! Expected replies with placeholders, for the byte-exact checks of [`crate::Conn`]: the parts
//! that vary between servers or runs (CAS values, times, a version) are matched by shape, and a
//! value can be captured for a later request.

use std::collections::HashMap;

/// An expected reply with placeholders:
///
/// - `{n}`: one or more ASCII digits (CAS values, times, sizes that vary between servers);
/// - `{n:name}`: the same, and the digits are remembered as `name` for later requests;
/// - `{*}`: any run of bytes other than `\r` and `\n` (a version string);
/// - `{**}`: any bytes at all, as few as possible (the middle of a `stats` listing).
///
/// Everything else must match byte for byte.
#[derive(Debug, Clone)]
pub struct Pattern(Vec<Seg>);

#[derive(Debug, Clone)]
enum Seg {
    Lit(Vec<u8>),
    Digits(Option<String>),
    Line,
    Any,
}

pub(crate) enum Outcome {
    /// Matched, using this many bytes.
    Done(usize),
    /// The bytes so far could still become a match.
    More,
    /// They cannot.
    Fail,
}

impl Pattern {
    pub fn new(p: &[u8]) -> Pattern {
        let mut segs = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let rest = &p[i..];
            let special = if rest.starts_with(b"{n}") {
                Some((Seg::Digits(None), 3))
            } else if rest.starts_with(b"{n:") {
                let end = rest
                    .iter()
                    .position(|&b| b == b'}')
                    .expect("unterminated {n:name}");
                let name = String::from_utf8(rest[3..end].to_vec()).expect("ASCII name");
                Some((Seg::Digits(Some(name)), end + 1))
            } else if rest.starts_with(b"{**}") {
                Some((Seg::Any, 4))
            } else if rest.starts_with(b"{*}") {
                Some((Seg::Line, 3))
            } else {
                None
            };
            match special {
                Some((seg, len)) => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit(std::mem::take(&mut lit)));
                    }
                    segs.push(seg);
                    i += len;
                }
                None => {
                    lit.push(p[i]);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Pattern(segs)
    }

    /// A pattern with no placeholders can be read with a fixed length.
    pub(crate) fn literal_len(&self) -> Option<usize> {
        self.0
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => Some(l.len()),
                _ => None,
            })
            .sum()
    }

    pub(crate) fn matches(&self, data: &[u8], caps: &mut Vec<(String, Vec<u8>)>) -> Outcome {
        fn go(
            segs: &[Seg],
            data: &[u8],
            used: usize,
            caps: &mut Vec<(String, Vec<u8>)>,
        ) -> Outcome {
            let Some((seg, rest)) = segs.split_first() else {
                return Outcome::Done(used);
            };
            match seg {
                Seg::Lit(l) => {
                    let n = l.len().min(data.len());
                    if data[..n] != l[..n] {
                        Outcome::Fail
                    } else if n < l.len() {
                        Outcome::More
                    } else {
                        go(rest, &data[n..], used + n, caps)
                    }
                }
                Seg::Digits(name) => {
                    let d = data.iter().take_while(|b| b.is_ascii_digit()).count();
                    if d == data.len() {
                        return Outcome::More;
                    }
                    if d == 0 {
                        return Outcome::Fail;
                    }
                    let mark = caps.len();
                    if let Some(name) = name {
                        caps.push((name.clone(), data[..d].to_vec()));
                    }
                    let r = go(rest, &data[d..], used + d, caps);
                    if !matches!(r, Outcome::Done(_)) {
                        caps.truncate(mark);
                    }
                    r
                }
                Seg::Line => {
                    let d = data
                        .iter()
                        .take_while(|&&b| b != b'\r' && b != b'\n')
                        .count();
                    if d == data.len() {
                        return Outcome::More;
                    }
                    go(rest, &data[d..], used + d, caps)
                }
                Seg::Any => {
                    for skip in 0..=data.len() {
                        if let Outcome::Done(n) = go(rest, &data[skip..], used + skip, caps) {
                            return Outcome::Done(n);
                        }
                    }
                    Outcome::More
                }
            }
        }
        go(&self.0, data, 0, caps)
    }
}

/// Replaces `{name}` in `bytes` with values captured by `{n:name}` placeholders.
pub fn substitute(bytes: &[u8], vars: &HashMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    'outer: while i < bytes.len() {
        if bytes[i] == b'{' {
            for (name, value) in vars {
                let tag = format!("{{{name}}}");
                if bytes[i..].starts_with(tag.as_bytes()) {
                    out.extend_from_slice(value);
                    i += tag.len();
                    continue 'outer;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}
