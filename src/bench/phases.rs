//! The lifecycle phases `supervisor -v run` logs on stderr, one line each:
//! `… DEBUG NAME: N us …` (see `supervisor::milestones`). The bench, and the
//! criterion benches, read a run's phases from its log rather than from
//! inside the process, so what they time is exactly what a user runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// When the line logging phase `name` was written: its UTC timestamp
/// (`2026-11-29T14:29:47.325302Z`, tracing's default), so the moment a
/// phase ended can be set against a clock read outside the process.
pub fn logged_at(log: &str, name: &str) -> Option<SystemTime> {
    let line = log.lines().find(|l| {
        l.split_once(" DEBUG ")
            .is_some_and(|(_, m)| m.starts_with(name) && m[name.len()..].starts_with([':', ' ']))
    })?;
    parse_timestamp(line.split_whitespace().next()?)
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` as a SystemTime.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let digits = fraction.len().min(9);
    let nanos: u64 = fraction[..digits].parse::<u64>().ok()? * 10u64.pow((9 - digits) as u32);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
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
    fn a_phase_line_gives_the_moment_it_was_logged() {
        let at = logged_at(LOG, "publish batch").unwrap();
        let since = at.duration_since(UNIX_EPOCH).unwrap();
        // 2026-11-29T14:29:47.324844Z
        assert_eq!(since.as_secs(), 1_795_962_587);
        assert_eq!(since.subsec_micros(), 324_844);
        assert!(logged_at(LOG, "plumb").is_some());
        assert_eq!(logged_at(LOG, "plum"), None);
        assert_eq!(logged_at(LOG, "exec"), None);
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:00.5Z")
                .map(|t| t.duration_since(UNIX_EPOCH).unwrap()),
            Some(Duration::from_millis(951_868_800_500))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
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
