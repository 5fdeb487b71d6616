//! Order statistics of latency samples: nearest-rank percentiles, which are
//! always one of the measured values (no interpolation invents a latency
//! nobody saw), and ratios between configurations.

use std::time::Duration;

/// p50/p90/p99/max of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// None for no samples.
    pub fn of(values: &[Duration]) -> Option<Summary> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            p50: percentile(&sorted, 50.0)?,
            p90: percentile(&sorted, 90.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// The nearest-rank `p`th percentile of `sorted` (ascending): the smallest
/// value with at least p% of the values at or below it. None when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// How many times longer `slow` took than `fast`; None when `fast` is zero.
pub fn ratio(slow: Duration, fast: Duration) -> Option<f64> {
    (!fast.is_zero()).then(|| slow.as_secs_f64() / fast.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank_values_that_were_measured() {
        let values = ms(&(1..=100).rev().collect::<Vec<_>>());
        let s = Summary::of(&values).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p90, Duration::from_millis(90));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
    }

    #[test]
    fn few_samples_round_up_to_the_next_value() {
        let sorted = ms(&[10, 20, 30]);
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&sorted, 90.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(10)));
        let one = Summary::of(&ms(&[7])).unwrap();
        assert_eq!(
            (one.p50, one.p99, one.max),
            (ms(&[7])[0], ms(&[7])[0], ms(&[7])[0])
        );
    }

    #[test]
    fn no_samples_no_summary() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn ratio_of_slow_to_fast_and_none_for_zero() {
        let r = ratio(Duration::from_millis(30), Duration::from_millis(2)).unwrap();
        assert!((r - 15.0).abs() < 1e-9);
        assert_eq!(ratio(Duration::from_millis(1), Duration::ZERO), None);
    }
}
