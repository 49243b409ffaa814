//! Store throughput: durable commits/s with one record per commit, versus records/s when 64
//! concurrent submitters share commits through the writer thread (group commit).
//!
//! `cargo bench --bench store`; figures and caveats in `docs/store.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use as4gw::store::{MessageStore, NewOutbound, Payload, SqliteStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use time::OffsetDateTime;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A record of about 1 KiB (one 1 KiB property), like the comparison in rust-stack.md §1.8.
fn record() -> NewOutbound {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    NewOutbound {
        message_id: format!("bench-{n}@as4gw"),
        conversation_id: format!("conv-{}", n % 100),
        pmode_id: "oots-request".into(),
        properties: vec![("blob".into(), "x".repeat(1024))],
        ..Default::default()
    }
}

async fn run_submitters(
    store: &SqliteStore,
    total: u64,
    submitters: u64,
    spool_payload: bool,
) -> Duration {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..submitters {
        let share = total / submitters + u64::from(k < total % submitters);
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..share {
                let mut m = record();
                if spool_payload {
                    let file = store
                        .spool()
                        .write_bytes(&[7u8; 1024])
                        .await
                        .expect("spool");
                    m.properties.clear();
                    m.payloads = vec![Payload {
                        part_id: "cid:p".into(),
                        mime_type: "application/xml".into(),
                        file,
                    }];
                }
                store
                    .submit(OffsetDateTime::UNIX_EPOCH, m)
                    .await
                    .expect("submit");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("submitter");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(SqliteStore::open(dir.path())).expect("open");

    let mut g = c.benchmark_group("store");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(1));
    g.bench_function("submit/1 record per commit", |b| {
        b.iter_custom(|iters| rt.block_on(run_submitters(&store, iters, 1, false)))
    });
    let before = store.writer_stats();
    g.bench_function("submit/64 submitters, group commit", |b| {
        b.iter_custom(|iters| rt.block_on(run_submitters(&store, iters, 64, false)))
    });
    let after = store.writer_stats();
    g.bench_function("submit+1 KiB spooled payload/64 submitters", |b| {
        b.iter_custom(|iters| rt.block_on(run_submitters(&store, iters, 64, true)))
    });
    g.finish();
    let jobs = after.jobs - before.jobs;
    let commits = (after.commits - before.commits).max(1);
    eprintln!(
        "group commit: {jobs} records in {commits} commits = {:.1} records/commit (largest batch {})",
        jobs as f64 / commits as f64,
        after.largest_batch
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
