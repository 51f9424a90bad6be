//! Blaming and shrinking: the cluster put back as it was, a case replayed alone on a fresh
//! connection to see whether it breaks a check, and a failing case cut line by line while it
//! still does (bounded).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::case::run_case;
use super::target::{check_cluster, Target};
use crate::error::{BenchError, Result};
use crate::harness::{fail, Canaries, Wire};

/// Puts the canaries back and waits for them to read back; the new flush baseline.
pub(super) fn reset(t: &Target, canaries: &Canaries) -> Result<HashMap<String, u64>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = Wire::connect(&t.proxy)
            .map_err(BenchError::from)
            .and_then(|mut w| {
                canaries.store(&mut w)?;
                canaries.check(&mut w, &t.nodes).map_err(fail)
            });
        match attempt {
            Ok(()) => return Ok(t.flushes()),
            Err(e) if Instant::now() > deadline => {
                return Err(fail(format!("the cluster does not recover: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Whether `case`, alone on a fresh connection, breaks a check.
pub(super) fn fails_alone(t: &Target, canaries: &Canaries, case: &[u8]) -> Result<Option<String>> {
    let base = reset(t, canaries)?;
    let mut w = Wire::connect(&t.proxy)?;
    let (own, _) = run_case(&mut w, case, "sf");
    // Health marking, probes and re-warming run in the background: look for a while.
    let mut none: [Wire; 0] = [];
    let mut cluster = None;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(250));
        cluster = check_cluster(t, canaries, &mut None, &mut none, &base, &mut 0).err();
        if cluster.is_some() {
            break;
        }
    }
    Ok(match (own, cluster) {
        (None, None) => None,
        (a, b) => Some([a, b].into_iter().flatten().collect::<Vec<_>>().join("; ")),
    })
}

/// Shrinks `case` line by line while it still fails alone (bounded).
pub(super) fn minimize(t: &Target, canaries: &Canaries, case: &[u8], budget: Duration) -> Vec<u8> {
    let end = Instant::now() + budget;
    let mut best = case.to_vec();
    let mut i = 0;
    while Instant::now() < end {
        let lines: Vec<&[u8]> = best.split_inclusive(|&b| b == b'\n').collect();
        if i >= lines.len() || lines.len() < 2 {
            break;
        }
        let shorter: Vec<u8> = lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        match fails_alone(t, canaries, &shorter) {
            Ok(Some(_)) => best = shorter,
            _ => i += 1,
        }
    }
    best
}
