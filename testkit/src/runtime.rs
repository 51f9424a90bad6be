//! Async test bodies: each on its own runtime, one at a time within a test binary (each starts
//! several processes or is timing-sensitive, and the machine may have two cores).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` on a fresh two-worker runtime, holding the binary-wide test lock (a panicking
/// test poisons nothing: the lock is taken back).
pub fn run<F: std::future::Future<Output = ()>>(body: F) {
    let _serial: MutexGuard<'_, ()> = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(body);
    rt.shutdown_timeout(Duration::from_secs(2));
}

/// Runs blocking socket work off the runtime's worker threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}
