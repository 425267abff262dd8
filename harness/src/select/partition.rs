//! Sharding a run across machines: `--partition KIND:M/N` keeps shard M (1-based) of N, with
//! cargo-nextest's meanings —
//!
//! - `hash:M/N`: a test belongs to shard `fnv1a64(name) mod N + 1`, so a test stays in its
//!   shard when others are added or removed;
//! - `count:M/N`: the tests, sorted by name, are dealt round-robin: the i-th to shard
//!   `i mod N + 1`, so shards differ in size by one at most;
//! - `duration:M/N`: balanced by the durations of the last recorded run (`durations.json`,
//!   written by runs that were not partitioned): longest first, each to the shard with the
//!   least time so far (ties to the lower shard); a test with no recorded duration counts as
//!   the mean of those with one.
//!
//! Pure, and deterministic for the same names (and durations): every shard computes the same
//! assignment on its own machine, so shards are disjoint and together cover every test.

use std::collections::BTreeMap;
use std::fmt;

/// How tests are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// By a hash of the name.
    Hash,
    /// Round-robin over the sorted names.
    Count,
    /// Greedy longest-first over the last recorded durations.
    Duration,
}

/// One shard of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// How.
    pub kind: Kind,
    /// This shard, from 1.
    pub shard: u32,
    /// How many.
    pub total: u32,
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Hash => "hash",
            Kind::Count => "count",
            Kind::Duration => "duration",
        };
        write!(f, "{kind}:{}/{}", self.shard, self.total)
    }
}

/// What a valid partition looks like, for errors.
pub const EXPECTED: &str = "KIND:M/N with KIND one of hash, count, duration and 1 <= M <= N (e.g. hash:1/3)";

impl Partition {
    /// Parses `KIND:M/N`.
    pub fn parse(text: &str) -> Option<Partition> {
        let (kind, rest) = text.split_once(':')?;
        let kind = match kind {
            "hash" => Kind::Hash,
            "count" => Kind::Count,
            "duration" => Kind::Duration,
            _ => return None,
        };
        let (m, n) = rest.split_once('/')?;
        let (shard, total): (u32, u32) = (m.parse().ok()?, n.parse().ok()?);
        (shard >= 1 && shard <= total).then_some(Partition { kind, shard, total })
    }

    /// The shard as a label value, e.g. `1of3` (plain URL text, for a Pushgateway group).
    pub fn label(&self) -> String {
        format!("{}of{}", self.shard, self.total)
    }

    /// Which of `names` this shard keeps, in their order. `durations` (seconds by name) is
    /// only read by `duration:`.
    pub fn keep(&self, names: &[&str], durations: &BTreeMap<String, f64>) -> Vec<bool> {
        let total = u64::from(self.total);
        let mine = u64::from(self.shard - 1);
        match self.kind {
            Kind::Hash => names.iter().map(|n| fnv1a64(n.as_bytes()) % total == mine).collect(),
            Kind::Count => {
                let mut sorted: Vec<usize> = (0..names.len()).collect();
                sorted.sort_by(|a, b| names[*a].cmp(names[*b]).then(a.cmp(b)));
                let mut keep = vec![false; names.len()];
                for (rank, i) in sorted.into_iter().enumerate() {
                    keep[i] = rank as u64 % total == mine;
                }
                keep
            }
            Kind::Duration => {
                let shards = balance(names, durations, self.total);
                shards.into_iter().map(|s| u64::from(s) == mine).collect()
            }
        }
    }
}

/// The shard (from 0) of each name, longest first to the least loaded shard.
fn balance(names: &[&str], durations: &BTreeMap<String, f64>, total: u32) -> Vec<u32> {
    let known: Vec<f64> =
        names.iter().filter_map(|n| durations.get(*n)).copied().filter(|d| d.is_finite() && *d >= 0.0).collect();
    let mean = if known.is_empty() { 1.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
    let weight = |n: &str| durations.get(n).copied().filter(|d| d.is_finite() && *d >= 0.0).unwrap_or(mean);
    let mut order: Vec<usize> = (0..names.len()).collect();
    // Longest first; equal durations by name, so every machine deals them the same way.
    order.sort_by(|a, b| weight(names[*b]).total_cmp(&weight(names[*a])).then(names[*a].cmp(names[*b])).then(a.cmp(b)));
    let mut load = vec![0.0_f64; total as usize];
    let mut shard_of = vec![0u32; names.len()];
    for i in order {
        let (least, _) =
            load.iter().enumerate().fold((0, f64::INFINITY), |best, (s, l)| if *l < best.1 { (s, *l) } else { best });
        load[least] += weight(names[i]);
        shard_of[i] = least as u32;
    }
    shard_of
}

/// FNV-1a, 64 bits: stable across machines, Rust versions and runs (std's hasher is not).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator for the property tests (no dependency, same cases every run).
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    fn names(rng: &mut SplitMix) -> Vec<String> {
        let count = (rng.next() % 60) as usize;
        let mut names: Vec<String> =
            (0..count).map(|_| format!("suite{}::test_{}", rng.next() % 4, rng.next() % 500)).collect();
        names.sort();
        names.dedup();
        // Registry order is not sorted: shuffle.
        for i in (1..names.len()).rev() {
            names.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        names
    }

    /// Over 500 name sets, every kind and 1..=6 shards: each test is in exactly one shard.
    #[test]
    fn shards_are_disjoint_and_cover_every_test() {
        let mut rng = SplitMix(7);
        for case in 0..500 {
            let names = names(&mut rng);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut durations = BTreeMap::new();
            for name in &names {
                let draw = rng.next();
                if !draw.is_multiple_of(3) {
                    durations.insert(name.clone(), (draw >> 8) as f64 % 10_000.0 / 1000.0);
                }
            }
            for kind in [Kind::Hash, Kind::Count, Kind::Duration] {
                for total in 1..=6 {
                    let mut owners = vec![0u32; names.len()];
                    for shard in 1..=total {
                        let p = Partition { kind, shard, total };
                        for (i, keep) in p.keep(&refs, &durations).into_iter().enumerate() {
                            owners[i] += u32::from(keep);
                        }
                    }
                    assert!(owners.iter().all(|o| *o == 1), "case {case}, {kind:?} /{total}: {owners:?}");
                }
            }
        }
    }

    #[test]
    fn count_shards_differ_by_one_at_most_and_hash_keeps_a_test_in_place() {
        let names: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let sizes: Vec<usize> = (1..=7)
            .map(|m| {
                let p = Partition { kind: Kind::Count, shard: m, total: 7 };
                p.keep(&refs, &BTreeMap::new()).iter().filter(|k| **k).count()
            })
            .collect();
        assert_eq!(sizes, [15, 15, 14, 14, 14, 14, 14]);
        // Hash: removing tests does not move the others.
        let p = Partition { kind: Kind::Hash, shard: 2, total: 3 };
        let all = p.keep(&refs, &BTreeMap::new());
        let fewer = p.keep(&refs[..50], &BTreeMap::new());
        assert_eq!(&all[..50], &fewer[..]);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c, "the published FNV-1a test vector");
    }

    /// Greedy longest-first; an unknown duration counts as the mean of the known ones. Weights
    /// a 10, b 9, c 8, g 7.5 (the mean), d 7, e 6, f 5 are dealt in that order, each to the
    /// least loaded shard: a→0, b→1, c→1, g→0, d→1, e→0, f→0, so 28.5 s and 24 s.
    #[test]
    fn duration_balances_longest_first() {
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        let durations: BTreeMap<String, f64> =
            names[..6].iter().zip([10.0, 9.0, 8.0, 7.0, 6.0, 5.0]).map(|(n, d)| ((*n).to_owned(), d)).collect();
        let shards = balance(&names, &durations, 2);
        assert_eq!(shards, [0, 1, 1, 1, 0, 0, 0]);
        let load = |s: u32| -> f64 {
            let weight = |n: &str| durations.get(n).copied().unwrap_or(7.5);
            names.iter().zip(&shards).filter(|(_, x)| **x == s).map(|(n, _)| weight(n)).sum()
        };
        assert_eq!((load(0), load(1)), (28.5, 24.0));
    }

    #[test]
    fn parse_takes_nextests_spelling_only() {
        assert_eq!(Partition::parse("hash:1/3"), Some(Partition { kind: Kind::Hash, shard: 1, total: 3 }));
        assert_eq!(Partition::parse("duration:2/2").map(|p| p.to_string()), Some("duration:2/2".into()));
        for bad in ["hash:0/3", "hash:4/3", "count:1/0", "slice:1/2", "hash:1", "1/3", "count:a/b", ""] {
            assert_eq!(Partition::parse(bad), None, "{bad}");
        }
    }
}
