//! `bench --process-start`: what starting the `supervisor` process costs
//! before it does any work, against `/bin/true`: each runs `--containers`
//! times, interleaved, from spawning the process to reaping it
//! (`supervisor --version` parses its command line and prints one line).

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

/// The two configurations: the supervisor's, then `/bin/true`'s.
pub fn measure(supervisor: &Path, count: usize) -> Result<[Configuration; 2], String> {
    let runs: [(&str, &Path, &[&str]); 2] = [
        (
            "process start: supervisor --version",
            supervisor,
            &["--version"],
        ),
        ("process start: /bin/true", Path::new("/bin/true"), &[]),
    ];
    let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let mut busy = [Duration::ZERO; 2];
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
    let [ours, theirs] = samples;
    let configuration = |i: usize, samples| Configuration {
        name: runs[i].0.to_string(),
        // Not the naive baseline the report compares the supervisor with.
        baseline: false,
        published_before: 0,
        busy: busy[i],
        samples,
    };
    Ok([configuration(0, ours), configuration(1, theirs)])
}
