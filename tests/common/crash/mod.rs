//! The harness of `tests/crash.rs`: load clients that keep `POST /execute`
//! busy while the server is killed ([`load`]), and the record of what they
//! and the ledger said, checked after every restart ([`checks`]).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

pub mod checks;
pub mod load;

use std::collections::HashSet;

/// xorshift64, seeded through splitmix64 (never zero).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(z.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A knob: decimal or `0x` hexadecimal; a value that is neither stops the
/// test (rather than silently running with the default).
pub fn env_u64(name: &str, default: u64) -> u64 {
    let Ok(value) = std::env::var(name) else {
        return default;
    };
    let value = value.trim();
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{name}={value:?}: {e}"))
}

/// Up to `n` distinct random indices below `len`.
pub fn sample_of(len: usize, n: usize, rng: &mut Rng) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    let mut picked = HashSet::new();
    while picked.len() < n {
        picked.insert(rng.below(len as u64) as usize);
    }
    picked.into_iter().collect()
}
