//! `bench --process-start`: what starting the `supervisor` process costs
//! before it does any work, against `/bin/true`: each runs `--containers`
//! times, interleaved, from spawning the process to reaping it
//! (`supervisor --version` parses its command line and prints one line;
//! `run --dry-run --network none` parses `run`'s, sets up logging, checks
//! the spec and stops where a real `run` starts working).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Configuration, Sample};

/// One spawn-to-reap of `program args`.
fn once(program: &Path, args: &[&str]) -> Result<Duration, String> {
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    let took = start.elapsed();
    if !status.success() {
        return Err(format!("{} {args:?}: {status}", program.display()));
    }
    Ok(took)
}

/// The three configurations: the supervisor's two, then `/bin/true`'s.
pub fn measure(supervisor: &Path, count: usize) -> Result<[Configuration; 3], String> {
    const DRY_RUN: &[&str] = &["run", "--dry-run", "--network", "none", "--", "/bin/true"];
    let runs: [(&str, &Path, &[&str]); 3] = [
        (
            "process start: supervisor --version",
            supervisor,
            &["--version"],
        ),
        ("process start: run --dry-run", supervisor, DRY_RUN),
        ("process start: /bin/true", Path::new("/bin/true"), &[]),
    ];
    let mut samples: [Vec<Sample>; 3] = Default::default();
    let mut busy = [Duration::ZERO; 3];
    for container in 0..count {
        for (i, (_, program, args)) in runs.iter().enumerate() {
            let took = once(program, args)?;
            busy[i] += took;
            samples[i].push(Sample {
                container,
                end_to_end: took,
                phases: vec![],
                max_rss_kib: None,
            });
        }
    }
    let [version, dry_run, theirs] = samples;
    let configuration = |i: usize, samples| Configuration {
        name: runs[i].0.to_string(),
        // Not the naive baseline the report compares the supervisor with.
        baseline: false,
        published_before: 0,
        dual_stack: false,
        busy: busy[i],
        samples,
    };
    Ok([
        configuration(0, version),
        configuration(1, dry_run),
        configuration(2, theirs),
    ])
}
