//! A KMS key per table, through the API over a store that routes writes by
//! table key (`strata_store::kms`, here with a memory store per key and a
//! key the "S3" refuses): the key is checked when it is given (refused:
//! ValidationException, nothing created), a table's objects go to its key's
//! client, DescribeTable names it, and a key needs SSEType KMS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde_json::{json, Value as Json};
use strata_api::Api;
use strata_engine::{Engine, EngineConfig};
use strata_store::kms::{KmsRouted, OpenWithKey, TableKeys};

mod common;
use common::call;

fn create(name: &str, sse: Json) -> Json {
    json!({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "SSESpecification": sse})
}

#[tokio::test]
async fn a_tables_key_is_checked_and_its_objects_take_it() {
    let default: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let by_key: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = Arc::default();
    let open: OpenWithKey = {
        let by_key = Arc::clone(&by_key);
        Arc::new(move |key: &str| {
            if key == "missing-key" {
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: "KMS.NotFoundException: Invalid keyId missing-key".into(),
                });
            }
            let mut m = by_key.lock().unwrap();
            Ok(Arc::clone(
                m.entry(key.to_string())
                    .or_insert_with(|| Arc::new(InMemory::new())),
            ))
        })
    };
    let keys = Arc::new(TableKeys::default());
    let store: Arc<dyn ObjectStore> = Arc::new(KmsRouted::new(
        Arc::clone(&default),
        Arc::clone(&keys),
        open,
    ));
    let opened = strata_store::OpenedStore {
        parts: vec![(Arc::clone(&store), "routed".into())],
        store,
        url: "routed".into(),
        at_rest: strata_store::AtRest::S3 {
            sse: "AES256".into(),
            kms_key_id: None,
        },
        table_keys: Some(keys),
    };
    let engine = Arc::new(Engine::with_opened_unchecked(
        opened,
        EngineConfig::default(),
    ));
    let api = Api::new(engine, "us-east-1");

    let kms = |key: &str| json!({"Enabled": true, "SSEType": "KMS", "KMSMasterKeyId": key});
    let (s, b) = call(&api, "CreateTable", create("refused", kms("missing-key"))).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("missing-key"),
        "{b}"
    );
    let (s, _) = call(&api, "DescribeTable", json!({"TableName": "refused"})).await;
    assert_eq!(s, 400, "nothing was created");
    let (s, b) = call(
        &api,
        "CreateTable",
        create(
            "typed",
            json!({"Enabled": true, "SSEType": "AES256", "KMSMasterKeyId": "k"}),
        ),
    )
    .await;
    assert_eq!(s, 400, "{b}");

    let (s, b) = call(&api, "CreateTable", create("secret", kms("good-key"))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        &api,
        "PutItem",
        json!({"TableName": "secret", "Item": {"k": {"S": "a"}}}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = call(&api, "DescribeTable", json!({"TableName": "secret"})).await;
    assert_eq!(
        b["Table"]["SSEDescription"]["KMSMasterKeyArn"],
        "arn:aws:kms:us-east-1:000000000000:key/good-key"
    );
    // The item's log segment is in the key's store, not the default one.
    let keyed = Arc::clone(by_key.lock().unwrap().get("good-key").unwrap());
    let names = |s: Arc<dyn ObjectStore>| async move {
        use futures::TryStreamExt;
        s.list(Some(&"tables/secret".into()))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    };
    let in_key = names(Arc::clone(&keyed)).await;
    assert!(in_key.iter().any(|n| n.ends_with(".seg")), "{in_key:?}");
    let in_default = names(Arc::clone(&default)).await;
    assert!(
        in_default.iter().all(|n| n.contains("/schema/")),
        "{in_default:?}"
    );
}
