//! `bench --ipv6`: `run -p` dual stack beside `run -p` IPv4 only, in the
//! same run, alternated container by container, so whatever load the
//! machine carries weighs on both alike (issue 14: dual stack within 1.3x
//! of IPv4). Which of a pair goes first alternates too: the second of a
//! pair runs on a kernel still tearing down the first's namespace.
//!
//! Each family has a bridge of its own (an IPv4-only one and a dual-stack
//! one, both in the bench's host): a bridge's network is one or the other,
//! and the IPv4 figure is the IPv4-only network's.

use std::time::Duration;

use super::runner::{self, Supervisor};
use super::{Configuration, Error, Options, Sample, WARMUP, progress::Progress};

pub const IPV4: &str = "supervisor, IPv4";
pub const DUAL_STACK: &str = "supervisor, dual stack";

/// Whether the `k`th run of the alternation is dual stack, and which
/// container of its configuration it is: pairs (IPv4, dual stack), then
/// (dual stack, IPv4), and so on.
fn slot(k: usize) -> (bool, usize) {
    let pair = k / 2;
    ((k % 2 == 1) != (pair % 2 == 1), pair)
}

/// `WARMUP` containers of each, unrecorded, then `options.containers` of
/// each, alternated; the IPv4 configuration first.
pub fn measure(
    ipv4: &Supervisor,
    dual: &Supervisor,
    options: &Options,
) -> Result<[Configuration; 2], Error> {
    let attempt = |k: usize| {
        let (is_dual, container) = slot(k);
        let (name, supervisor) = if is_dual {
            (DUAL_STACK, dual)
        } else {
            (IPV4, ipv4)
        };
        // `k`, not `container`: a distinct host port for each of a pair,
        // which may run at the same time. The sample keeps `k` until the
        // two are told apart.
        supervisor.run_one(k).map_err(|detail| Error::Run {
            configuration: name.to_string(),
            index: container,
            detail,
        })
    };
    for k in 0..2 * WARMUP {
        attempt(k)?;
        std::thread::sleep(options.pause);
    }
    let progress = Progress::new("supervisor, IPv4 and dual stack", 2 * options.containers);
    let (samples, _) = runner::measure(
        2 * options.containers,
        options.concurrency,
        options.pause,
        &progress,
        attempt,
    )?;
    let (mut dual_samples, mut ipv4_samples) = (Vec::new(), Vec::new());
    for sample in samples {
        let (is_dual, container) = slot(sample.container);
        let sample = Sample {
            container,
            ..sample
        };
        if is_dual {
            dual_samples.push(sample);
        } else {
            ipv4_samples.push(sample);
        }
    }
    let configuration = |name: &str, dual_stack, samples: Vec<Sample>| Configuration {
        name: name.to_string(),
        baseline: false,
        published_before: 0,
        dual_stack,
        busy: busy(&samples, options.concurrency),
        samples,
    };
    Ok([
        configuration(IPV4, false, ipv4_samples),
        configuration(DUAL_STACK, true, dual_samples),
    ])
}

/// One configuration's share of the busy time: its containers' end-to-end
/// times, `concurrency` at a time (the two share the workers' wall time).
fn busy(samples: &[Sample], concurrency: usize) -> Duration {
    let total: Duration = samples.iter().map(|s| s.end_to_end).sum();
    total / concurrency.max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_alternate_and_so_does_which_goes_first() {
        let order: Vec<(bool, usize)> = (0..8).map(slot).collect();
        assert_eq!(
            order,
            [
                (false, 0),
                (true, 0),
                (true, 1),
                (false, 1),
                (false, 2),
                (true, 2),
                (true, 3),
                (false, 3)
            ]
        );
    }

    #[test]
    fn each_family_gets_its_share_of_the_busy_time() {
        let sample = |ms| Sample {
            container: 0,
            end_to_end: Duration::from_millis(ms),
            phases: vec![],
            max_rss_kib: None,
        };
        let samples = [sample(4), sample(6)];
        assert_eq!(busy(&samples, 1), Duration::from_millis(10));
        assert_eq!(busy(&samples, 2), Duration::from_millis(5));
    }
}
