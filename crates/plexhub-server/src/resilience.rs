//! Circuit breakers per replica and the gateway's retry budget. A breaker opens after
//! [`FAILURES_TO_OPEN`] consecutive failures, stays open [`OPEN_FOR_MS`], then lets one probe
//! through (half-open): its success closes the breaker, its failure reopens it. So a replica that
//! comes back is used again by itself, without an operator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

use quick_cache::sync::Cache;

/// Consecutive failures that open a breaker.
pub const FAILURES_TO_OPEN: u32 = 5;
/// How long an open breaker refuses calls before letting a probe through.
pub const OPEN_FOR_MS: i64 = 10_000;
/// Breakers remembered at most (least used ones are forgotten, i.e. closed).
const CAPACITY: usize = 100_000;

/// What recording an outcome did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing worth telling.
    None,
    /// The breaker just opened.
    Opened,
    /// The breaker just closed again (a probe succeeded).
    Closed,
}

/// One replica's breaker.
#[derive(Debug, Default)]
pub struct Breaker {
    failures: AtomicU32,
    /// 0 when closed; else when calls may probe again (epoch ms).
    open_until_ms: AtomicI64,
    probing: AtomicBool,
}

impl Breaker {
    /// Whether a call may go to the replica now. When the breaker is open and its time is up,
    /// exactly one caller gets `true` (the probe) until the probe's outcome is recorded.
    pub fn allows(&self, now_ms: i64) -> bool {
        let open_until = self.open_until_ms.load(Ordering::Acquire);
        if open_until == 0 {
            return true;
        }
        now_ms >= open_until
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Records a call's outcome.
    pub fn record(&self, success: bool, now_ms: i64) -> Transition {
        let was_open = self.open_until_ms.load(Ordering::Acquire) != 0;
        if success {
            self.failures.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            if was_open {
                self.open_until_ms.store(0, Ordering::Release);
                return Transition::Closed;
            }
            return Transition::None;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if was_open {
            // A failed probe: open again for another period.
            self.open_until_ms
                .store(now_ms + OPEN_FOR_MS, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            return Transition::None;
        }
        if failures >= FAILURES_TO_OPEN {
            self.open_until_ms
                .store(now_ms + OPEN_FOR_MS, Ordering::Release);
            return Transition::Opened;
        }
        Transition::None
    }
}

impl Breaker {
    /// Takes over another hub's verdict: open until `open_until_ms` (kept if this breaker is
    /// already open longer), or closed (`0`).
    pub fn adopt(&self, open_until_ms: i64) {
        if open_until_ms == 0 {
            self.failures.store(0, Ordering::Release);
            self.open_until_ms.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        } else {
            self.open_until_ms
                .fetch_max(open_until_ms, Ordering::AcqRel);
        }
    }

    /// When calls may probe again (epoch ms), or 0 when closed.
    pub fn open_until_ms(&self) -> i64 {
        self.open_until_ms.load(Ordering::Acquire)
    }
}

/// The breakers of every replica this hub calls, by replica key.
pub struct Breakers {
    by_replica: Cache<String, Arc<Breaker>>,
}

impl Breakers {
    /// No breaker yet: every replica is closed.
    pub fn new() -> Self {
        Self {
            by_replica: Cache::new(CAPACITY),
        }
    }

    /// Until when (epoch ms) the replica's breaker is open, `None` while it is closed (or
    /// this hub never called the replica).
    pub fn open_until_ms(&self, replica: &str) -> Option<i64> {
        self.by_replica
            .get(replica)
            .map(|breaker| breaker.open_until_ms())
            .filter(|until| *until != 0)
    }

    /// The breaker of a replica, created closed.
    pub fn of(&self, replica: &str) -> Arc<Breaker> {
        if let Some(breaker) = self.by_replica.get(replica) {
            return breaker;
        }
        let breaker = Arc::new(Breaker::default());
        self.by_replica.insert(replica.to_owned(), breaker.clone());
        breaker
    }
}

/// Retries allowed as a share of calls: every call deposits [`DEPOSIT`] tokens, a retry costs
/// [`RETRY_COST`], at most [`BUDGET_CAP`] saved: retries stay under 20 % of calls, so a failing
/// plugin never gets more than a fifth more load from the hub.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicI64,
}

/// Tokens a call deposits.
const DEPOSIT: i64 = 1;
/// Tokens a retry costs.
const RETRY_COST: i64 = 5;
/// Most tokens saved.
const BUDGET_CAP: i64 = 100;

impl RetryBudget {
    /// A budget that allows a few retries right away.
    pub fn new() -> Self {
        Self {
            tokens: AtomicI64::new(RETRY_COST * 4),
        }
    }

    /// A call was made.
    pub fn deposit(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some((tokens + DEPOSIT).min(BUDGET_CAP))
            });
    }

    /// Takes the cost of one retry, if the budget has it.
    pub fn withdraw(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                (tokens >= RETRY_COST).then_some(tokens - RETRY_COST)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_after_consecutive_failures_and_a_probe_closes_it() {
        let breaker = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert_eq!(breaker.record(false, 0), Transition::None);
        }
        assert_eq!(
            breaker.record(true, 0),
            Transition::None,
            "a success resets"
        );
        for _ in 0..FAILURES_TO_OPEN - 1 {
            breaker.record(false, 0);
        }
        assert_eq!(breaker.record(false, 1_000), Transition::Opened);
        assert!(!breaker.allows(1_000 + OPEN_FOR_MS - 1));
        assert!(breaker.allows(1_000 + OPEN_FOR_MS), "one probe");
        assert!(!breaker.allows(1_000 + OPEN_FOR_MS), "only one");
        assert_eq!(breaker.record(false, 20_000), Transition::None);
        assert!(!breaker.allows(20_000 + OPEN_FOR_MS - 1), "reopened");
        assert!(breaker.allows(20_000 + OPEN_FOR_MS));
        assert_eq!(breaker.record(true, 40_000), Transition::Closed);
        assert!(breaker.allows(40_000));
    }

    #[test]
    fn a_breaker_adopts_another_hubs_verdict() {
        let breaker = Breaker::default();
        breaker.adopt(5_000);
        assert!(!breaker.allows(4_999));
        assert!(breaker.allows(5_000), "then one probe");
        breaker.adopt(0);
        assert!(breaker.allows(5_000) && breaker.allows(5_000), "closed");
    }

    #[test]
    fn retries_stay_within_a_fifth_of_calls() {
        let budget = RetryBudget::new();
        let mut retries = 0;
        for _ in 0..1_000 {
            budget.deposit();
            if budget.withdraw() {
                retries += 1;
            }
        }
        assert!(retries <= 1_000 / 5 + 4, "{retries} retries for 1000 calls");
        assert!(retries >= 1_000 / 5 - 1, "{retries}");
    }
}
