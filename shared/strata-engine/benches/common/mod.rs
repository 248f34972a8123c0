//! What the engine's benchmark tables share: a table keyed by a string
//! partition key `pk`, and a put of one of its items.

use strata_engine::*;

/// Table `name`: partition key `pk` (S), no sort key, `partitions` of them.
pub fn spec(name: &str, partitions: u32) -> TableSpec {
    TableSpec {
        name: name.into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: None,
        },
        partitions: Some(partitions),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::json!({}),
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

/// A put of the item `pk = name` with `attrs`.
pub fn put(name: String, attrs: Vec<(&str, Value)>) -> WriteRequest {
    let mut item = Item::from([("pk".to_string(), Value::S(name.clone()))]);
    item.extend(attrs.into_iter().map(|(k, v)| (k.to_string(), v)));
    let key = ItemKey {
        hash: KeyValue::S(name),
        range: None,
    };
    WriteRequest::single(WriteOp::put(key, item))
}
