//! A one-line progress bar on stderr, drawn only when stderr is a terminal
//! (logs and pipes get nothing). Plain text: no crate for one line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const WIDTH: usize = 30;

pub struct Progress {
    label: String,
    total: usize,
    done: AtomicUsize,
    started: Instant,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: AtomicUsize::new(0),
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// One more container measured: counts it and redraws.
    pub fn step(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.draw();
    }

    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Redraws the line.
    pub fn draw(&self) {
        if self.enabled {
            let line = self.line(self.done(), self.started.elapsed().as_secs_f64());
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{line}");
            let _ = err.flush();
        }
    }

    /// Clears the line, leaving the terminal as it was.
    pub fn finish(&self) {
        if self.enabled {
            let blank = " ".repeat(self.line(self.total, 0.0).chars().count() + 8);
            let _ = write!(std::io::stderr().lock(), "\r{blank}\r");
        }
    }

    fn line(&self, done: usize, seconds: f64) -> String {
        let filled = (done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        let rate = if seconds > 0.0 {
            format!("{:.0}/s", done as f64 / seconds)
        } else {
            String::new()
        };
        format!(
            "{:<34} [{}{}] {done}/{} {rate}",
            self.label,
            "#".repeat(filled.min(WIDTH)),
            ".".repeat(WIDTH - filled.min(WIDTH)),
            self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion() {
        let p = Progress::new("supervisor", 60);
        let line = p.line(30, 2.0);
        assert!(line.starts_with("supervisor "), "{line}");
        assert!(line.contains(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))));
        assert!(line.ends_with("30/60 15/s"), "{line}");
    }
}
