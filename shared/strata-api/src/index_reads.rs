//! Query and Scan through a secondary index: which attributes the read
//! may ask for, when a local index fetches the table's items, and the
//! capacity an index read reports.

use std::sync::Arc;

use strata_engine::{Consistency, IndexDef, IndexKind, Item, Projection, TableDescriptor};

use crate::choices::Select;
use crate::error::{ApiError, ApiResult};
use crate::expr::{Cond, DocPath, PathElem};
use crate::Api;

/// The index a read names, checked: it exists, and what it is asked for
/// it can give. `fetch` is set when a local index must read the table's
/// items (a Select or projection or filter beyond its projection), as
/// DynamoDB does; a global index refuses instead.
pub(crate) struct IndexRead {
    pub def: IndexDef,
    pub fetch: bool,
}

fn top_names<'a>(paths: impl IntoIterator<Item = &'a DocPath>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for p in paths {
        if let Some(PathElem::Key(n)) = p.first() {
            if !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
    }
    out
}

/// The index named by a read's IndexName, checked against its Select,
/// projection and filter.
pub(crate) fn index_read(
    d: &TableDescriptor,
    name: &str,
    select: Select,
    proj: Option<&Vec<DocPath>>,
    filter: Option<&Cond>,
) -> ApiResult<IndexRead> {
    let def = d.index(name).cloned().ok_or_else(|| {
        ApiError::validation(format!(
            "The table does not have the specified index: {name}"
        ))
    })?;
    let all = def.projection == Projection::All;
    let missing: Vec<&str> = top_names(proj.into_iter().flatten())
        .into_iter()
        .filter(|n| !def.projects(&d.key_schema, n))
        .collect();
    let filter_missing = filter.is_some_and(|f| {
        top_names(f.paths())
            .iter()
            .any(|n| !def.projects(&d.key_schema, n))
    });
    match def.kind {
        IndexKind::Global => {
            if select == Select::AllAttributes && !all {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {name} because its projection type is not ALL"
                )));
            }
            if !missing.is_empty() {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Global secondary index {name} does not project [{}]",
                    missing.join(", ")
                )));
            }
            Ok(IndexRead { def, fetch: false })
        }
        IndexKind::Local => {
            let fetch = !all
                && ((select == Select::AllAttributes) || !missing.is_empty() || filter_missing);
            Ok(IndexRead { def, fetch })
        }
    }
}

/// Replaces each entry of a local index with its table item (one read
/// each, with the read's consistency). An item deleted meanwhile is left
/// out.
pub(crate) async fn fetch_items(
    api: &Api,
    d: &TableDescriptor,
    entries: Vec<Arc<Item>>,
    consistency: Consistency,
) -> ApiResult<Vec<Arc<Item>>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Ok(key) = d.key_schema.key_of(&e) else {
            continue;
        };
        if let Some(item) = api.engine().get(&d.name, &key, consistency).await? {
            out.push(item);
        }
    }
    Ok(out)
}
