//! The case generator: valid classic and meta commands, then mutations of them (flag tokens
//! merged, split or repeated; keys with control bytes or base64 that decodes to `\r\n`; sizes
//! over the limit; `noreply`/`q`; huge multi-gets; truncated data blocks), deterministic from
//! the seed.

use base64::Engine as _;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The case generator: valid commands, then mutations.
pub(super) struct Gen {
    rng: Xoshiro256PlusPlus,
}

const FLAGS_MG: &[&str] = &[
    "v", "k", "c", "f", "t", "s", "q", "b", "O42", "T30", "N30", "u",
];

impl Gen {
    /// The generator of seed `seed`: the same seed, the same cases.
    pub(super) fn new(seed: u64) -> Gen {
        Gen {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn value(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| b'a' + self.rng.random_range(0..26u8))
            .collect()
    }

    /// A key of this case: plain, with a control byte, or a base64 one that decodes to a line
    /// break followed by a command.
    fn key(&mut self, prefix: &str) -> (Vec<u8>, bool) {
        let plain = format!("{prefix}{}", self.rng.random_range(0..8u32)).into_bytes();
        match self.rng.random_range(0..10u32) {
            0 => {
                let mut k = plain;
                let pos = self.rng.random_range(0..=k.len());
                let bad = [0u8, 1, b'\r', b'\n', 0x7f, b'\t', 0x1b];
                k.insert(pos, bad[self.rng.random_range(0..bad.len())]);
                (k, false)
            }
            1 | 2 => {
                let tail = [
                    "flush_all",
                    "flush_all noreply",
                    "delete canary_x",
                    "set x 0 0 1",
                    "mn",
                    "",
                ];
                let t = self.pick(&tail);
                let sep = self.pick(&["\r\n", "\n", "\r", " "]);
                let raw = [&plain[..], sep.as_bytes(), t.as_bytes()].concat();
                let enc = base64::engine::general_purpose::STANDARD.encode(raw);
                (enc.into_bytes(), true)
            }
            3 => {
                let enc = base64::engine::general_purpose::STANDARD.encode(&plain);
                (enc.into_bytes(), true)
            }
            _ => (plain, false),
        }
    }

    fn flags(&mut self, base64: bool) -> Vec<String> {
        let n = self.rng.random_range(0..5);
        let mut f: Vec<String> = (0..n).map(|_| self.pick(FLAGS_MG).to_string()).collect();
        f.retain(|t| t != "b");
        if base64 {
            f.push("b".into());
        }
        f
    }

    /// A key for a classic command: base64 means nothing there, so a would-be base64 key is
    /// sent plain.
    fn classic_key(&mut self, prefix: &str) -> Vec<u8> {
        match self.key(prefix) {
            (k, false) => k,
            (_, true) => format!("{prefix}{}", self.rng.random_range(0..8u32)).into_bytes(),
        }
    }

    /// One valid-looking command with the case's keys.
    fn command(&mut self, prefix: &str) -> Vec<u8> {
        let (key, b64) = self.key(prefix);
        let k = String::from_utf8_lossy(&key).into_owned();
        let kb = if b64 {
            self.classic_key(prefix)
        } else {
            key.clone()
        };
        let mut out = Vec::new();
        let nr = if self.rng.random_bool(0.2) {
            " noreply"
        } else {
            ""
        };
        match self.rng.random_range(0..16u32) {
            0 | 1 => {
                let len = self.rng.random_range(0..40);
                let v = self.value(len);
                let verb = self.pick(&["set", "add", "replace", "append", "prepend"]);
                out.extend_from_slice(format!("{verb} ").as_bytes());
                out.extend_from_slice(&kb);
                out.extend_from_slice(format!(" 0 0 {}{nr}\r\n", v.len()).as_bytes());
                out.extend_from_slice(&v);
                out.extend_from_slice(b"\r\n");
            }
            2 => {
                out.extend_from_slice(b"get");
                for _ in 0..self.rng.random_range(1..5) {
                    out.push(b' ');
                    let k = self.classic_key(prefix);
                    out.extend_from_slice(&k);
                }
                out.extend_from_slice(b"\r\n");
            }
            3 => {
                out.extend_from_slice(b"delete ");
                out.extend_from_slice(&kb);
                out.extend_from_slice(format!("{nr}\r\n").as_bytes());
            }
            4 => {
                let verb = self.pick(&["incr", "decr"]);
                out.extend_from_slice(format!("{verb} ").as_bytes());
                out.extend_from_slice(&kb);
                out.extend_from_slice(format!(" 1{nr}\r\n").as_bytes());
            }
            5 => {
                out.extend_from_slice(b"touch ");
                out.extend_from_slice(&kb);
                out.extend_from_slice(format!(" 100{nr}\r\n").as_bytes());
            }
            6 | 7 => {
                let f = self.flags(b64);
                out.extend_from_slice(format!("mg {k} {}\r\n", f.join(" ")).as_bytes());
            }
            8 | 9 => {
                let len = self.rng.random_range(0..40);
                let v = self.value(len);
                let mut f = self.flags(b64);
                if self.rng.random_bool(0.3) {
                    f.push(self.pick(&["MS", "ME", "MA", "MP", "MR", "I"]).into());
                }
                out.extend_from_slice(format!("ms {k} {} {}\r\n", v.len(), f.join(" ")).as_bytes());
                out.extend_from_slice(&v);
                out.extend_from_slice(b"\r\n");
            }
            10 | 11 => {
                let mut f = self.flags(b64);
                if self.rng.random_bool(0.3) {
                    f.push("I".into());
                }
                out.extend_from_slice(format!("md {k} {}\r\n", f.join(" ")).as_bytes());
            }
            12 => {
                let mut f = self.flags(b64);
                f.push(self.pick(&["N0", "J5", "D3", "MI", "MD", "v"]).into());
                out.extend_from_slice(format!("ma {k} {}\r\n", f.join(" ")).as_bytes());
            }
            13 => {
                // Over the item limit: refused, and the data block swallowed.
                let verb = self.pick(&["set", "ms"]);
                let size = self.pick(&["2000000", "1048577", "1073741824", "-1"]);
                let line = if verb == "set" {
                    format!("set {} 0 0 {size}\r\n", String::from_utf8_lossy(&kb))
                } else {
                    format!("ms {k} {size} {}\r\n", if b64 { "b" } else { "" })
                };
                out.extend_from_slice(line.as_bytes());
            }
            14 => {
                // A huge multi-get: many keys, many repeats.
                let n = self.rng.random_range(100..3000);
                out.extend_from_slice(self.pick(&["get", "gets"]).as_bytes());
                for _ in 0..n {
                    out.push(b' ');
                    out.extend_from_slice(
                        format!("{prefix}{}", self.rng.random_range(0..8u32)).as_bytes(),
                    );
                }
                out.extend_from_slice(b"\r\n");
            }
            _ => {
                out.extend_from_slice(b"mn\r\n");
            }
        }
        out
    }

    /// A case: a few commands, then mutations of their bytes.
    pub(super) fn case(&mut self, prefix: &str) -> Vec<u8> {
        let mut cmds: Vec<Vec<u8>> = (0..self.rng.random_range(1..5))
            .map(|_| self.command(prefix))
            .collect();
        for _ in 0..self.rng.random_range(0..3) {
            let i = self.rng.random_range(0..cmds.len());
            self.mutate(&mut cmds[i]);
        }
        cmds.concat()
    }

    fn mutate(&mut self, c: &mut Vec<u8>) {
        let line_end = c.iter().position(|&b| b == b'\n').unwrap_or(c.len());
        match self.rng.random_range(0..8u32) {
            // Merge two flag tokens ("q b" → "qb").
            0 => {
                let spaces: Vec<usize> = (0..line_end).filter(|&i| c[i] == b' ').collect();
                if spaces.len() > 2 {
                    let i = spaces[self.rng.random_range(2..spaces.len())];
                    c.remove(i);
                }
            }
            // Split a token, or double a space.
            1 => {
                if line_end > 1 {
                    let i = self.rng.random_range(1..line_end);
                    c.insert(i, b' ');
                }
            }
            // Duplicate a token of the line.
            2 => {
                let line = c[..line_end].to_vec();
                let toks: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
                if toks.len() > 2 {
                    let tok = toks[self.rng.random_range(2..toks.len())];
                    let t = tok.strip_suffix(b"\r").unwrap_or(tok);
                    let at = line.iter().rposition(|&b| b == b'\r').unwrap_or(line_end);
                    let ins = [b" ", t].concat();
                    c.splice(at..at, ins);
                }
            }
            // Add quiet/noreply.
            3 => {
                let at = c[..line_end]
                    .iter()
                    .rposition(|&b| b == b'\r')
                    .unwrap_or(line_end);
                let extra = self.pick(&[" q", " noreply", "q", " qb", " bq"]);
                c.splice(at..at, extra.bytes());
            }
            // Truncate the data block (or the line).
            4 => {
                if c.len() > 2 {
                    let n = self.rng.random_range(1..c.len());
                    c.truncate(n);
                    c.extend_from_slice(b"\r\n");
                }
            }
            // A control byte anywhere in the line.
            5 => {
                let i = self.rng.random_range(0..=line_end.min(c.len()));
                let bad = [0u8, b'\r', 0x7f, 0x80, b'\t'];
                c.insert(i, bad[self.rng.random_range(0..bad.len())]);
            }
            // Size off by some.
            6 => {
                let line = String::from_utf8_lossy(&c[..line_end]).into_owned();
                let toks: Vec<&str> = line.trim_end().split(' ').collect();
                if let Some((i, n)) = toks
                    .iter()
                    .enumerate()
                    .skip(1)
                    .find_map(|(i, t)| t.parse::<i64>().ok().map(|n| (i, n)))
                {
                    let d = self.rng.random_range(-3..4i64);
                    let mut t2: Vec<String> = toks.iter().map(|s| s.to_string()).collect();
                    t2[i] = (n + d).to_string();
                    let mut new = t2.join(" ").into_bytes();
                    new.extend_from_slice(b"\r");
                    c.splice(..line_end, new);
                }
            }
            // A random byte flip.
            _ => {
                if !c.is_empty() {
                    let i = self.rng.random_range(0..c.len());
                    c[i] ^= 1 << self.rng.random_range(0..8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_deterministic_from_the_seed() {
        let mut a = Gen {
            rng: Xoshiro256PlusPlus::seed_from_u64(7),
        };
        let mut b = Gen {
            rng: Xoshiro256PlusPlus::seed_from_u64(7),
        };
        for _ in 0..200 {
            assert_eq!(a.case("sf"), b.case("sf"));
        }
    }
}
