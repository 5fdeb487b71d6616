//! What `supervisor bench` prints and writes: the table for people, and
//! the raw samples as JSON and CSV for tools. Pure functions of a
//! [`Report`], so the formats are unit-tested.

use std::fmt::Write;
use std::time::Duration;

use super::stats::{Summary, ratio};
use super::{Configuration, Report, UNTIL_EXEC};

/// Milliseconds with microsecond resolution: "3.214".
fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The human-readable report.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(out, "{}", report.command);
    let pacing = if report.pause.is_zero() {
        "back to back".to_string()
    } else {
        format!("{} ms apart", report.pause.as_millis())
    };
    let _ = writeln!(
        out,
        "{} CPUs, Linux {}, load average {} at the start; {} containers per configuration, \
         {} at a time, {pacing}, {}",
        m.cpus,
        m.kernel,
        m.load_average,
        report.containers,
        report.concurrency,
        if report.publish {
            "each publishing one port"
        } else {
            "no published port"
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<34} {:>9} {:>9} {:>9} {:>9}   (ms)",
        "", "p50", "p90", "p99", "max"
    );
    for config in &report.configurations {
        let _ = writeln!(out, "{}", config.name);
        let mut rows: Vec<(String, Vec<Duration>)> = config
            .phase_names()
            .into_iter()
            .map(|name| {
                let values = config.phase(&name);
                (name, values)
            })
            .collect();
        rows.push(("end to end".into(), config.end_to_end()));
        for (name, values) in rows {
            if let Some(s) = Summary::of(&values) {
                let _ = writeln!(
                    out,
                    "  {name:<32} {:>9} {:>9} {:>9} {:>9}",
                    ms(s.p50),
                    ms(s.p90),
                    ms(s.p99),
                    ms(s.max)
                );
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<34} {:>17} {:>24}",
        "", "containers/s busy", "supervisor RSS p50/max"
    );
    for config in &report.configurations {
        let mut rss = config.max_rss_kib();
        rss.sort_unstable();
        let rss = match (rss.get(rss.len().saturating_sub(1) / 2), rss.last()) {
            (Some(p50), Some(max)) => format!("{} / {}", mib(*p50), mib(*max)),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<34} {:>17.1} {:>24}",
            config.name,
            config.per_second(),
            rss
        );
    }
    if let Some(line) = baseline_ratios(report) {
        let _ = writeln!(out);
        let _ = writeln!(out, "{line}");
    }
    if let Some(DualStackRatios { dual, ipv4, ratios }) = dual_stack_ratios(report) {
        let _ = writeln!(out);
        let mut line = format!(
            "{} / {}, same run, alternated, at p50:",
            dual.name, ipv4.name
        );
        for (i, (phase, r)) in ratios.iter().enumerate() {
            let _ = write!(line, "{} {phase} {r:.2}x", if i > 0 { ";" } else { "" });
        }
        let _ = writeln!(out, "{line}");
    }
    let scale = scale_table(report);
    if !scale.is_empty() {
        let _ = writeln!(out);
        out.push_str(&scale);
    }
    for note in &report.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    out
}

fn p50(values: &[Duration]) -> Option<Duration> {
    Summary::of(values).map(|s| s.p50)
}

/// "naive baseline / supervisor: …", against the supervisor with the
/// fewest ports pre-published (the baseline runs before any are), both
/// from this run.
fn baseline_ratios(report: &Report) -> Option<String> {
    let naive = report.configurations.iter().find(|c| c.baseline)?;
    let ours = report
        .configurations
        .iter()
        .filter(|c| !c.baseline)
        .min_by_key(|c| c.published_before)?;
    let e2e = |c: &Configuration| Summary::of(&c.end_to_end());
    let (theirs, mine) = (e2e(naive)?, e2e(ours)?);
    let mut line = format!("naive baseline / {}, same run, at p50:", ours.name);
    for phase in [UNTIL_EXEC, "network ready"] {
        let p = |c: &Configuration| p50(&c.phase(phase));
        if let Some(r) = p(naive).zip(p(ours)).and_then(|(a, b)| ratio(a, b)) {
            let _ = write!(line, " {phase} {r:.1}x;");
        }
    }
    let _ = write!(
        line,
        " end to end {:.1}x (p90 {:.1}x)",
        ratio(theirs.p50, mine.p50)?,
        ratio(theirs.p90, mine.p90)?
    );
    let _ = write!(
        line,
        "; containers/s {:.1}x",
        ours.per_second() / naive.per_second().max(f64::MIN_POSITIVE)
    );
    Some(line)
}

/// The phases issue 14 names, dual stack over IPv4 at p50.
const DUAL_STACK_PHASES: [&str; 3] = [UNTIL_EXEC, "network ready", "end to end"];

/// `--ipv6`'s comparison.
struct DualStackRatios<'a> {
    dual: &'a Configuration,
    ipv4: &'a Configuration,
    /// Dual stack over IPv4 at p50, per phase both have.
    ratios: Vec<(&'static str, f64)>,
}

/// `--ipv6`: the dual-stack configuration, the IPv4 one measured with it
/// (the other supervisor configuration with no port pre-published), and
/// the ratios of `DUAL_STACK_PHASES` at p50 that both have.
fn dual_stack_ratios(report: &Report) -> Option<DualStackRatios<'_>> {
    let dual = report.configurations.iter().find(|c| c.dual_stack)?;
    let ipv4 = report
        .configurations
        .iter()
        .find(|c| !c.baseline && !c.dual_stack && c.published_before == 0)?;
    let values = |c: &Configuration, phase: &str| {
        if phase == "end to end" {
            c.end_to_end()
        } else {
            c.phase(phase)
        }
    };
    let ratios = DUAL_STACK_PHASES
        .iter()
        .filter_map(|&phase| {
            let (a, b) = (p50(&values(dual, phase))?, p50(&values(ipv4, phase))?);
            Some((phase, ratio(a, b)?))
        })
        .collect();
    Some(DualStackRatios { dual, ipv4, ratios })
}

/// Setup time against ports already published, when more than one count
/// was measured; the last column compares each to the first.
fn scale_table(report: &Report) -> String {
    let points: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| !c.baseline && !c.dual_stack)
        .collect();
    if points.len() < 2 {
        return String::new();
    }
    let first = points[0];
    let row = |cells: [&str; 6]| {
        format!(
            "{:>16} {:>12} {:>14} {:>14} {:>11}   {:>14}\n",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )
    };
    let mut out = row([
        "ports published",
        "startup",
        "network ready",
        "publish batch",
        "end to end",
        "vs the first:",
    ]);
    out += &row([
        "before",
        "p50 (ms)",
        "p50 (ms)",
        "p50 (ms)",
        "p50 (ms)",
        "startup, batch",
    ]);
    for c in &points {
        let cell = |phase: &str| p50(&c.phase(phase)).map_or("-".into(), ms);
        let vs = |phase: &str| match (p50(&c.phase(phase)), p50(&first.phase(phase))) {
            (Some(a), Some(b)) => ratio(a, b).map_or("-".into(), |r| format!("{r:.2}x")),
            _ => "-".into(),
        };
        out += &row([
            &c.published_before.to_string(),
            &cell("startup"),
            &cell("network ready"),
            &cell("publish batch"),
            &p50(&c.end_to_end()).map_or("-".into(), ms),
            &format!("{}, {}", vs("startup"), vs("publish batch")),
        ]);
    }
    out
}

/// A JSON string literal.
fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}

/// Every sample, as JSON: the run's settings and machine, then per
/// configuration its samples with phases in microseconds.
pub fn json(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = write!(
        out,
        "{{\n  \"command\": {},\n  \"machine\": {{\"cpus\": {}, \"kernel\": {}, \"load_average\": {}}},\n  \
         \"containers\": {},\n  \"concurrency\": {},\n  \"pause_ms\": {},\n  \"publish\": {},\n  \"notes\": [{}],\n  \
         \"ratios\": [{}],\n  \"configurations\": [",
        string(&report.command),
        m.cpus,
        string(&m.kernel),
        string(&m.load_average),
        report.containers,
        report.concurrency,
        report.pause.as_millis(),
        report.publish,
        report
            .notes
            .iter()
            .map(|n| string(n))
            .collect::<Vec<_>>()
            .join(", "),
        json_ratios(report)
    );
    for (i, c) in report.configurations.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n    {{\n      \"name\": {},\n      \"baseline\": {},\n      \"published_before\": {},\n      \
             \"dual_stack\": {},\n      \"busy_us\": {},\n      \"containers_per_second\": {:.3},\n      \"samples\": [",
            if i > 0 { "," } else { "" },
            string(&c.name),
            c.baseline,
            c.published_before,
            c.dual_stack,
            micros(c.busy),
            c.per_second()
        );
        for (j, s) in c.samples.iter().enumerate() {
            let phases: Vec<String> = s
                .phases
                .iter()
                .map(|(name, d)| format!("{}: {}", string(name), micros(*d)))
                .collect();
            let rss = s.max_rss_kib.map_or("null".to_string(), |k| k.to_string());
            let _ = write!(
                out,
                "{}\n        {{\"container\": {}, \"end_to_end_us\": {}, \"max_rss_kib\": {}, \"phases_us\": {{{}}}}}",
                if j > 0 { "," } else { "" },
                s.container,
                micros(s.end_to_end),
                rss,
                phases.join(", ")
            );
        }
        out.push_str("\n      ]\n    }");
    }
    out.push_str("\n  ]\n}\n");
    out
}

/// `--ipv6`'s ratios as JSON objects: which configuration over which, the
/// phase, the statistic and the ratio.
fn json_ratios(report: &Report) -> String {
    let Some(DualStackRatios { dual, ipv4, ratios }) = dual_stack_ratios(report) else {
        return String::new();
    };
    ratios
        .iter()
        .map(|(phase, r)| {
            format!(
                "{{\"of\": {}, \"over\": {}, \"phase\": {}, \"at\": \"p50\", \"ratio\": {r:.3}}}",
                string(&dual.name),
                string(&ipv4.name),
                string(phase)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CSV field, quoted when it must be.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Every sample as CSV, one measurement per row (long format): each phase,
/// the end-to-end time and the peak RSS of each container.
pub fn csv(report: &Report) -> String {
    let mut out = String::from("configuration,published_before,container,metric,value,unit\n");
    // `--ipv6`'s ratios: a row per phase, of no one container.
    if let Some(DualStackRatios { dual, ipv4, ratios }) = dual_stack_ratios(report) {
        let name = field(&format!("{} / {}", dual.name, ipv4.name));
        for (phase, r) in ratios {
            let _ = writeln!(out, "{name},0,,{} p50,{r:.3},ratio", field(phase));
        }
    }
    for c in &report.configurations {
        let name = field(&c.name);
        for s in &c.samples {
            let mut row = |metric: &str, value: String, unit: &str| {
                let _ = writeln!(
                    out,
                    "{name},{},{},{},{value},{unit}",
                    c.published_before,
                    s.container,
                    field(metric)
                );
            };
            for (phase, d) in &s.phases {
                row(phase, micros(*d).to_string(), "us");
            }
            row("end to end", micros(s.end_to_end).to_string(), "us");
            if let Some(kib) = s.max_rss_kib {
                row("max rss", kib.to_string(), "KiB");
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{Machine, Sample};
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn config(name: &str, baseline: bool, published_before: usize, scale: u64) -> Configuration {
        let samples = (0..10)
            .map(|i| Sample {
                container: i,
                end_to_end: us(scale * (1000 + i as u64)),
                phases: vec![
                    ("startup".into(), us(scale * 300)),
                    ("network ready".into(), us(scale * 100)),
                    (UNTIL_EXEC.into(), us(scale * 400)),
                ],
                max_rss_kib: (!baseline).then_some(5000 + i as u64),
            })
            .collect();
        Configuration {
            name: name.into(),
            baseline,
            published_before,
            dual_stack: false,
            busy: us(scale * 10_000),
            samples,
        }
    }

    pub(crate) fn report() -> Report {
        Report {
            command: "supervisor bench --containers 10 --concurrency 1 --publish --baseline".into(),
            machine: Machine {
                cpus: 2,
                kernel: "6.18.0".into(),
                load_average: "0.10 0.20 0.30".into(),
            },
            containers: 10,
            concurrency: 1,
            pause: Duration::ZERO,
            publish: true,
            configurations: vec![
                config("supervisor, 0 published", false, 0, 1),
                config("supervisor, 10000 published", false, 10_000, 1),
                config("naive baseline (ip + nft)", true, 0, 20),
            ],
            notes: vec!["a \"quoted\" note".into()],
        }
    }

    #[test]
    fn the_table_has_percentiles_per_phase_throughput_rss_and_ratios() {
        let t = table(&report());
        assert!(t.starts_with("supervisor bench --containers 10"), "{t}");
        assert!(
            t.contains("2 CPUs, Linux 6.18.0, load average 0.10 0.20 0.30"),
            "{t}"
        );
        let header = t.lines().find(|l| l.contains("p50")).unwrap();
        for col in ["p50", "p90", "p99", "max"] {
            assert!(header.contains(col), "{header}");
        }
        // end to end of the first configuration: 1.000..1.009 ms
        let e2e = t
            .lines()
            .find(|l| l.trim_start().starts_with("end to end"))
            .unwrap();
        let cells: Vec<&str> = e2e.split_whitespace().collect();
        assert_eq!(cells[3..], ["1.004", "1.008", "1.009", "1.009"], "{e2e}");
        assert!(t.contains("containers/s"));
        assert!(t.contains("4.9 MiB / 4.9 MiB"), "{t}");
        assert!(
            t.contains(
                "naive baseline / supervisor, 0 published, same run, at p50: until exec 20.0x; \
                 network ready 20.0x; end to end 20.0x (p90 20.0x); containers/s 20.0x"
            ),
            "{t}"
        );
        let scale: Vec<&str> = t
            .lines()
            .skip_while(|l| !l.contains("ports published"))
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(scale.len(), 4, "{t}");
        assert!(scale[3].trim_start().starts_with("10000"));
        assert!(scale[3].trim_end().ends_with("1.00x, -"), "{}", scale[3]);
        assert!(t.contains("note: a \"quoted\" note"));
    }

    #[test]
    fn without_a_baseline_or_scale_those_sections_are_absent() {
        let mut r = report();
        r.configurations.truncate(1);
        let t = table(&r);
        assert!(!t.contains("naive baseline /"));
        assert!(!t.contains("ports published"));
    }

    #[test]
    fn json_holds_every_sample_with_its_phases() {
        let j = json(&report());
        assert!(j.starts_with("{\n  \"command\": \"supervisor bench"));
        assert!(j.contains("\"notes\": [\"a \\\"quoted\\\" note\"]"), "{j}");
        assert_eq!(j.matches("\"end_to_end_us\"").count(), 30);
        assert!(j.contains(
            "{\"container\": 0, \"end_to_end_us\": 1000, \"max_rss_kib\": 5000, \"phases_us\": {\"startup\": 300, \"network ready\": 100, \"until exec\": 400}}"
        ), "{j}");
        assert!(j.contains("\"max_rss_kib\": null"));
        assert!(j.contains("\"published_before\": 10000"));
        let opens = j.matches(['{', '[']).count();
        let closes = j.matches(['}', ']']).count();
        assert_eq!(opens, closes);
    }

    /// `--ipv6`'s report: the IPv4 configuration and the dual-stack one,
    /// 1.25 times as long.
    fn dual_stack_report() -> Report {
        let mut r = report();
        let ipv4 = config("supervisor, IPv4", false, 0, 4);
        let mut dual = config("supervisor, dual stack", false, 0, 5);
        dual.dual_stack = true;
        r.configurations = vec![ipv4, dual];
        r
    }

    #[test]
    fn dual_stack_is_compared_with_ipv4_in_the_table_json_and_csv() {
        let t = table(&dual_stack_report());
        assert!(
            t.contains(
                "supervisor, dual stack / supervisor, IPv4, same run, alternated, at p50: \
                 until exec 1.25x; network ready 1.25x; end to end 1.25x"
            ),
            "{t}"
        );
        assert!(!t.contains("ports published"), "not a scale:\n{t}");
        let j = json(&dual_stack_report());
        assert!(
            j.contains(
                "{\"of\": \"supervisor, dual stack\", \"over\": \"supervisor, IPv4\", \
                 \"phase\": \"end to end\", \"at\": \"p50\", \"ratio\": 1.250}"
            ),
            "{j}"
        );
        assert_eq!(j.matches("\"dual_stack\": true").count(), 1, "{j}");
        let c = csv(&dual_stack_report());
        let ratios: Vec<&str> = c.lines().filter(|l| l.ends_with(",ratio")).collect();
        assert_eq!(
            ratios,
            [
                "\"supervisor, dual stack / supervisor, IPv4\",0,,until exec p50,1.250,ratio",
                "\"supervisor, dual stack / supervisor, IPv4\",0,,network ready p50,1.250,ratio",
                "\"supervisor, dual stack / supervisor, IPv4\",0,,end to end p50,1.250,ratio",
            ]
        );
        // Without --ipv6, none of it.
        assert!(!table(&report()).contains("alternated"));
        assert!(json(&report()).contains("\"ratios\": [],"));
        assert!(!csv(&report()).contains(",ratio"));
    }

    #[test]
    fn strings_are_escaped_for_json() {
        assert_eq!(string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn csv_has_one_row_per_measurement() {
        let c = csv(&report());
        let mut lines = c.lines();
        assert_eq!(
            lines.next(),
            Some("configuration,published_before,container,metric,value,unit")
        );
        let rows: Vec<&str> = lines.collect();
        // 3 phases + end to end (+ rss for the supervisor) per sample
        assert_eq!(rows.len(), 10 * 5 + 10 * 5 + 10 * 4);
        assert_eq!(rows[0], "\"supervisor, 0 published\",0,0,startup,300,us");
        assert_eq!(rows[4], "\"supervisor, 0 published\",0,0,max rss,5000,KiB");
        assert!(rows.iter().all(|r| r.matches(',').count() >= 5));
    }
}
