//! A study split over machines: the pre-training run is the unit (its features and tuned
//! cells follow it), dealt round-robin, so every shard of `N` gets a fair share of the noise
//! ratios and the partition depends on nothing but the suite.

use std::fmt;
use std::str::FromStr;

use crate::error::{NmlError, Result};

/// Shard `index` of `count` (`K/N` on the command line, `K` from 0).
///
/// # Examples
///
/// ```
/// use nml_core::study::Shard;
///
/// let shard: Shard = "1/3".parse()?;
/// let owned: Vec<usize> = (0..7).filter(|&run| shard.owns(run)).collect();
/// assert_eq!(owned, [1, 4]);
/// assert!("3/3".parse::<Shard>().is_err());
/// # Ok::<(), nml_core::NmlError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// Shard `index` of `count`; `index` must be below `count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(NmlError::Invalid(format!(
                "shard {index}/{count}: the index must be below the count, which must be at least 1"
            )));
        }
        Ok(Self { index, count })
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether the study's pre-training run number `run` (in [`crate::study::StudySuite::runs`]
    /// order) belongs to this shard.
    pub fn owns(&self, run: usize) -> bool {
        run % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = NmlError;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || NmlError::Invalid(format!("shard {text:?}: expected K/N, such as 0/4"));
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse().map_err(|_| bad())?;
        let count = count.trim().parse().map_err(|_| bad())?;
        Self::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_runs() {
        for count in 1..5 {
            let shards: Vec<Shard> = (0..count).map(|k| Shard::new(k, count).unwrap()).collect();
            for run in 0..11 {
                assert_eq!(shards.iter().filter(|s| s.owns(run)).count(), 1, "{run} of {count}");
            }
        }
    }

    #[test]
    fn bad_shards_are_refused() {
        for text in ["", "1", "a/2", "2/2", "0/0", "-1/2", "1/2/3"] {
            let err = text.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains("shard"), "{text}: {err}");
        }
        assert_eq!("2/5".parse::<Shard>().unwrap().to_string(), "2/5");
    }
}
