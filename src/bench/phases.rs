//! The lifecycle phases `supervisor -v run` logs on stderr, one line each:
//! `… DEBUG NAME: N us …` (see `supervisor::phase`). The bench, and the
//! criterion benches, read a run's phases from its log rather than from
//! inside the process, so what they time is exactly what a user runs.

use std::time::Duration;

/// One phase's name and duration from a `-v` log line; None for any other
/// line. A parenthesised detail ends the name (`base ruleset (Current)` is
/// `base ruleset`), so every run names a phase the same way.
pub fn parse_line(line: &str) -> Option<(String, Duration)> {
    let message = line.split_once(" DEBUG ")?.1;
    let (name, rest) = message.split_once(": ")?;
    let digits = rest.split(' ').next()?;
    if !rest[digits.len()..].starts_with(" us") {
        return None;
    }
    let micros: u64 = digits.parse().ok()?;
    let name = name.split(" (").next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| (name.to_string(), Duration::from_micros(micros)))
}

/// Every phase of a log, in the order logged.
pub fn parse_log(log: &str) -> Vec<(String, Duration)> {
    log.lines().filter_map(parse_line).collect()
}

/// The peak resident set the supervisor logged at its end (`peak rss: N
/// KiB`), in KiB.
pub fn peak_rss_kib(log: &str) -> Option<u64> {
    log.lines().find_map(|line| {
        let rest = line.split_once(" DEBUG peak rss: ")?.1;
        rest.strip_suffix(" KiB")?.parse().ok()
    })
}

/// The duration of `name` among `phases`, if logged.
pub fn find(phases: &[(String, Duration)], name: &str) -> Option<Duration> {
    phases.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-11-29T14:29:47.323067Z DEBUG clone3: 792 us
2026-11-29T14:29:47.323476Z DEBUG base ruleset (Current): 71 us
2026-11-29T14:29:47.323515Z DEBUG network prepared, clone3: 1398 us
2026-11-29T14:29:47.323522Z DEBUG container created id=7c04aced7416 name=7c04aced7416 pid=10
2026-11-29T14:29:47.324684Z DEBUG plumb: 1127 us (veth 629 us, then configure 497 us) address=172.16.0.2 veth=sv-7c04aced7416
2026-11-29T14:29:47.324844Z DEBUG publish batch: 134 us
2026-11-29T14:29:47.325302Z  WARN table ip x has a forward chain with policy drop: 12 us
2026-11-29T14:29:47.325305Z DEBUG forwarding failed: the container is exiting
2026-11-29T14:29:47.339504Z DEBUG teardown: 13598 us
2026-11-29T14:29:47.339604Z DEBUG peak rss: 5840 KiB
";

    #[test]
    fn phases_come_in_log_order_with_details_dropped() {
        let phases = parse_log(LOG);
        let names: Vec<&str> = phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "clone3",
                "base ruleset",
                "network prepared, clone3",
                "plumb",
                "publish batch",
                "teardown"
            ]
        );
        assert_eq!(find(&phases, "plumb"), Some(Duration::from_micros(1127)));
        assert_eq!(find(&phases, "exec"), None);
    }

    #[test]
    fn the_peak_rss_line_is_not_a_phase() {
        assert_eq!(peak_rss_kib(LOG), Some(5840));
        assert!(parse_log(LOG).iter().all(|(n, _)| n != "peak rss"));
        assert_eq!(peak_rss_kib("x DEBUG teardown: 5 us"), None);
    }

    #[test]
    fn lines_that_are_not_phases_are_ignored() {
        for line in [
            "",
            "DEBUG clone3: 5 us",
            "x DEBUG clone3: five us",
            "x DEBUG clone3: 5 ms",
            "x DEBUG : 5 us",
            "x DEBUG container exited status=Exited(0)",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }
}
