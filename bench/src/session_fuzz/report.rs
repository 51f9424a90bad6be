//! The report a run prints, and its exit status.

use super::case::show_long;
use super::run::run;
use super::SessionFuzzArgs;
use crate::error::Result;

/// Runs and prints the report; the exit status is 1 when anything was found.
pub fn main(a: &SessionFuzzArgs) -> Result<bool> {
    let s = run(a)?;
    println!(
        "session-fuzz: seed {} — {} cases in {} rounds over {:.1} s, {} failures \
         ({} counted partial multi-get misses read back on retry)",
        s.seed,
        s.cases,
        s.rounds,
        s.elapsed.as_secs_f64(),
        s.findings.len(),
        s.excused
    );
    for (i, f) in s.findings.iter().enumerate() {
        println!(
            "  failure {}: {}\n    {}: {}",
            i + 1,
            f.what,
            if f.reproduced {
                "case (reproduces alone, minimized)"
            } else {
                "round (does not reproduce alone)"
            },
            show_long(&f.case)
        );
    }
    Ok(s.findings.is_empty())
}
