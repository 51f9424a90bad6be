//! `ringcache-bench`: load generator and comparison harness (built out in the benchmark issue).

fn main() {
    eprintln!("ringcache-bench: not built yet");
    std::process::exit(2);
}
