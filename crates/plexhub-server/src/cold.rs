//! Keeping a hot path's rare waits out of its code.
//!
//! A gateway call runs through more code than the instruction cache holds, so every cache line
//! of its functions that serves only a rare case (a cache miss's database load, a retry's pause,
//! a connection to open) costs the common case a miss too. An awaited future's poll is usually
//! inlined into the awaiting one, rare or not; [`wait`] stops that.

use std::future::Future;
use std::pin::Pin;

/// `future` boxed behind a trait object by a function that is never inlined, so the awaiting
/// function holds a call through the object instead of the future's code (and a pointer
/// instead of its state). For waits off the common path only: it costs an allocation.
#[cold]
#[inline(never)]
pub fn wait<'a, T>(
    future: impl Future<Output = T> + Send + 'a,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(future)
}
