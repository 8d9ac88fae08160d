//! Small concurrency helpers every layer uses: task ownership and mutex locking.

use std::sync::{Mutex, MutexGuard};

use tokio::task::JoinHandle;

/// Aborts a task when dropped: a task's owner stops it by letting go.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Locks a std mutex, recovering from poisoning. Every critical section in gattway
/// leaves its data consistent at each statement (no multi-step invariants are held
/// across a panic point), so the data is valid even after a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
