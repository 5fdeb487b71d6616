//! The latency distribution of each configuration as an SVG chart: one
//! empirical CDF of end-to-end time per configuration, on a logarithmic
//! time axis so the supervisor and the naive baseline share one chart.
//! Hand-written SVG: a few lines and labels need no plotting crate.

use std::fmt::Write;

use super::Report;
use super::stats::Summary;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

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

/// The chart for `report`.
pub fn svg(report: &Report) -> String {
    let series: Vec<(&str, Vec<f64>)> = report
        .configurations
        .iter()
        .map(|c| {
            let mut ms: Vec<f64> = c
                .end_to_end()
                .iter()
                .map(|d| d.as_secs_f64() * 1e3)
                .filter(|v| *v > 0.0)
                .collect();
            ms.sort_by(f64::total_cmp);
            (c.name.as_str(), ms)
        })
        .collect();
    let all = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let lo_exp = if lo.is_finite() {
        lo.log10().floor()
    } else {
        -1.0
    };
    let mut hi_exp = if hi > 0.0 { hi.log10().ceil() } else { 2.0 };
    if hi_exp <= lo_exp {
        hi_exp = lo_exp + 1.0;
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |ms: f64| LEFT + (ms.log10() - lo_exp) / (hi_exp - lo_exp) * plot_w;
    let y = |fraction: f64| TOP + (1.0 - fraction) * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">End-to-end time per \
         container, cumulative distribution</text>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"40\" fill=\"#555\">{}</text>",
        escape(&report.command)
    );
    // Grid and ticks: 1, 2 and 5 of each decade; quarters of the samples.
    let mut exp = lo_exp;
    while exp < hi_exp {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powf(exp);
            let px = x(v);
            let _ = writeln!(
                out,
                "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + plot_h,
                TOP + plot_h + 16.0,
                tick_label(v)
            );
        }
        exp += 1.0;
    }
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
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
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#333\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">milliseconds from start to \
         teardown done (log scale)</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0
    );
    let _ = writeln!(
        out,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">containers \
         done within</text>",
        TOP + plot_h / 2.0
    );
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
        let p50 = Summary::of(&report.configurations[i].end_to_end()).map_or(String::new(), |s| {
            format!(" (p50 {:.2} ms)", s.p50.as_secs_f64() * 1e3)
        });
        let ly = TOP + 18.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}{}</text>",
            LEFT + 12.0,
            ly - 4.0,
            LEFT + 36.0,
            ly - 4.0,
            LEFT + 42.0,
            ly,
            escape(name),
            p50
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::report;
    use super::*;

    #[test]
    fn one_curve_and_legend_entry_per_configuration() {
        let r = report();
        let svg = svg(&r);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<path ").count(), r.configurations.len());
        assert!(
            svg.contains("naive baseline (ip + nft) (p50 20.08 ms)"),
            "{svg}"
        );
        assert!(svg.contains("&quot;") || !r.command.contains('"'));
        // decades from 1 ms (supervisor) to 100 ms (baseline) are labelled
        for label in [">1<", ">10<", ">20<"] {
            assert!(svg.contains(label), "{label}");
        }
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
