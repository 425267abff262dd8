//! The one PRNG of the project's generators (the testbed's fault draws, proxy toxicity,
//! jitter and slice sizes; the load tool's scenario draws, sizes and token counts).
//!
//! Hand-written rather than `rand`: a recorded seed must replay the same faults in every
//! future version, which a crate's generator does not promise.

/// SplitMix64: tiny, seedable, good enough for fault draws, and stable across versions (a
/// recorded seed must replay the same faults).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 bits.
    #[allow(clippy::should_implement_trait, reason = "an infinite generator, not an Iterator")]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
