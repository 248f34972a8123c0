//! DescribeTimeToLive and UpdateTimeToLive over `strata_engine::ttl` (the
//! setting's format, and the expiry sweep that takes a change up).

use serde_json::{json, Value as Json};
use strata_engine::ttl::TtlSetting;

use crate::error::{ApiError, ApiResult};
use crate::req::{missing, Req};
use crate::tables::{change_meta, descriptor, table_name};
use crate::Api;

pub async fn describe_ttl(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let name = table_name(req)?;
    let d = descriptor(api, name).await?;
    let desc = match TtlSetting::of(&d) {
        // Once disabled and taken up, DynamoDB names no attribute.
        Some(s) if s.status() == "DISABLED" => json!({"TimeToLiveStatus": "DISABLED"}),
        Some(s) => json!({"TimeToLiveStatus": s.status(), "AttributeName": s.attribute_name}),
        None => json!({"TimeToLiveStatus": "DISABLED"}),
    };
    Ok(json!({ "TimeToLiveDescription": desc }))
}

/// UpdateTimeToLive. The change is taken up by the next expiry sweep
/// (`Engine::expire`): until then DescribeTimeToLive says ENABLING or
/// DISABLING, as DynamoDB does while it processes one.
pub async fn update_ttl(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let name = table_name(req)?;
    let spec = req
        .obj("TimeToLiveSpecification")?
        .ok_or_else(|| missing("TimeToLiveSpecification"))?;
    let enabled = spec
        .get("Enabled")
        .and_then(Json::as_bool)
        .ok_or_else(|| missing("Enabled"))?;
    let attr = spec
        .get("AttributeName")
        .and_then(Json::as_str)
        .ok_or_else(|| missing("AttributeName"))?
        .to_string();
    if attr.is_empty() || attr.len() > 255 {
        return Err(ApiError::validation(
            "Names of key attributes and attributes projected into an index must be between 1 and 255 characters, inclusive",
        ));
    }
    let interval_ms = api.engine.config().ttl_change_interval.as_millis() as u64;
    let now = strata_engine::clock::now_ms();
    let d = change_meta(api, name, |meta| {
        let current = TtlSetting::in_meta(&Json::Object(meta.clone()));
        let on = current.as_ref().is_some_and(|c| c.enabled);
        // DynamoDB Local's answers: a change naming another attribute than
        // the enabled one is refused, enabling or disabling.
        if on && current.as_ref().is_some_and(|c| c.attribute_name != attr) {
            return Err(ApiError::validation(
                "TimeToLive is active on a different AttributeName",
            ));
        }
        if on == enabled {
            return Err(ApiError::validation(if enabled {
                "TimeToLive is already enabled"
            } else {
                "TimeToLive is already disabled"
            }));
        }
        // DynamoDB's one change an hour, when configured.
        if let Some(c) = &current {
            if interval_ms > 0 && c.changed_ms > 0 && now < c.changed_ms + interval_ms {
                return Err(ApiError::validation(
                    "Time to live has been modified multiple times within a fixed interval",
                ));
            }
        }
        TtlSetting {
            enabled,
            attribute_name: attr.clone(),
            changed_ms: now,
            settled: false,
        }
        .store(meta);
        Ok(())
    })
    .await?;
    // A global table's setting is one setting (DynamoDB synchronizes it):
    // each replica region's table takes it too, and expires its own copies.
    let home = api.engine.config().region.clone();
    if let Some(setting) = TtlSetting::of(&d) {
        for region in d.replicas.iter().filter(|r| **r != home) {
            let Some(e) = api.regions().get(region) else {
                continue;
            };
            let copied = e
                .update_table(name, |r| {
                    if let Some(meta) = r.meta.as_object_mut() {
                        setting.store(meta);
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = copied {
                tracing::warn!(table = name, region = %region, error = %e, "could not copy the TTL setting to a replica");
            }
        }
    }
    Ok(json!({ "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attr} }))
}
