//! aws-sdk-dynamodb against a running Strata server, unchanged: the code a
//! Rust user already has for DynamoDB.

use std::collections::HashMap;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeValue as AV, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use aws_sdk_dynamodb::Client;

async fn create(c: &Client, name: &str) {
    strata_sdk_tests::create_table(c, name).await;
    c.wait_until_table_exists()
        .table_name(name)
        .wait(std::time::Duration::from_secs(10))
        .await
        .expect("table exists");
}

fn key(pk: &str, sk: i64) -> HashMap<String, AV> {
    HashMap::from([
        ("pk".to_string(), AV::S(pk.into())),
        ("sk".to_string(), AV::N(sk.to_string())),
    ])
}

async fn exercise(c: &Client, store: &str) {
    let t = "sdk_items";
    create(c, t).await;

    // Put, conditional put, get.
    let mut item = key("u", 1);
    item.insert("n".into(), AV::N("10".into()));
    item.insert("tags".into(), AV::Ss(vec!["a".into()]));
    item.insert("blob".into(), AV::B(vec![0u8, 255].into()));
    c.put_item()
        .table_name(t)
        .set_item(Some(item.clone()))
        .send()
        .await
        .unwrap();
    let err = c
        .put_item()
        .table_name(t)
        .set_item(Some(item.clone()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error()
            .is_conditional_check_failed_exception(),
        "[{store}]"
    );
    let got = c
        .get_item()
        .table_name(t)
        .set_key(Some(key("u", 1)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.item().unwrap()["blob"],
        AV::B(vec![0u8, 255].into()),
        "[{store}]"
    );

    // Update with return values.
    let out = c
        .update_item()
        .table_name(t)
        .set_key(Some(key("u", 1)))
        .update_expression("SET n = n + :d ADD tags :t")
        .expression_attribute_values(":d", AV::N("5".into()))
        .expression_attribute_values(":t", AV::Ss(vec!["b".into()]))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    assert_eq!(attrs["n"], AV::N("15".into()), "[{store}]");
    let mut tags = attrs["tags"].as_ss().unwrap().clone();
    tags.sort();
    assert_eq!(tags, ["a", "b"], "[{store}]");

    // Batch write, then query with the paginator.
    let writes: Vec<WriteRequest> = (0..25)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(key("q", i)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    let r = c
        .batch_write_item()
        .request_items(t, writes)
        .send()
        .await
        .unwrap();
    assert!(
        r.unprocessed_items().is_none_or(|u| u.is_empty()),
        "[{store}]"
    );
    let pages: Vec<_> = c
        .query()
        .table_name(t)
        .key_condition_expression("pk = :p AND sk >= :lo")
        .expression_attribute_values(":p", AV::S("q".into()))
        .expression_attribute_values(":lo", AV::N("5".into()))
        .limit(6)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    let sks: Vec<i64> = pages
        .into_iter()
        .flat_map(|p| p.unwrap().items.unwrap_or_default())
        .map(|i| i["sk"].as_n().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sks, (5..25).collect::<Vec<_>>(), "[{store}]");

    // Batch get, scan with filter, delete.
    let keys = KeysAndAttributes::builder()
        .set_keys(Some((0..5).map(|i| key("q", i)).collect()))
        .build()
        .unwrap();
    let r = c
        .batch_get_item()
        .request_items(t, keys)
        .send()
        .await
        .unwrap();
    assert_eq!(r.responses().unwrap()[t].len(), 5, "[{store}]");
    let r = c
        .scan()
        .table_name(t)
        .filter_expression("sk < :three")
        .expression_attribute_values(":three", AV::N("3".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.count(), 4, "[{store}] q0..q2 and u1");
    c.delete_item()
        .table_name(t)
        .set_key(Some(key("u", 1)))
        .send()
        .await
        .unwrap();
    assert!(c
        .get_item()
        .table_name(t)
        .set_key(Some(key("u", 1)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .is_none());

    // Typed errors.
    let err = c
        .describe_table()
        .table_name("does_not_exist")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error().is_resource_not_found_exception(),
        "[{store}]"
    );
    let err = c
        .put_item()
        .table_name(t)
        .item("pk", AV::S("x".into()))
        .send()
        .await
        .unwrap_err();
    let msg = format!("{:?}", err.into_service_error());
    assert!(msg.contains("ValidationException"), "[{store}] {msg}");

    // Tables list and delete.
    let names = c
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names
        .unwrap_or_default();
    assert!(names.contains(&t.to_string()), "[{store}]");
    c.delete_table().table_name(t).send().await.unwrap();
    c.wait_until_table_not_exists()
        .table_name(t)
        .wait(std::time::Duration::from_secs(10))
        .await
        .expect("table gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_rust_works_unchanged() {
    for (name, store) in strata_sdk_tests::stores() {
        let url = strata_sdk_tests::serve(store).await;
        let c = strata_sdk_tests::client(&url).await;
        exercise(&c, &name).await;
    }
}
