//! Faults are counted, never fatal: small fake servers on loopback that answer errors, drop
//! connections or go silent, and the bench must finish on time with the right counts.
//!
//! The fakes only understand `get` lines (the runs use `--ratio 0:1`), which is all they need.
//! Each runs in threads bounded by a deadline and stops when its guard drops.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::bench_args;
use ringcache_bench::{run_blocking, Args};

#[derive(Clone, Copy)]
enum Behaviour {
    /// `SERVER_ERROR busy` to every get.
    ServerError,
    /// Answers `END` to `n` gets, then closes the connection.
    CloseAfter(usize),
    /// Reads and never answers.
    Silent,
    /// Answers `END`, but waits this long before answering the n-th get of each connection.
    StallAt(usize, Duration),
}

struct Fake {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, how: Behaviour, stop: Arc<AtomicBool>, deadline: Instant) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut rd = BufReader::new(conn);
    let mut answered = 0usize;
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        line.clear();
        match rd.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => continue, // read timeout: check the stop flag again
        }
        let reply: &[u8] = match how {
            Behaviour::ServerError => b"SERVER_ERROR busy\r\n",
            Behaviour::CloseAfter(n) if answered >= n => return,
            Behaviour::CloseAfter(_) => b"END\r\n",
            Behaviour::Silent => continue,
            Behaviour::StallAt(n, pause) => {
                if answered == n {
                    std::thread::sleep(pause);
                }
                b"END\r\n"
            }
        };
        if out.write_all(reply).is_err() {
            return;
        }
        answered += 1;
    }
}

fn fake(how: Behaviour) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    let flag = Arc::clone(&flag);
                    std::thread::spawn(move || serve(conn, how, flag, deadline));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Fake { addr, stop }
}

fn args(addr: &str, extra: &[&str]) -> Args {
    let connections: &[&str] = if extra.contains(&"--connections") {
        &[]
    } else {
        &["--connections", "2"]
    };
    let mut base = vec!["--threads", "1", "--ratio", "0:1"];
    base.extend_from_slice(connections);
    bench_args(addr, &base, extra)
}

#[test]
fn error_replies_are_counted_and_the_run_goes_on() {
    let f = fake(Behaviour::ServerError);
    let report = run_blocking(&args(&f.addr, &["--duration", "0.3", "--pipeline", "4"]))
        .expect("a run full of errors still completes");
    let c = report.runs[0].counts;
    assert!(c.ops > 0);
    assert_eq!(c.errors, c.ops, "every reply was an error");
    assert_eq!(c.failed, 0);
    assert_eq!(report.runs[0].errors, c.ops);
}

#[test]
fn dropped_connections_fail_their_ops_and_reconnect() {
    let f = fake(Behaviour::CloseAfter(5));
    let report = run_blocking(&args(&f.addr, &["--duration", "0.5"])).expect("run completes");
    let r = &report.runs[0];
    assert!(r.counts.ops >= 10, "answered ops: {:?}", r.counts);
    assert!(
        r.counts.failed > 0,
        "the get sent to a closing server failed"
    );
    assert!(r.counts.reconnects > 0, "connections were made again");
    assert_eq!(r.hit_ratio, Some(0.0));
    assert!(r.first_error.is_some());
}

#[test]
fn a_silent_server_times_out_and_the_run_still_ends() {
    let f = fake(Behaviour::Silent);
    let started = Instant::now();
    let report = run_blocking(&args(
        &f.addr,
        &["--duration", "0.3", "--timeout", "0.2", "--pipeline", "3"],
    ))
    .expect("run completes");
    let r = &report.runs[0];
    assert_eq!(r.counts.ops, 0);
    assert!(
        r.counts.failed >= 6,
        "2 connections x 3 in flight: {:?}",
        r.counts
    );
    // Bounded: duration + timeout + a reconnect, far below this generous cap.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn unreachable_target_is_an_error_not_a_hang() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let addr = format!("127.0.0.1:{port}");
    assert!(run_blocking(&args(&addr, &["--duration", "0.2"])).is_err());
}

#[test]
fn open_loop_counts_the_wait_of_ops_queued_behind_a_stall() {
    // One connection, one op in flight, an op due every 5 ms; the server stalls 300 ms on the
    // 20th op. The ~60 ops due during the stall cannot leave until it ends; timed from their
    // intended send time they wait up to 300 ms, so the tail shows the stall. Timed from when
    // they actually left (coordinated omission) only one op would be slow and p90 would be tiny.
    let f = fake(Behaviour::StallAt(20, Duration::from_millis(300)));
    let report = run_blocking(&args(
        &f.addr,
        &["--connections", "1", "--rate", "200", "--duration", "1"],
    ))
    .expect("run completes");
    let r = &report.runs[0];
    assert_eq!(r.counts.failed, 0, "{:?}", r.first_error);
    assert!((199..=201).contains(&r.counts.ops), "ops {}", r.counts.ops);
    assert!(r.latency_us.max >= 250_000, "max {}us", r.latency_us.max);
    assert!(
        r.latency_us.p90 >= 50_000,
        "p90 {}us: queued ops' wait not counted",
        r.latency_us.p90
    );
}
