//! Time to live: the expiry sweep deletes exactly the expired items, as
//! conditional deletes marked as the service's, reads only the SSTs that
//! can hold an item due, and takes TTL changes up.

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_engine::ttl::TtlSetting;
use strata_engine::*;

use common::*;

const NOW: u64 = 1_900_000_000;

fn n_str(s: &str) -> Value {
    Value::N(number::Number::parse(s).unwrap())
}

async fn enable_ttl(e: &Engine, table: &str, settled: bool) {
    e.update_table(table, |d| {
        if !d.meta.is_object() {
            d.meta = serde_json::json!({});
        }
        TtlSetting {
            enabled: true,
            attribute_name: "exp".into(),
            changed_ms: 1,
            settled,
        }
        .store(d.meta.as_object_mut().unwrap());
        Ok(())
    })
    .await
    .unwrap();
}

/// Items 0..40 of partition key `pk`: every fourth expired (one second
/// ago), every fourth later, the rest a string, ancient, or nothing.
fn items(pk: &str) -> Vec<(Item, bool)> {
    (0..40)
        .map(|i| {
            let (exp, expired) = match i % 8 {
                0 | 4 => (Some(n_str(&(NOW - 1).to_string())), true),
                1 => (Some(n_str(&format!("{}.5", NOW - 100))), true),
                2 | 6 => (Some(n_str(&(NOW + 3600).to_string())), false),
                3 => (Some(Value::S((NOW - 1).to_string())), false),
                5 => (Some(n_str("1")), false),
                _ => (None, false),
            };
            let attrs: Vec<(&str, Value)> = exp.into_iter().map(|v| ("exp", v)).collect();
            (item(pk, i, &attrs), expired)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_deletes_exactly_the_expired_items() {
    for b in backends() {
        let store = b.store();
        let e = engine(&store, test_config()).await;
        e.create_table(spec("ttl")).await.unwrap();
        enable_ttl(&e, "ttl", true).await;
        // Half in SSTs, half in the log tail.
        let all: Vec<(Item, bool)> = items("a").into_iter().chain(items("b")).collect();
        for (it, _) in &all[..40] {
            put(&e, "ttl", it.clone()).await;
        }
        e.compact("ttl").await.unwrap();
        for (it, _) in &all[40..] {
            put(&e, "ttl", it.clone()).await;
        }
        let before_now = e.expire_at("ttl", NOW - 200).await.unwrap();
        assert_eq!(before_now.deleted, 0, "[{}] nothing is due yet", b.name);
        let r = e.expire_at("ttl", NOW).await.unwrap();
        let expect = all.iter().filter(|(_, x)| *x).count() as u64;
        assert_eq!((r.expired, r.deleted), (expect, expect), "[{}]", b.name);
        for (it, expired) in &all {
            let found = get(&e, "ttl", &item_key(it)).await;
            assert_eq!(found.is_none(), *expired, "[{}] {it:?}", b.name);
        }
        // The deletes are the service's: their mutations say so.
        let mut marked = 0;
        for part in e.partitions("ttl").await.unwrap() {
            let (_, log) = e.read_log("ttl", part, 1, 10_000).await.unwrap();
            for seg in &log.segments {
                for m in &seg.mutations {
                    assert_eq!(
                        m.expired, m.deleted,
                        "[{}] only expiries are deleted here",
                        b.name
                    );
                    marked += usize::from(m.expired);
                }
            }
        }
        assert_eq!(marked as u64, expect, "[{}]", b.name);
        let again = e.expire_at("ttl", NOW).await.unwrap();
        assert_eq!(again.deleted, 0, "[{}] nothing is deleted twice", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_given_a_later_expiry_meanwhile_is_kept() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    // The sweeper trusts its view for a long time: it reads the item as
    // expired after another instance has given it a later expiry.
    let slow = EngineConfig {
        eventual_staleness: Duration::from_secs(600),
        ..test_config()
    };
    let sweeper = engine(&store, slow).await;
    let writer = engine(&store, test_config()).await;
    sweeper.create_table(spec("race")).await.unwrap();
    enable_ttl(&sweeper, "race", true).await;
    let old = item("k", 1, &[("exp", n_str(&(NOW - 1).to_string()))]);
    put(&sweeper, "race", old.clone()).await;
    assert!(get(&sweeper, "race", &item_key(&old)).await.is_some());
    let renewed = item("k", 1, &[("exp", n_str(&(NOW + 60).to_string()))]);
    put(&writer, "race", renewed.clone()).await;
    let r = sweeper.expire_at("race", NOW).await.unwrap();
    assert_eq!(
        (r.expired, r.deleted),
        (1, 0),
        "found by the stale view, not deleted"
    );
    let strong = sweeper
        .get("race", &item_key(&old), Consistency::Strong)
        .await
        .unwrap();
    assert_eq!(strong.as_deref(), Some(&renewed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_reads_only_ssts_with_items_due() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let config = EngineConfig {
        default_partitions: 1,
        // A flush merges into the one level: the deletes fold in.
        max_runs: 1,
        ..test_config()
    };
    let e = engine(&store, config.clone()).await;
    e.create_table(spec("skip")).await.unwrap();
    enable_ttl(&e, "skip", true).await;
    for i in 0..50 {
        let exp = n_str(&(NOW + 10 * i as u64).to_string());
        put(&e, "skip", item("p", i, &[("exp", exp)])).await;
    }
    e.compact("skip").await.unwrap();
    let r = e.expire_at("skip", NOW).await.unwrap();
    assert_eq!(
        (r.ssts_read, r.deleted),
        (0, 0),
        "its first expiry is not due"
    );
    let r = e.expire_at("skip", NOW + 25).await.unwrap();
    assert_eq!((r.ssts_read, r.deleted), (1, 3));
    let r = e.expire_at("skip", NOW + 29).await.unwrap();
    assert_eq!(
        (r.ssts_read, r.ssts_skipped),
        (0, 1),
        "its next item is not due"
    );
    // Another instance (a cold Lambda) knows only what the manifest says.
    let cold = engine(&store, config.clone()).await;
    let r = cold.expire_at("skip", NOW + 31).await.unwrap();
    assert_eq!((r.ssts_read, r.expired, r.deleted), (1, 4, 1));
    e.compact("skip").await.unwrap();
    let r = engine(&store, config)
        .await
        .expire_at("skip", NOW + 31)
        .await
        .unwrap();
    assert_eq!(
        r.ssts_read, 0,
        "the new SST's first expiry is in the future"
    );
    assert_eq!(scan_all(&e, "skip", 100).await.len(), 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_change_is_taken_up_by_the_next_sweep() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let e = engine(&store, test_config()).await;
    e.create_table(spec("status")).await.unwrap();
    enable_ttl(&e, "status", false).await;
    let status = |d: TableDescriptor| TtlSetting::of(&d).unwrap().status();
    assert_eq!(
        status(e.describe_table("status").await.unwrap()),
        "ENABLING"
    );
    e.expire("status").await.unwrap();
    assert_eq!(status(e.describe_table("status").await.unwrap()), "ENABLED");
    // Disabled: nothing expires any more.
    e.update_table("status", |d| {
        let mut s = TtlSetting::of(d).unwrap();
        s.enabled = false;
        s.settled = false;
        s.changed_ms = 2;
        s.store(d.meta.as_object_mut().unwrap());
        Ok(())
    })
    .await
    .unwrap();
    put(
        &e,
        "status",
        item("p", 1, &[("exp", n_str(&(NOW - 1).to_string()))]),
    )
    .await;
    assert_eq!(
        status(e.describe_table("status").await.unwrap()),
        "DISABLING"
    );
    let r = e.expire_at("status", NOW).await.unwrap();
    assert_eq!(r.deleted, 0);
    assert_eq!(
        status(e.describe_table("status").await.unwrap()),
        "DISABLED"
    );
    assert_eq!(scan_all(&e, "status", 10).await.len(), 1);
}
