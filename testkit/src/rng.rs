//! A small deterministic generator for test inputs (xorshift64*): no dependency, and a failure
//! repeats with the same seed.

/// xorshift64* state; seed it with any non-zero value.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}
