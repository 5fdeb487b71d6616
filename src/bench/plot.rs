//! The latency distribution of each configuration as an SVG chart: the
//! empirical CDF of each configuration's "until exec" (what a user waits for
//! before the command runs) and end-to-end times, on logarithmic time axes
//! so the supervisor and the naive baseline share a panel. Hand-written
//! SVG: a few lines and labels need no plotting crate.

use std::fmt::Write;
use std::time::Duration;

use super::stats::Summary;
use super::{Configuration, Report, UNTIL_EXEC};

const WIDTH: f64 = 860.0;
const HEADER: f64 = 50.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 24.0;
const PAD_TOP: f64 = 30.0;
const PLOT_HEIGHT: f64 = 250.0;
/// Below the plot: tick labels and the axis title.
const AXIS: f64 = 44.0;
const LEGEND_ROW: f64 = 18.0;
const LEGEND_COLUMNS: usize = 2;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];
/// 1, 2 and 5 of each decade: tick marks and axis ends.
const STEPS: [f64; 3] = [1.0, 2.0, 5.0];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "0.5", "2", "100": a tick label in milliseconds.
fn tick_label(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        let text = format!("{ms:.3}");
        text.trim_end_matches('0').to_string()
    }
}

/// The 1-2-5 ticks from the one at or below `lo` to the one at or above
/// `hi` (both in ms, positive).
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut all = Vec::new();
    let mut exp = lo.log10().floor() as i32;
    while all.last().is_none_or(|&t| t < hi) {
        all.extend(STEPS.iter().map(|m| m * 10f64.powi(exp)));
        exp += 1;
    }
    let first = all.iter().rposition(|&t| t <= lo).unwrap_or(0);
    let last = all.iter().position(|&t| t >= hi).unwrap_or(all.len() - 1);
    all[first..=last].to_vec()
}

/// The sorted milliseconds of each configuration's `values`.
fn series(
    report: &Report,
    values: impl Fn(&Configuration) -> Vec<Duration>,
) -> Vec<(&str, Vec<f64>)> {
    report
        .configurations
        .iter()
        .map(|c| {
            let mut ms: Vec<f64> = values(c)
                .iter()
                .map(|d| d.as_secs_f64() * 1e3)
                .filter(|v| *v > 0.0)
                .collect();
            ms.sort_by(f64::total_cmp);
            (c.name.as_str(), ms)
        })
        .collect()
}

/// A panel's height: its plot, axis and legend rows.
fn panel_height(configurations: usize) -> f64 {
    let rows = configurations.div_ceil(LEGEND_COLUMNS) as f64;
    PAD_TOP + PLOT_HEIGHT + AXIS + rows * LEGEND_ROW + 16.0
}

/// One panel of CDFs at vertical offset `top`, its legend underneath.
fn panel(out: &mut String, top: f64, title: &str, series: &[(&str, Vec<f64>)]) {
    let all = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let ticks = if lo.is_finite() {
        ticks(lo, hi)
    } else {
        vec![1.0, 10.0]
    };
    let (first, last) = (
        ticks[0].log10(),
        ticks[ticks.len() - 1].log10().max(ticks[0].log10() + 1.0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PLOT_HEIGHT;
    let y0 = top + PAD_TOP;
    let x = |ms: f64| LEFT + (ms.log10() - first) / (last - first) * plot_w;
    let y = |fraction: f64| y0 + (1.0 - fraction) * plot_h;
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        top + 20.0,
        escape(title)
    );
    for &t in &ticks {
        let px = x(t);
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{y0:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y0 + plot_h,
            y0 + plot_h + 16.0,
            tick_label(t)
        );
    }
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let py = y(q);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            q * 100.0
        );
    }
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{y0:.1}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">milliseconds (log scale)</text>\
         <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">containers within</text>",
        LEFT + plot_w / 2.0,
        y0 + plot_h + 36.0,
        y0 + plot_h / 2.0
    );
    // The legend goes under the axis: no curve can hide it.
    let legend_top = y0 + plot_h + AXIS;
    for (i, (name, values)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if let Some(first) = values.first() {
            let n = values.len() as f64;
            let mut path = format!("M{:.1},{:.1}", x(*first), y(0.0));
            for (k, v) in values.iter().enumerate() {
                let _ = write!(path, " H{:.1} V{:.1}", x(*v), y((k + 1) as f64 / n));
            }
            let _ = writeln!(
                out,
                "<path d=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>"
            );
        }
        let durations: Vec<Duration> = values
            .iter()
            .map(|ms| Duration::from_secs_f64(ms / 1e3))
            .collect();
        let p50 = Summary::of(&durations).map_or(String::new(), |s| {
            format!(" (p50 {:.2} ms)", s.p50.as_secs_f64() * 1e3)
        });
        let ly = legend_top + LEGEND_ROW * (i / LEGEND_COLUMNS + 1) as f64;
        let lx = LEFT + plot_w / LEGEND_COLUMNS as f64 * (i % LEGEND_COLUMNS) as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\">{}{p50}</text>",
            ly - 4.0,
            lx + 24.0,
            ly - 4.0,
            lx + 30.0,
            escape(name)
        );
    }
}

/// The chart for `report`: "until exec" above, end to end below.
pub fn svg(report: &Report) -> String {
    let panel_h = panel_height(report.configurations.len());
    let height = HEADER + 2.0 * panel_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{WIDTH}\" height=\"{height}\" fill=\"white\"/>"
    );
    let mut command: String = report.command.chars().take(120).collect();
    if command.len() < report.command.len() {
        command.push('…');
    }
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Latency per container, \
         cumulative distribution</text>\n<text x=\"{LEFT}\" y=\"40\" font-size=\"11\" fill=\"#555\">{}</text>",
        escape(&command)
    );
    let until_exec = series(report, |c| c.phase(UNTIL_EXEC));
    panel(
        &mut out,
        HEADER,
        "until exec: from starting the command to the container's program running",
        &until_exec,
    );
    let end_to_end = series(report, Configuration::end_to_end);
    panel(
        &mut out,
        HEADER + panel_h,
        "end to end: to the end of the teardown",
        &end_to_end,
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::report;
    use super::*;

    #[test]
    fn two_panels_with_one_curve_and_legend_entry_per_configuration() {
        let r = report();
        let svg = svg(&r);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<path ").count(), 2 * r.configurations.len());
        assert!(
            svg.contains("naive baseline (ip + nft) (p50 20.08 ms)"),
            "{svg}"
        );
        assert!(
            svg.contains("naive baseline (ip + nft) (p50 8.00 ms)"),
            "{svg}"
        );
        assert!(svg.contains("until exec: "));
        assert!(svg.contains("end to end: "));
    }

    #[test]
    fn axes_end_on_the_ticks_around_the_samples() {
        assert_eq!(ticks(1.004, 20.18), [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(ticks(0.3, 0.9), [0.2, 0.5, 1.0]);
        assert_eq!(ticks(2.0, 2.0), [2.0]);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(0.02), "0.02");
        assert_eq!(tick_label(2.0), "2");
        assert_eq!(tick_label(100.0), "100");
    }

    #[test]
    fn an_empty_report_still_draws_axes() {
        let mut r = report();
        r.configurations.clear();
        let svg = svg(&r);
        assert!(svg.contains("<rect"));
        assert_eq!(svg.matches("<path ").count(), 0);
    }
}
