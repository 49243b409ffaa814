//! Retention: turns the P-Modes' `[retention]` tables into the store's purge rules and runs the
//! purge in the background (issue 10 point 4; `docs/lifecycle.md`).
//!
//! The store does the deleting in small batches (one short write transaction each), so a purge
//! never holds submissions or receipts back for long; this task only decides *when* and with
//! *which* rules. The rules are taken from the P-Mode set in force at every run, so a reload
//! changes retention without a restart.

use std::sync::Arc;
use std::time::Duration;

use crate::pmode::set::PModeSet;
use crate::pmode::Registry;
use crate::store::{MessageStore, PurgeOptions, PurgeReport, RetentionRule};

use super::clock::Clock;

/// One rule per P-Mode that has a `[retention]` limit.
pub fn rules_of(set: &PModeSet) -> Vec<RetentionRule> {
    set.pmodes()
        .iter()
        .filter(|p| p.retention.payload_days.is_some() || p.retention.metadata_days.is_some())
        .map(|p| RetentionRule {
            pmode_id: p.id.clone(),
            payload_days: p.retention.payload_days,
            metadata_days: p.retention.metadata_days,
        })
        .collect()
}

/// One purge with the rules of `set` at `now`.
pub async fn purge_once(
    store: &dyn MessageStore,
    set: &PModeSet,
    now: time::OffsetDateTime,
    opts: PurgeOptions,
) -> crate::store::Result<PurgeReport> {
    store.purge(now, rules_of(set), opts).await
}

/// Runs a purge every `interval` (first one after one interval, so start-up is not slowed)
/// until `stop` turns true. Failures are logged and retried at the next tick: retention is
/// housekeeping, never a reason to stop traffic.
pub fn spawn_purger(
    store: Arc<dyn MessageStore>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        return;
                    }
                    continue;
                }
            }
            let set = registry.current();
            let now = clock.now();
            match purge_once(store.as_ref(), &set, now, PurgeOptions::default()).await {
                Ok(r) if r.payload_messages + r.messages > 0 => tracing::info!(
                    payload_messages = r.payload_messages,
                    messages = r.messages,
                    files = r.files,
                    bytes = r.bytes,
                    batches = r.batches,
                    "retention purge"
                ),
                Ok(_) => tracing::debug!("retention purge: nothing due"),
                Err(e) => {
                    tracing::warn!(error = %e, "retention purge failed; retried at the next interval")
                }
            }
        }
    })
}
