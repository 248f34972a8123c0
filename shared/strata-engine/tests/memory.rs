//! Compaction memory is bounded: a partition 20 times the configured
//! compaction budget is compacted while the heap grows by no more than the
//! budget. Its own test binary, so the counting allocator sees nothing else.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_engine::*;

use common::*;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The heap's growth over its level at the start, at its highest, while
/// `f` runs.
async fn peak_growth<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_memory_bounded() {
    for b in backends().into_iter().filter(|b| b.name != "memory") {
        // The memory store keeps what is written on the heap: not this test.
        let store = b.store();
        let config = EngineConfig {
            default_partitions: 1,
            block_size: 4 << 10,
            sst_bytes: 128 << 10,
            read_ahead_bytes: 32 << 10,
            max_runs: 4,
            // One level below the flushes: every merge rewrites all of it,
            // so the last one streams the whole partition.
            level_base_bytes: 1 << 40,
            cache_bytes: 256 << 10,
            ..test_config()
        };
        let budget = config.compaction_memory(config.max_runs + 1);
        let e = engine(&store, config.clone()).await;
        e.create_table(spec("big")).await.unwrap();
        let target = 20 * budget;
        let value = Value::S("v".repeat(1000));
        let (mut written, mut sk) = (0, 0);
        let batch_bytes = target / 16;
        let mut last_growth = 0;
        while written < target {
            let mut batch = 0;
            while batch < batch_bytes {
                let ops: Vec<WriteOp> = (0..25)
                    .map(|_| {
                        sk += 1;
                        let it = item(&format!("p{}", sk % 97), sk, &[("v", value.clone())]);
                        WriteOp::put(key(&format!("p{}", sk % 97), sk), it)
                    })
                    .collect();
                e.write("big", WriteRequest { ops, token: None })
                    .await
                    .expect("batch");
                batch += 25 * 1050;
            }
            written += batch;
            let (out, growth) = peak_growth(e.compact("big")).await;
            out.expect("compaction");
            last_growth = growth;
            // The log tail flushed is held by the view anyway; the bound is
            // on what compaction adds beyond a copy of it.
            assert!(
                growth <= budget + 2 * batch_bytes,
                "[{}] compaction grew the heap by {growth} bytes; budget {budget} + tail {batch_bytes}",
                b.name
            );
        }
        let levels = e.partition_levels("big").await.unwrap();
        let stored: u64 = levels[0].iter().map(|r| r.bytes()).sum();
        assert!(
            stored as usize >= 15 * budget,
            "[{}] partition only {stored} bytes",
            b.name
        );
        // Merges with next to no tail: the whole partition streamed through
        // within the budget itself.
        let mut merge_growth = 0;
        for _ in 0..config.max_runs {
            e.write(
                "big",
                WriteRequest::single(WriteOp::put(key("p0", -1), item("p0", -1, &[]))),
            )
            .await
            .unwrap();
            let (out, growth) = peak_growth(e.compact("big")).await;
            out.unwrap();
            merge_growth = merge_growth.max(growth);
        }
        assert!(
            merge_growth <= budget,
            "[{}] a merge of the whole partition grew the heap by {merge_growth} > budget {budget}",
            b.name
        );
        last_growth = last_growth.max(merge_growth);
        eprintln!(
            "[{}] partition {stored} bytes, budget {budget}, largest growth {last_growth}",
            b.name
        );
        assert_eq!(scan_all(&e, "big", 1000).await.len(), sk as usize + 1);
    }
}
