//! Progress reporting for long steps: a bar on a terminal, log lines (count, rate, ETA) elsewhere.
//!
//! Steps call [`Progress::start`] / [`Progress::advance`] / [`Progress::finish`]; the front end picks
//! the implementation: the CLI a bar or stderr lines, the Airflow task a sink into Python logging.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

pub trait Progress: Send + Sync {
    fn start(&self, step: &str, total: u64);
    fn advance(&self, n: u64);
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

struct LineState {
    step: String,
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

/// Plain lines like `embed: 12000/200000 rows (6.0%), 95.3 rows/s, ETA 32m51s`, at most one per
/// `every`, plus one at the end; each goes to `sink` (stderr, or a Python logger).
pub struct LogLines {
    sink: Box<dyn Fn(&str) + Send + Sync>,
    every: Duration,
    state: Mutex<Option<LineState>>,
}

impl LogLines {
    pub fn new(every: Duration, sink: Box<dyn Fn(&str) + Send + Sync>) -> LogLines {
        LogLines { sink, every, state: Mutex::new(None) }
    }
}

pub fn format_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn line(st: &LineState, final_line: bool) -> String {
    let secs = st.started.elapsed().as_secs_f64().max(1e-9);
    let rate = st.done as f64 / secs;
    let pct = if st.total > 0 { 100.0 * st.done as f64 / st.total as f64 } else { 100.0 };
    if final_line {
        format!("{}: {}/{} rows done in {}, {:.1} rows/s", st.step, st.done, st.total, format_duration(secs), rate)
    } else {
        let eta =
            if rate > 0.0 { format_duration((st.total.saturating_sub(st.done)) as f64 / rate) } else { "?".into() };
        format!("{}: {}/{} rows ({pct:.1}%), {rate:.1} rows/s, ETA {eta}", st.step, st.done, st.total)
    }
}

impl Progress for LogLines {
    fn start(&self, step: &str, total: u64) {
        let now = Instant::now();
        *self.state.lock() = Some(LineState { step: step.into(), total, done: 0, started: now, last: now });
    }
    fn advance(&self, n: u64) {
        let mut guard = self.state.lock();
        if let Some(st) = guard.as_mut() {
            st.done += n;
            if st.last.elapsed() >= self.every {
                st.last = Instant::now();
                (self.sink)(&line(st, false));
            }
        }
    }
    fn finish(&self) {
        if let Some(st) = self.state.lock().take() {
            (self.sink)(&line(&st, true));
        }
    }
}

/// A terminal progress bar (indicatif): rows, rate, ETA.
pub struct Bar {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Bar {
    pub fn new() -> Bar {
        Bar { bar: Mutex::new(None) }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

impl Progress for Bar {
    fn start(&self, step: &str, total: u64) {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos}/{len} rows {per_sec:>12} ETA {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_prefix(step.to_string());
        *self.bar.lock() = Some(bar);
    }
    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().as_ref() {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().take() {
            b.finish();
        }
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn log_lines_report_counts_rate_and_final_total() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let l2 = lines.clone();
        let p = LogLines::new(Duration::ZERO, Box::new(move |s| l2.lock().push(s.to_string())));
        p.start("embed", 10);
        p.advance(4);
        p.advance(6);
        p.finish();
        let lines = lines.lock();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("embed: 4/10 rows (40.0%)") && lines[0].contains("rows/s, ETA"), "{}", lines[0]);
        assert!(lines[2].starts_with("embed: 10/10 rows done in"), "{}", lines[2]);
        assert!(peak_rss_mib() > 0.0);
    }
}
