//! What a container may use: `--memory`, `--cpus` and `--pids-limit`, in
//! docker's syntax and units, as the record keeps them and the cgroup
//! backends write them.

use serde::{Deserialize, Serialize};

use super::quoted::quoted;

/// docker's smallest `--memory`: less cannot even start most programs.
pub const MIN_MEMORY: u64 = 6 << 20;

/// The largest `--memory` whose memory+swap (twice it) the kernel's page
/// counters hold; it stores more as "no limit" without a word, and the
/// record would claim a limit there is not. A whole number of GiB.
pub const MAX_MEMORY: u64 = (i64::MAX as u64 / 2) >> 30 << 30;

/// The CFS period docker uses; `--cpus` becomes a quota of it.
pub const CPU_PERIOD_US: u64 = 100_000;

/// docker's smallest quota (1 ms of each period): `--cpus 0.01`.
const MIN_CPU_QUOTA_US: u64 = 1_000;

/// The limits of one container; None: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes of memory (`--memory`).
    #[serde(default)]
    pub memory: Option<u64>,
    /// CPUs in billionths (`--cpus 0.5` is 500000000), as docker's NanoCpus.
    #[serde(default)]
    pub nano_cpus: Option<u64>,
    /// Processes and threads (`--pids-limit`).
    #[serde(default)]
    pub pids_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "invalid --memory {}: a number of bytes with an optional b, k, m or g suffix, from 6m to 4294967295g",
        quoted(.0)
    )]
    Memory(String),
    #[error("invalid --cpus {}: a decimal number of CPUs from 0.01, e.g. 0.5", quoted(.0))]
    Cpus(String),
    #[error("invalid --cpus {}: this machine has {available} CPUs", quoted(.text))]
    TooManyCpus { text: String, available: u64 },
    #[error("invalid --pids-limit {}: an integer up to 4194304, 0 or -1 for no limit", quoted(.0))]
    Pids(String),
}

impl Resources {
    /// True when nothing is limited: the container needs no cgroup.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// The CFS quota for `nano_cpus`, in microseconds of each period.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        self.nano_cpus
            .map(|n| n.saturating_mul(CPU_PERIOD_US) / 1_000_000_000)
    }
}

/// `10m`, `512k`, `1g`, `4096`, `2mb`: bytes; None for anything else or
/// an overflow.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().last() {
        Some((i, 'k')) => (&lower[..i], 1u64 << 10),
        Some((i, 'm')) => (&lower[..i], 1 << 20),
        Some((i, 'g')) => (&lower[..i], 1 << 30),
        _ => (lower, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// `bytes` as `--memory` takes it, in the largest unit that divides it.
pub fn format_bytes(bytes: u64) -> String {
    [(30, "g"), (20, "m"), (10, "k")]
        .into_iter()
        .find(|&(shift, _)| bytes != 0 && bytes % (1 << shift) == 0)
        .map_or(format!("{bytes}b"), |(shift, unit)| {
            format!("{}{unit}", bytes >> shift)
        })
}

/// Billionths of a CPU as `--cpus` takes them: `0.5`, `2`.
pub fn format_cpus(nano: u64) -> String {
    let (whole, fraction) = (nano / 1_000_000_000, nano % 1_000_000_000);
    match fraction {
        0 => whole.to_string(),
        f => format!("{whole}.{}", format!("{f:09}").trim_end_matches('0')),
    }
}

/// `--memory`: bytes, at least docker's 6m.
pub fn parse_memory(text: &str) -> Result<u64, ResourceError> {
    parse_bytes(text)
        .filter(|bytes| (MIN_MEMORY..=MAX_MEMORY).contains(bytes))
        .ok_or_else(|| ResourceError::Memory(text.to_string()))
}

/// `--cpus`: a decimal number of CPUs, from 0.01 to `available`, in
/// billionths. Parsed as digits, not as a float, so 0.3 is exact.
pub fn parse_cpus(text: &str, available: u64) -> Result<u64, ResourceError> {
    let bad = || ResourceError::Cpus(text.to_string());
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 9
    {
        return Err(bad());
    }
    let whole: u64 = match whole {
        "" => 0,
        w => w.parse().map_err(|_| bad())?,
    };
    let fraction: u64 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let nano = whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction))
        .ok_or_else(bad)?;
    let resources = Resources {
        nano_cpus: Some(nano),
        ..Resources::default()
    };
    if resources.cpu_quota_us().unwrap_or(0) < MIN_CPU_QUOTA_US {
        return Err(bad());
    }
    if nano > available.saturating_mul(1_000_000_000) {
        return Err(ResourceError::TooManyCpus {
            text: text.to_string(),
            available,
        });
    }
    Ok(nano)
}

/// The kernel's PID_MAX_LIMIT on 64 bits: `pids.max` refuses more
/// (EINVAL), which would fail the run only once its cgroup is made.
const MAX_PIDS_LIMIT: i64 = 4 << 20;

/// `--pids-limit`: a positive limit, or None for 0 and -1 (unlimited).
pub fn parse_pids_limit(text: &str) -> Result<Option<u64>, ResourceError> {
    match text.trim().parse::<i64>() {
        Ok(0 | -1) => Ok(None),
        Ok(n @ 1..=MAX_PIDS_LIMIT) => Ok(Some(n as u64)),
        _ => Err(ResourceError::Pids(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_takes_dockers_suffixes_and_refuses_less_than_6m() {
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("64M"), Ok(64 << 20));
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("1gb"), Ok(1 << 30));
        assert_eq!(parse_memory("6144k"), Ok(6 << 20));
        assert_eq!(parse_memory("6291456b"), Ok(6 << 20));
        assert_eq!(parse_memory("6291456"), Ok(6 << 20));
        assert_eq!(parse_memory("4294967295g"), Ok(4294967295 << 30));
        for bad in [
            "",
            "m",
            "5m",
            "6291455",
            "-64m",
            "+64m",
            "64x",
            "1.5g",
            "99999999999g",
            "4294967296g",
            "17179869183g",
        ] {
            let err = parse_memory(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("--memory {bad:?}")), "{err}");
        }
    }

    #[test]
    fn bytes_print_in_the_largest_unit_that_divides_them() {
        assert_eq!(format_bytes(64 << 20), "64m");
        assert_eq!(format_bytes(1 << 30), "1g");
        assert_eq!(format_bytes(6144 << 10), "6m");
        assert_eq!(format_bytes(6291457), "6291457b");
        assert_eq!(parse_memory(&format_bytes(6291457)), Ok(6291457));
    }

    #[test]
    fn cpus_are_decimal_billionths_from_0_01_to_the_cpus_there_are() {
        assert_eq!(parse_cpus("0.5", 2), Ok(500_000_000));
        assert_eq!(parse_cpus(".25", 2), Ok(250_000_000));
        assert_eq!(parse_cpus("2", 2), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.01", 2), Ok(10_000_000));
        assert_eq!(parse_cpus("0.3", 2), Ok(300_000_000));
        for bad in [
            "",
            ".",
            "0",
            "0.0",
            "0.009",
            "-1",
            "1e3",
            "abc",
            "0.1234567891",
        ] {
            let err = parse_cpus(bad, 2).unwrap_err().to_string();
            assert!(err.contains(&format!("--cpus {bad:?}")), "{err}");
        }
        for text in ["0.5", "2", "0.01", "1.25"] {
            assert_eq!(format_cpus(parse_cpus(text, 2).unwrap()), text);
        }
        let err = parse_cpus("3", 2).unwrap_err().to_string();
        assert!(err.contains("2 CPUs"), "{err}");
    }

    #[test]
    fn cpus_become_a_quota_of_a_100ms_period() {
        let r = Resources {
            nano_cpus: Some(500_000_000),
            ..Resources::default()
        };
        assert_eq!(r.cpu_quota_us(), Some(50_000));
        let r = Resources {
            nano_cpus: Some(1_500_000_000),
            ..Resources::default()
        };
        assert_eq!(r.cpu_quota_us(), Some(150_000));
    }

    #[test]
    fn pids_limit_0_and_minus_1_are_unlimited_and_more_than_the_kernels_pid_max_refused() {
        assert_eq!(parse_pids_limit("100"), Ok(Some(100)));
        assert_eq!(parse_pids_limit("0"), Ok(None));
        assert_eq!(parse_pids_limit("-1"), Ok(None));
        assert_eq!(parse_pids_limit("4194304"), Ok(Some(4 << 20)));
        for bad in [
            "",
            "-2",
            "ten",
            "1.5",
            "4194305",
            "9223372036854775807",
            "１",
        ] {
            let err = parse_pids_limit(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("--pids-limit {bad:?}")), "{err}");
        }
    }
}
