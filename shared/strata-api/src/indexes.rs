//! Secondary indexes in the DynamoDB API: key schemas and attribute
//! definitions (CreateTable, UpdateTable), index definitions with the
//! checks DynamoDB makes (its words, from DynamoDB Local 3.3.0 where the
//! documentation is silent), and their place in a table description.

use serde_json::{json, Map, Value as Json};
use strata_engine::index::{MAX_GLOBAL_INDEXES, MAX_LOCAL_INDEXES};
use strata_engine::{
    IndexDef, IndexKind, IndexStatus, KeyAttribute, KeySchema, KeyType, Projection, TableDescriptor,
};

use crate::error::{ApiError, ApiResult};
use crate::req::{missing, Req};

/// Most attributes all of a table's indexes may project (INCLUDE).
const MAX_PROJECTED: usize = 100;

fn invalid(m: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!("One or more parameter values were invalid: {m}"))
}

pub(crate) fn key_type_name(t: KeyType) -> &'static str {
    match t {
        KeyType::S => "S",
        KeyType::N => "N",
        KeyType::B => "B",
    }
}

/// A table's keys as CreateTable gives them: its key schema, its indexes
/// and the attribute definitions, in the order given.
pub(crate) struct Schema {
    pub key_schema: KeySchema,
    pub indexes: Vec<IndexDef>,
    pub defs: Vec<(String, KeyType)>,
}

/// AttributeDefinitions, in the order given.
fn attribute_definitions(req: &Req) -> ApiResult<Vec<(String, KeyType)>> {
    let defs = req
        .arr("AttributeDefinitions")?
        .ok_or_else(|| missing("AttributeDefinitions"))?;
    let mut out = Vec::new();
    for d in defs {
        let name = field(d, "AttributeName")?;
        let t = match field(d, "AttributeType")?.as_str() {
            "S" => KeyType::S,
            "N" => KeyType::N,
            "B" => KeyType::B,
            other => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
                )))
            }
        };
        out.push((name, t));
    }
    Ok(out)
}

fn field(v: &Json, k: &str) -> ApiResult<String> {
    v.get(k)
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| missing(k))
}

/// A KeySchema member (the table's or an index's), its attributes typed
/// by `defs`.
fn key_schema(ks: &[Json], defs: &[(String, KeyType)]) -> ApiResult<KeySchema> {
    if ks.is_empty() || ks.len() > 2 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'keySchema' failed to satisfy constraint: Member must have length less than or equal to 2",
            ks.len()
        )));
    }
    let mut attrs = Vec::new();
    for (i, k) in ks.iter().enumerate() {
        let name = field(k, "AttributeName")?;
        let kt = field(k, "KeyType")?;
        let want = if i == 0 { "HASH" } else { "RANGE" };
        if kt != want {
            return Err(ApiError::validation(if i == 0 {
                "Invalid KeySchema: The first KeySchemaElement is not a HASH key type".to_string()
            } else {
                "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type".to_string()
            }));
        }
        let Some((_, t)) = defs.iter().find(|(n, _)| *n == name) else {
            return Err(invalid(format!(
                "Some index key attributes are not defined in AttributeDefinitions. Keys: [{name}], AttributeDefinitions: [{}]",
                defs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        attrs.push(KeyAttribute { name, key_type: *t });
    }
    if attrs.len() == 2 && attrs[0].name == attrs[1].name {
        return Err(invalid(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name",
        ));
    }
    let mut it = attrs.into_iter();
    let hash = it.next().ok_or_else(|| missing("KeySchema"))?;
    Ok(KeySchema {
        hash,
        range: it.next(),
    })
}

/// The key schema, indexes and attribute definitions of a CreateTable.
/// `provisioned`: the table's billing mode is PROVISIONED (each global
/// index then needs its own throughput).
pub(crate) fn parse_schema(req: &Req, provisioned: bool) -> ApiResult<Schema> {
    let defs = attribute_definitions(req)?;
    let ks = req.arr("KeySchema")?.ok_or_else(|| missing("KeySchema"))?;
    let table = key_schema(ks, &defs)?;
    let mut indexes = Vec::new();
    if let Some(gsis) = req.arr("GlobalSecondaryIndexes")? {
        if gsis.is_empty() {
            return Err(ApiError::validation("GSI list is empty/invalid"));
        }
        if gsis.len() > MAX_GLOBAL_INDEXES {
            return Err(ApiError::validation(
                "GlobalSecondaryIndex count exceeds the per-table limit",
            ));
        }
        for g in gsis {
            indexes.push(index_def(g, IndexKind::Global, &defs, provisioned)?);
        }
    }
    if let Some(lsis) = req.arr("LocalSecondaryIndexes")? {
        if lsis.is_empty() {
            return Err(ApiError::validation("LSI list is empty/invalid"));
        }
        if table.range.is_none() {
            return Err(ApiError::validation(
                "Local Secondary indices are not allowed on hash tables, only hash and range tables",
            ));
        }
        if lsis.len() > MAX_LOCAL_INDEXES {
            return Err(ApiError::validation(
                "Cannot have more than 5 local secondary indexes per table",
            ));
        }
        for l in lsis {
            let def = index_def(l, IndexKind::Local, &defs, false)?;
            if def.key_schema.hash != table.hash {
                return Err(ApiError::validation(
                    "Local Secondary indices must have the same hash key as the main table",
                ));
            }
            if def.key_schema.range.is_none() {
                return Err(ApiError::validation(
                    "Local secondary indices must have a range key",
                ));
            }
            indexes.push(def);
        }
    }
    check_names(&indexes)?;
    check_projected(&indexes)?;
    let mut used: Vec<&str> = vec![&table.hash.name];
    used.extend(table.range.as_ref().map(|r| r.name.as_str()));
    for ix in &indexes {
        for a in ix.key_schema.attributes() {
            if !used.contains(&a.name.as_str()) {
                used.push(&a.name);
            }
        }
    }
    if used.len() != defs.len() {
        return Err(invalid(
            "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ));
    }
    Ok(Schema {
        key_schema: table,
        indexes,
        defs,
    })
}

/// The indexes a restore from a backup of `d` makes: the backup's, or
/// those of GlobalSecondaryIndexOverride and LocalSecondaryIndexOverride
/// (each replaces its kind), over the backed-up table's attributes.
pub(crate) fn parse_overrides(req: &Req, d: &TableDescriptor) -> ApiResult<Vec<IndexDef>> {
    let defs = table_definitions(d);
    let provisioned = d.meta.get("BillingMode").and_then(Json::as_str) != Some("PAY_PER_REQUEST")
        && req.str("BillingModeOverride")? != Some("PAY_PER_REQUEST");
    let mut out: Vec<IndexDef> = Vec::new();
    for (field, kind) in [
        ("GlobalSecondaryIndexOverride", IndexKind::Global),
        ("LocalSecondaryIndexOverride", IndexKind::Local),
    ] {
        match req.arr(field)? {
            None => out.extend(d.indexes.iter().filter(|i| i.kind == kind).cloned()),
            Some(list) => {
                for v in list {
                    let def = index_def(v, kind, &defs, provisioned && kind == IndexKind::Global)?;
                    if kind == IndexKind::Local
                        && (def.key_schema.hash != d.key_schema.hash
                            || def.key_schema.range.is_none())
                    {
                        return Err(ApiError::validation(
                            "Local secondary indices must have the same hash key as the main table and a range key",
                        ));
                    }
                    out.push(def);
                }
            }
        }
    }
    check_names(&out)?;
    Ok(out)
}

/// Index names: valid, and unique across global and local indexes.
fn check_names(indexes: &[IndexDef]) -> ApiResult<()> {
    for (i, a) in indexes.iter().enumerate() {
        for b in &indexes[..i] {
            if a.name == b.name {
                return Err(ApiError::validation(match (a.kind, b.kind) {
                    (IndexKind::Global, IndexKind::Global) => {
                        "Two global secondary indices have the same name"
                    }
                    (IndexKind::Local, IndexKind::Local) => {
                        "Two local secondary indices have the same name"
                    }
                    _ => "Local Secondary Indices AND Global Secondary Indices must have different names",
                }));
            }
        }
    }
    Ok(())
}

/// At most 100 attributes projected (INCLUDE) across all of a table's
/// indexes, each name counted once per index.
fn check_projected(indexes: &[IndexDef]) -> ApiResult<()> {
    let n: usize = indexes
        .iter()
        .map(|i| match &i.projection {
            Projection::Include(names) => names.len(),
            _ => 0,
        })
        .sum();
    if n > MAX_PROJECTED {
        return Err(invalid(format!(
            "Number of projected attributes in all indexes exceeds limit of {MAX_PROJECTED}, projected attributes count: {n}"
        )));
    }
    Ok(())
}

/// One index of CreateTable or of an UpdateTable Create.
fn index_def(
    v: &Json,
    kind: IndexKind,
    defs: &[(String, KeyType)],
    provisioned: bool,
) -> ApiResult<IndexDef> {
    let name = field(v, "IndexName")?;
    if strata_engine::catalog::validate_table_name(&name).is_err() {
        return Err(ApiError::validation(
            "Invalid table/index name.  Table/index names must be between 3 and 255 characters long, and may contain only the characters a-z, A-Z, 0-9, '_', '-', and '.'",
        ));
    }
    let ks = v
        .get("KeySchema")
        .and_then(Json::as_array)
        .ok_or_else(|| missing("KeySchema"))?;
    let key_schema = key_schema(ks, defs)?;
    let projection = projection(v.get("Projection"))?;
    let mut meta = Map::new();
    if kind == IndexKind::Global {
        match v.get("ProvisionedThroughput").filter(|p| !p.is_null()) {
            Some(pt) => {
                let r = pt.get("ReadCapacityUnits").and_then(Json::as_i64);
                let w = pt.get("WriteCapacityUnits").and_then(Json::as_i64);
                match (r, w) {
                    (Some(r), Some(w)) if r >= 1 && w >= 1 => {
                        meta.insert(
                            "ProvisionedThroughput".into(),
                            json!({"ReadCapacityUnits": r, "WriteCapacityUnits": w}),
                        );
                    }
                    _ => return Err(invalid("Provisioned throughput values must be at least 1")),
                }
            }
            None if provisioned => {
                return Err(ApiError::validation(
                    "No provisioned throughput specified for the global secondary index",
                ))
            }
            None => {}
        }
        if let Some(od) = v.get("OnDemandThroughput").filter(|p| p.is_object()) {
            meta.insert("OnDemandThroughput".into(), od.clone());
        }
    }
    Ok(IndexDef {
        name,
        id: String::new(),
        kind,
        key_schema,
        projection,
        status: IndexStatus::Active,
        meta: Json::Object(meta),
    })
}

fn projection(p: Option<&Json>) -> ApiResult<Projection> {
    let Some(p) = p.filter(|p| p.get("ProjectionType").is_some()) else {
        return Err(ApiError::validation(
            "Indexes must have a projection specified",
        ));
    };
    let names = p.get("NonKeyAttributes").and_then(Json::as_array);
    match p.get("ProjectionType").and_then(Json::as_str) {
        Some("INCLUDE") => {
            let names: Vec<String> = names
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect();
            if names.is_empty() {
                return Err(ApiError::validation("If Projection type INCLUDE is specified, some non-key attributes to include in the projection must be specified as well"));
            }
            Ok(Projection::Include(names))
        }
        Some(t @ ("ALL" | "KEYS_ONLY")) => {
            if names.is_some() {
                return Err(ApiError::validation(
                    "No attributes should be specified to be projected unless projection type is INCLUDE",
                ));
            }
            Ok(if t == "ALL" {
                Projection::All
            } else {
                Projection::KeysOnly
            })
        }
        other => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]",
            other.unwrap_or_default()
        ))),
    }
}

/// What UpdateTable's GlobalSecondaryIndexUpdates asks for.
pub(crate) enum IndexUpdate {
    Create(IndexDef, Vec<(String, KeyType)>),
    Delete(String),
    /// Throughput changes: accepted and recorded.
    Update(String, Json),
}

/// The one index change an UpdateTable may make (DynamoDB allows one
/// creation or deletion per call), checked against the table.
pub(crate) fn parse_update(req: &Req, d: &TableDescriptor) -> ApiResult<Option<IndexUpdate>> {
    let Some(updates) = req.arr("GlobalSecondaryIndexUpdates")? else {
        return Ok(None);
    };
    if updates.len() > 1 {
        return Err(ApiError::limit_exceeded(
            "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table",
        ));
    }
    let Some(u) = updates.first() else {
        return Ok(None);
    };
    if d.indexes.iter().any(|i| i.status == IndexStatus::Creating) && u.get("Update").is_none() {
        return Err(ApiError::limit_exceeded(
            "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table",
        ));
    }
    let named = |v: &Json| field(v, "IndexName");
    if let Some(c) = u.get("Create") {
        // The new index's key attributes come from AttributeDefinitions,
        // which must agree with the table's existing definitions.
        let mut defs = table_definitions(d);
        for (n, t) in attribute_definitions(req)? {
            match defs.iter().find(|(m, _)| *m == n) {
                Some((_, u)) if *u != t => {
                    return Err(invalid(format!(
                        "Cannot change the type of attribute {n} used as a key"
                    )))
                }
                Some(_) => {}
                None => defs.push((n, t)),
            }
        }
        let provisioned =
            d.meta.get("BillingMode").and_then(Json::as_str) != Some("PAY_PER_REQUEST");
        let def = index_def(c, IndexKind::Global, &defs, provisioned)?;
        if d.index(&def.name).is_some() {
            return Err(invalid(format!(
                "Attempting to create an index which already exists. IndexName: {}",
                def.name
            )));
        }
        if d.indexes
            .iter()
            .filter(|i| i.kind == IndexKind::Global)
            .count()
            >= MAX_GLOBAL_INDEXES
        {
            return Err(ApiError::limit_exceeded(
                "GlobalSecondaryIndex count exceeds the per-table limit",
            ));
        }
        let mut all = d.indexes.clone();
        all.push(def.clone());
        check_projected(&all)?;
        return Ok(Some(IndexUpdate::Create(def, defs)));
    }
    if let Some(del) = u.get("Delete") {
        let name = named(del)?;
        return match d.index(&name) {
            Some(i) if i.kind == IndexKind::Global => Ok(Some(IndexUpdate::Delete(name))),
            _ => Err(ApiError::not_found(format!(
                "Requested resource not found: Index: {name} not found"
            ))),
        };
    }
    if let Some(upd) = u.get("Update") {
        let name = named(upd)?;
        if d.index(&name).is_none_or(|i| i.kind != IndexKind::Global) {
            return Err(ApiError::not_found(format!(
                "Requested resource not found: Index: {name} not found"
            )));
        }
        let pt = upd
            .get("ProvisionedThroughput")
            .cloned()
            .unwrap_or(Json::Null);
        return Ok(Some(IndexUpdate::Update(name, pt)));
    }
    Err(invalid(
        "One of Create, Update or Delete must be given in a GlobalSecondaryIndexUpdate",
    ))
}

/// Every attribute definition of a table: as recorded, else its keys'.
pub(crate) fn table_definitions(d: &TableDescriptor) -> Vec<(String, KeyType)> {
    let recorded = d.meta.get("AttributeDefinitions").and_then(Json::as_array);
    let mut out: Vec<(String, KeyType)> = recorded
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let n = v.get("AttributeName")?.as_str()?.to_string();
            let t = match v.get("AttributeType")?.as_str()? {
                "S" => KeyType::S,
                "N" => KeyType::N,
                "B" => KeyType::B,
                _ => return None,
            };
            Some((n, t))
        })
        .collect();
    // Every key attribute is defined, whatever was recorded.
    let ks = &d.key_schema;
    for (i, a) in ks.attributes().enumerate() {
        if !out.iter().any(|(n, _)| *n == a.name) {
            out.insert(i, (a.name.clone(), a.key_type));
        }
    }
    for ix in &d.indexes {
        for a in ix.key_schema.attributes() {
            if !out.iter().any(|(n, _)| *n == a.name) {
                out.push((a.name.clone(), a.key_type));
            }
        }
    }
    out
}

/// The AttributeDefinitions member of a description or of `meta`.
pub(crate) fn definitions_json(defs: &[(String, KeyType)]) -> Json {
    Json::Array(
        defs.iter()
            .map(|(n, t)| json!({"AttributeName": n, "AttributeType": key_type_name(*t)}))
            .collect(),
    )
}

fn key_schema_json(ks: &KeySchema) -> Json {
    let mut out = vec![json!({"AttributeName": ks.hash.name, "KeyType": "HASH"})];
    if let Some(r) = &ks.range {
        out.push(json!({"AttributeName": r.name, "KeyType": "RANGE"}));
    }
    Json::Array(out)
}

fn projection_json(p: &Projection) -> Json {
    match p {
        Projection::All => json!({"ProjectionType": "ALL"}),
        Projection::KeysOnly => json!({"ProjectionType": "KEYS_ONLY"}),
        Projection::Include(names) => {
            json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": names})
        }
    }
}

/// Adds GlobalSecondaryIndexes and LocalSecondaryIndexes to a table
/// description.
pub(crate) fn describe(d: &TableDescriptor, table_arn: &str, t: &mut Json) {
    let mut gsis = Vec::new();
    let mut lsis = Vec::new();
    for ix in &d.indexes {
        let mut j = json!({
            "IndexName": ix.name,
            "KeySchema": key_schema_json(&ix.key_schema),
            "Projection": projection_json(&ix.projection),
        });
        if ix.kind == IndexKind::Global {
            let creating = ix.status == IndexStatus::Creating;
            j["IndexStatus"] = json!(if creating { "CREATING" } else { "ACTIVE" });
            if creating {
                j["Backfilling"] = json!(true);
            }
            if let Some(pt) = ix.meta.get("ProvisionedThroughput") {
                let mut pt = pt.clone();
                pt["NumberOfDecreasesToday"] = json!(0);
                j["ProvisionedThroughput"] = pt;
            }
            if let Some(od) = ix.meta.get("OnDemandThroughput") {
                j["OnDemandThroughput"] = od.clone();
            }
        }
        j["IndexSizeBytes"] = json!(0);
        j["ItemCount"] = json!(0);
        j["IndexArn"] = json!(format!("{table_arn}/index/{}", ix.name));
        match ix.kind {
            IndexKind::Global => gsis.push(j),
            IndexKind::Local => lsis.push(j),
        }
    }
    if !gsis.is_empty() {
        t["GlobalSecondaryIndexes"] = Json::Array(gsis);
    }
    if !lsis.is_empty() {
        t["LocalSecondaryIndexes"] = Json::Array(lsis);
    }
    t["AttributeDefinitions"] = definitions_json(&table_definitions(d));
}
