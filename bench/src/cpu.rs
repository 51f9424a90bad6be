//! Server CPU time from `/proc/PID/stat`, so a run can report ops per server CPU-second.
//!
//! On a small shared machine throughput alone mostly measures who won the cores; CPU seconds
//! spent by the server per op is the figure that compares implementations fairly. We read
//! `utime` and `stime` (fields 14 and 15, in clock ticks) of each given pid before and after the
//! measured window; threads are included because `/proc/PID/stat` sums over the thread group.

use std::fs;

use serde::Serialize;

use crate::error::{BenchError, Result};

/// User and system time of one process, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub utime: u64,
    pub stime: u64,
}

impl CpuTimes {
    /// utime + stime.
    pub fn total(&self) -> u64 {
        self.utime.saturating_add(self.stime)
    }
}

/// Parses the contents of `/proc/PID/stat`.
///
/// The second field is the command name in parentheses and may itself contain spaces and `)`,
/// so fields are counted from the *last* `)`: after it come field 3 (state), …, 14 (utime),
/// 15 (stime).
pub fn parse_stat(line: &str) -> Option<CpuTimes> {
    let close = line.rfind(')')?;
    let mut fields = line[close + 1..].split_ascii_whitespace();
    // Field 3 is at index 0 of the remainder, so field 14 is at index 11.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some(CpuTimes { utime, stime })
}

/// Reads the CPU times of `pid`.
pub fn read_pid(pid: u32) -> Result<CpuTimes> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| BenchError::Proc {
        pid,
        reason: e.to_string(),
    })?;
    parse_stat(&text).ok_or_else(|| BenchError::Proc {
        pid,
        reason: format!("unexpected format in {path}"),
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux in practice).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The CPU times of a set of processes at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuSample {
    pub per_pid: Vec<(u32, CpuTimes)>,
}

/// Reads every pid in `pids`.
pub fn sample(pids: &[u32]) -> Result<CpuSample> {
    Ok(CpuSample {
        per_pid: pids
            .iter()
            .map(|&p| read_pid(p).map(|t| (p, t)))
            .collect::<Result<_>>()?,
    })
}

/// CPU seconds the processes used between two samples (pids missing from either are skipped).
pub fn seconds_between(before: &CpuSample, after: &CpuSample, ticks_per_sec: u64) -> f64 {
    let ticks: u64 = after
        .per_pid
        .iter()
        .filter_map(|(pid, a)| {
            let (_, b) = before.per_pid.iter().find(|(p, _)| p == pid)?;
            Some(a.total().saturating_sub(b.total()))
        })
        .sum();
    ticks as f64 / ticks_per_sec.max(1) as f64
}

/// Server CPU use over a measured window, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuUsage {
    pub pids: Vec<u32>,
    /// utime + stime of all pids over the window, in seconds.
    pub seconds: f64,
    /// Completed ops per server CPU-second (`null` when no CPU time was measurable).
    pub ops_per_cpu_sec: Option<f64>,
}

impl CpuUsage {
    /// The usage between two samples, for `ops` completed ops.
    pub fn between(before: &CpuSample, after: &CpuSample, ops: u64) -> CpuUsage {
        let seconds = seconds_between(before, after, ticks_per_second());
        CpuUsage {
            pids: after.per_pid.iter().map(|(p, _)| *p).collect(),
            seconds,
            ops_per_cpu_sec: (seconds > 0.0).then(|| ops as f64 / seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line from a memcached process (fields 14/15 = 1234/567).
    const SAMPLE: &str = "4242 (memcached) S 1 4242 4242 0 -1 4194624 1021 0 0 0 1234 567 0 0 \
                          20 0 10 0 1234567 421011456 1200 18446744073709551615 1 1 0 0 0 0 0 \
                          4098 1 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";

    #[test]
    fn parses_utime_and_stime() {
        assert_eq!(
            parse_stat(SAMPLE),
            Some(CpuTimes {
                utime: 1234,
                stime: 567
            })
        );
    }

    #[test]
    fn command_names_with_spaces_and_parens() {
        let line = "77 (my (weird) proc) R 1 77 77 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0";
        assert_eq!(
            parse_stat(line),
            Some(CpuTimes {
                utime: 10,
                stime: 20
            })
        );
    }

    #[test]
    fn rejects_truncated_or_garbage() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 20"), None);
    }

    #[test]
    fn reads_own_process_and_differences() {
        let me = std::process::id();
        let a = sample(&[me]).expect("own stat");
        // Burn a little CPU so the difference is non-negative and usually positive.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = sample(&[me]).expect("own stat");
        assert!(b.per_pid[0].1.total() >= a.per_pid[0].1.total());
        assert!(read_pid(u32::MAX).is_err());
    }

    #[test]
    fn seconds_and_ops_per_cpu() {
        let before = CpuSample {
            per_pid: vec![
                (
                    1,
                    CpuTimes {
                        utime: 100,
                        stime: 50,
                    },
                ),
                (
                    2,
                    CpuTimes {
                        utime: 10,
                        stime: 0,
                    },
                ),
            ],
        };
        let after = CpuSample {
            per_pid: vec![
                (
                    1,
                    CpuTimes {
                        utime: 250,
                        stime: 100,
                    },
                ),
                (
                    2,
                    CpuTimes {
                        utime: 60,
                        stime: 0,
                    },
                ),
            ],
        };
        // (350-150) + (60-10) = 250 ticks = 2.5 s at 100 Hz.
        assert!((seconds_between(&before, &after, 100) - 2.5).abs() < 1e-9);
        assert_eq!(seconds_between(&after, &after, 100), 0.0);
    }
}
