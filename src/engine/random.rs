//! The engine's one source of randomness: ids (streams, commits, packs), back-off jitter
//! and heartbeat gaps. Seeded, it makes a run a function of its seed (with the simulated
//! [`Clock`](super::Clock) and a single-threaded runtime), so a failing simulation replays.

use std::{ops::Range, sync::Arc};

use parking_lot::Mutex;
use rand::{Rng, SeedableRng, rngs::StdRng};

#[derive(Clone, Default)]
pub struct Random(Option<Arc<Mutex<StdRng>>>);

impl std::fmt::Debug for Random {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Random::Seeded"
        } else {
            "Random::Os"
        })
    }
}

impl Random {
    /// The operating system's randomness (through `rand`'s thread-local generator).
    pub fn os() -> Self {
        Self(None)
    }

    /// A generator whose every draw follows from `seed`; clones share it.
    pub fn seeded(seed: u64) -> Self {
        Self(Some(Arc::new(Mutex::new(StdRng::seed_from_u64(seed)))))
    }

    pub fn u64(&self) -> u64 {
        match &self.0 {
            Some(rng) => rng.lock().random(),
            None => rand::random(),
        }
    }

    pub fn u128(&self) -> u128 {
        match &self.0 {
            Some(rng) => rng.lock().random(),
            None => rand::random(),
        }
    }

    /// Uniform in `range`, which must not be empty.
    pub fn in_range<T>(&self, range: Range<T>) -> T
    where
        T: rand::distr::uniform::SampleUniform + PartialOrd,
    {
        match &self.0 {
            Some(rng) => rng.lock().random_range(range),
            None => rand::random_range(range),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_decides_every_draw() {
        let (a, b) = (Random::seeded(7), Random::seeded(7));
        let draws = |r: &Random| (r.u64(), r.u128(), r.in_range(0..1000u64));
        assert_eq!(draws(&a), draws(&b));
        assert_ne!(draws(&a), draws(&Random::seeded(8)));
    }
}
