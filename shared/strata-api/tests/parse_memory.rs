//! The parse budget's weights are upper bounds: for bodies shaped the way a
//! hostile client would shape them (and an ordinary one), the peak memory of
//! parsing the body and building its items, counted by this test's
//! allocator, is at most what `parse_cost` charges, and not far below it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use serde_json::Value as Json;
use strata_api::json::item_from_json;
use strata_api::parse_budget::parse_cost;

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// What an allocation of `size` takes from malloc (glibc: 8 bytes of
/// header, 16-byte granules, 32 bytes at least).
fn footprint(size: usize) -> usize {
    (size + 8).div_ceil(16).max(2) * 16
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let f = footprint(l.size());
        let now = NOW.fetch_add(f, Relaxed) + f;
        PEAK.fetch_max(now, Relaxed);
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(footprint(l.size()), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Peak bytes allocated while `body` is parsed and its items built.
fn measured(body: &[u8]) -> usize {
    let base = NOW.load(Relaxed);
    PEAK.store(base, Relaxed);
    let tree: Json = serde_json::from_slice(body).unwrap();
    let mut items = Vec::new();
    let mut stack = vec![&tree];
    while let Some(v) = stack.pop() {
        match v {
            Json::Object(m) => {
                if let Some(item) = m.get("Item") {
                    items.push(item_from_json(item).unwrap());
                }
                stack.extend(m.values());
            }
            Json::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    let peak = PEAK.load(Relaxed) - base;
    drop((items, tree));
    peak
}

fn put(item: String) -> Vec<u8> {
    format!(r#"{{"TableName":"t","Item":{{"pk":{{"S":"k"}},{item}}}}}"#).into_bytes()
}

fn list(n: usize, element: &str) -> String {
    format!(r#""a":{{"L":[{}]}}"#, vec![element; n].join(","))
}

#[test]
fn the_estimate_bounds_what_a_parse_holds() {
    let n = 50_000;
    let big = "x".repeat(1 << 20);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty lists", put(list(n, r#"{"L":[]}"#))),
        ("nulls", put(list(n, r#"{"NULL":true}"#))),
        ("maps of one", put(list(n, r#"{"M":{"a":{"NULL":true}}}"#))),
        ("empty maps", put(list(n, r#"{"M":{}}"#))),
        ("numbers", put(list(n, r#"{"N":"1"}"#))),
        (
            "a string set",
            put(format!(
                r#""a":{{"SS":[{}]}}"#,
                (0..n)
                    .map(|i| format!("\"{i}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ),
        (
            "many attributes",
            put((0..n)
                .map(|i| format!(r#""a{i}":{{"N":"1"}}"#))
                .collect::<Vec<_>>()
                .join(",")),
        ),
        ("a long string", put(format!(r#""a":{{"S":"{big}"}}"#))),
        (
            "a batch",
            format!(
                r#"{{"RequestItems":{{"t":[{}]}}}}"#,
                vec![r#"{"PutRequest":{"Item":{"pk":{"S":"k"},"v":{"S":"some text"}}}}"#; 25]
                    .join(",")
            )
            .into_bytes(),
        ),
        ("small", put(r#""v":{"S":"hello"}"#.into())),
        // Outside items, just past a power of two (vectors and maps grow by
        // doubling): names, numbers, strings.
        (
            "a flat map",
            format!(
                r#"{{"TableName":"t","ExpressionAttributeNames":{{{}}}}}"#,
                (0..(1 << 15) + 1)
                    .map(|i| format!(r##""#n{i}":"a""##))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into_bytes(),
        ),
        (
            "numbers",
            format!(r#"{{"x":[{}]}}"#, vec!["1"; (1 << 16) + 1].join(",")).into_bytes(),
        ),
        (
            "strings",
            format!(r#"{{"x":[{}]}}"#, vec!["\"a\""; (1 << 16) + 1].join(",")).into_bytes(),
        ),
        (
            "empty objects",
            format!(r#"{{"x":[{}]}}"#, vec!["{}"; (1 << 16) + 1].join(",")).into_bytes(),
        ),
    ];
    for (name, body) in bodies {
        let estimate = parse_cost(&body).unwrap().bytes() as usize;
        let actual = measured(&body);
        println!(
            "{name}: {} body bytes, {actual} held, {estimate} charged",
            body.len()
        );
        assert!(
            actual <= estimate,
            "{name}: {actual} held > {estimate} charged"
        );
        assert!(
            estimate <= 8 * actual.max(1024),
            "{name}: {estimate} charged for {actual} held"
        );
    }
}
