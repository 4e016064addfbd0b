//! Which series this replica owns when the monitor runs as N replicas
//! (`shard_count`, `shard_index`, `replication_factor`).
//!
//! Rendezvous (highest-random-weight) hashing: every replica scores every
//! series with a hash of (series, replica) and a series belongs to the
//! `replication_factor` replicas with the highest scores. Every replica
//! computes the same answer from the label set alone, with no coordination,
//! and when the replica count changes only the series of the replicas
//! added or removed move.
//!
//! The hash is spelled out here (FNV-1a, then a SplitMix64 finaliser), not
//! taken from `std`, whose hasher may change between Rust releases: two
//! replicas built by different compilers must agree.

use thiserror::Error;

/// Most replicas one deployment can have.
pub const MAX_SHARDS: u32 = 1024;

/// A bad shard setting (the config reports it with its key and origin).
#[derive(Debug, Error, PartialEq)]
pub enum ShardError {
    /// `shard_index: auto`, but the host name has no trailing ordinal.
    #[error(
        "`auto` takes the number after the last `-` of the host name \
         (`cpu-anomaly-2` -> 2, as a StatefulSet names its pods), but the host name is {0:?}; \
         set shard_index (SHARD_INDEX) to a number"
    )]
    NoOrdinal(String),
    /// Neither a number nor `auto`.
    #[error("expected a number from 0 to shard_count - 1, or `auto`; got {0:?}")]
    NotAnIndex(String),
}

/// This replica's place in the deployment, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    count: u32,
    index: u32,
    replication: u32,
}

impl Default for Shard {
    /// One replica owning everything.
    fn default() -> Self {
        Shard {
            count: 1,
            index: 0,
            replication: 1,
        }
    }
}

/// `shard_index` as written: a number or `auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSpec {
    /// This index.
    Fixed(u32),
    /// The trailing ordinal of the host name.
    Auto,
}

impl IndexSpec {
    /// Parses `2` or `auto`.
    pub fn parse(text: &str) -> Result<IndexSpec, ShardError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(IndexSpec::Auto);
        }
        t.parse::<u32>()
            .map(IndexSpec::Fixed)
            .map_err(|_| ShardError::NotAnIndex(text.to_string()))
    }

    /// The index, resolving `auto` with `hostname`.
    pub fn resolve(&self, hostname: &str) -> Result<u32, ShardError> {
        match self {
            IndexSpec::Fixed(i) => Ok(*i),
            IndexSpec::Auto => {
                ordinal(hostname).ok_or_else(|| ShardError::NoOrdinal(hostname.into()))
            }
        }
    }
}

/// The trailing ordinal of a StatefulSet pod name (`cpu-anomaly-2` → 2;
/// a fully qualified name is cut at its first dot first).
pub fn ordinal(hostname: &str) -> Option<u32> {
    let short = hostname.trim().split('.').next().unwrap_or("");
    let (_, digits) = short.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The kernel's host name (the config layer looks at `$HOSTNAME` first).
pub fn kernel_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

impl Shard {
    /// A checked shard: `1 <= replication <= count <= MAX_SHARDS`,
    /// `index < count`. The error says which bound failed.
    pub fn new(count: u32, index: u32, replication: u32) -> Result<Shard, String> {
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(format!("shard_count must be between 1 and {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "shard_index must be below shard_count ({count}): replicas are numbered 0 to {}",
                count - 1
            ));
        }
        if !(1..=count).contains(&replication) {
            return Err(format!(
                "replication_factor must be between 1 and shard_count ({count})"
            ));
        }
        Ok(Shard {
            count,
            index,
            replication,
        })
    }

    /// Replicas in the deployment.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// This replica.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Replicas that judge each series.
    pub fn replication(&self) -> u32 {
        self.replication
    }

    /// Whether this is one of several replicas.
    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// The replicas owning the series with this key, highest weight first.
    pub fn owners(&self, key: &str) -> Vec<u32> {
        let h = fnv1a(key.as_bytes());
        let mut scored: Vec<(u64, u32)> = (0..self.count).map(|r| (weight(h, r), r)).collect();
        // Highest weight first; a tie (never seen in practice) goes to the
        // lower replica number so every replica agrees.
        scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(self.replication as usize)
            .map(|(_, r)| r)
            .collect()
    }

    /// Whether this replica judges the series with this key (its id: the
    /// canonical form of its label set).
    pub fn owns(&self, key: &str) -> bool {
        if self.count == 1 {
            return true;
        }
        let h = fnv1a(key.as_bytes());
        let mine = weight(h, self.index);
        // Owned when fewer than `replication` replicas beat this one.
        let better = (0..self.count)
            .filter(|&r| r != self.index)
            .filter(|&r| {
                let w = weight(h, r);
                w > mine || (w == mine && r < self.index)
            })
            .count();
        better < self.replication as usize
    }
}

/// The first wall-clock instant (Unix ms) after `now_ms` at which the
/// series with this key is due for its periodic refit: multiples of
/// `period` moved by a phase from the key (a multiple of `step`), so every
/// replica of a series refits at the same instants and a fleet's refits are
/// spread over the period.
pub fn next_phase_ms(
    key: &str,
    now_ms: i64,
    period: std::time::Duration,
    step: std::time::Duration,
) -> i64 {
    let period = (period.as_millis() as i64).max(1000);
    let step = (step.as_millis() as i64).clamp(1000, period);
    let slots = (period / step).max(1) as u64;
    let phase = (mix(fnv1a(key.as_bytes())) % slots) as i64 * step;
    let k = (now_ms - phase).div_euclid(period) + 1;
    k * period + phase
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weight of replica `r` for a series hashing to `h`.
fn weight(h: u64, r: u32) -> u64 {
    mix(h ^ mix(u64::from(r).wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i}:9100")).collect()
    }

    #[test]
    fn one_replica_owns_everything() {
        let s = Shard::default();
        assert!(keys(100).iter().all(|k| s.owns(k)));
    }

    #[test]
    fn every_series_has_exactly_replication_owners_and_owns_agrees() {
        for (count, rf) in [(3, 1), (3, 2), (5, 3), (7, 7)] {
            let shards: Vec<Shard> = (0..count)
                .map(|i| Shard::new(count, i, rf).unwrap())
                .collect();
            for k in keys(2000) {
                let owners = shards[0].owners(&k);
                assert_eq!(owners.len(), rf as usize);
                let owning: Vec<u32> = shards
                    .iter()
                    .filter(|s| s.owns(&k))
                    .map(|s| s.index())
                    .collect();
                let mut sorted = owners.clone();
                sorted.sort_unstable();
                assert_eq!(owning, sorted, "{k} with {count}/{rf}");
            }
        }
    }

    #[test]
    fn load_is_even_and_only_a_removed_replicas_series_move() {
        let ks = keys(30_000);
        let three: Vec<Shard> = (0..3).map(|i| Shard::new(3, i, 1).unwrap()).collect();
        for s in &three {
            let n = ks.iter().filter(|k| s.owns(k)).count();
            assert!(
                (9_000..11_000).contains(&n),
                "replica {} owns {n}",
                s.index()
            );
        }
        // Growing to 4 replicas moves only series to the new replica.
        let four: Vec<Shard> = (0..4).map(|i| Shard::new(4, i, 1).unwrap()).collect();
        let mut moved = 0;
        for k in &ks {
            let a = three[0].owners(k)[0];
            let b = four[0].owners(k)[0];
            if a != b {
                assert_eq!(b, 3, "{k} moved from {a} to {b}");
                moved += 1;
            }
        }
        assert!((6_000..9_000).contains(&moved), "{moved} moved");
    }

    #[test]
    fn the_hash_is_fixed_across_builds() {
        // Pinned values: a change here re-shards every deployment.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let s = Shard::new(3, 0, 1).unwrap();
        let owners: Vec<u32> = ["web-1:9100", "web-2:9100", "db-1:9100", "db-2:9100"]
            .iter()
            .map(|k| s.owners(k)[0])
            .collect();
        assert_eq!(owners, PINNED_OWNERS);
    }
    const PINNED_OWNERS: [u32; 4] = [0, 0, 1, 1];

    #[test]
    fn refit_instants_are_the_same_for_every_replica_and_spread() {
        use std::time::Duration;
        let (day, step) = (Duration::from_secs(86_400), Duration::from_secs(300));
        let now = 1_700_000_123_456;
        let a = next_phase_ms("web-1:9100", now, day, step);
        assert!(a > now && a - now <= 86_400_000);
        assert_eq!((a % 86_400_000) % 300_000, 0);
        // Asked later (another replica, started later): the same instant.
        assert_eq!(next_phase_ms("web-1:9100", now + 3_600_000, day, step), a);
        let phases: std::collections::BTreeSet<i64> = keys(200)
            .iter()
            .map(|k| next_phase_ms(k, now, day, step) % 86_400_000)
            .collect();
        // 200 series over 288 five-minute slots: about 144 distinct ones
        // if spread at random (a bad phase function gives a handful).
        assert!(phases.len() > 120, "{} distinct phases", phases.len());
    }

    #[test]
    fn ordinals_and_index_specs() {
        assert_eq!(ordinal("cpu-anomaly-2"), Some(2));
        assert_eq!(ordinal("cpu-anomaly-12.cpu-anomaly.ns.svc"), Some(12));
        assert_eq!(ordinal("cpu-anomaly"), None);
        assert_eq!(ordinal("box-"), None);
        assert_eq!(ordinal("web-a1"), None);
        assert_eq!(IndexSpec::parse("auto"), Ok(IndexSpec::Auto));
        assert_eq!(IndexSpec::parse(" 3 "), Ok(IndexSpec::Fixed(3)));
        assert!(IndexSpec::parse("-1").is_err());
        assert_eq!(IndexSpec::Auto.resolve("cpu-anomaly-1"), Ok(1));
        assert_eq!(
            IndexSpec::Auto.resolve("laptop"),
            Err(ShardError::NoOrdinal("laptop".into()))
        );
    }

    #[test]
    fn bounds_are_checked() {
        assert!(Shard::new(0, 0, 1).is_err());
        assert!(Shard::new(3, 3, 1)
            .unwrap_err()
            .contains("below shard_count"));
        assert!(Shard::new(3, 0, 4)
            .unwrap_err()
            .contains("replication_factor"));
        assert!(Shard::new(3, 0, 0).is_err());
        assert!(Shard::new(MAX_SHARDS + 1, 0, 1).is_err());
    }
}
