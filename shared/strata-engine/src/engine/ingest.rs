//! Bulk loads (ImportTable): items added to a table as SSTs, with no
//! commit per item and no stream record, as DynamoDB's imports fill a new
//! table.

use super::*;

/// What one [`Engine::ingest_items`] call did.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Items written (a key given twice counts once: the first is kept).
    pub items: u64,
    /// Items refused, by their index in the call, and why (DynamoDB's
    /// words: missing or mistyped key, too large, too deeply nested, a bad
    /// index key).
    pub refused: Vec<(usize, String)>,
}

impl Engine {
    /// Adds `items` to `table` as SSTs below everything it holds: each
    /// partition's items, sorted by key, become one sorted run (memory:
    /// the items given, and one SST being written). For a table being
    /// filled (an import): a key the table already holds keeps its version.
    pub async fn ingest_items(&self, table: &str, items: Vec<Item>) -> Result<Ingested> {
        let t = self.table(table).await?;
        let map = t.desc.map();
        let schema = &t.desc.key_schema;
        let mut out = Ingested::default();
        let mut keyed: Vec<(u32, Vec<u8>, Item)> = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let checked = schema
                .key_of(&item)
                .map_err(|e| Error::Validation(e.to_string()))
                .and_then(|key| {
                    check_key_types(schema, &key)?;
                    crate::index::check_index_keys(&t.desc.indexes, &item)
                        .map_err(Error::Validation)?;
                    crate::partition::check_limits(&item)?;
                    Ok(key)
                });
            match checked {
                Ok(key) => keyed.push((map.route(&key.hash), encode_key(&key), item)),
                Err(e) => out.refused.push((i, e.to_string())),
            }
        }
        // Stable: of two items with one key, the first given stays first.
        keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        keyed.dedup_by(|later, first| later.0 == first.0 && later.1 == first.1);
        let ts_micros = self.ctx.config.clock.now_micros();
        let origin: Arc<str> = Arc::from(self.ctx.config.region.as_str());
        let mut keyed = keyed.into_iter().peekable();
        while let Some(&(part, _, _)) = keyed.peek() {
            let p = self.partition_by_id(&t, part)?;
            let mut ingest = p.ingest();
            while let Some((_, key, item)) = keyed.next_if(|(q, _, _)| *q == part) {
                let v = Version {
                    seq: 0,
                    ts_micros,
                    origin: Arc::clone(&origin),
                    deleted: false,
                    item: Arc::new(item),
                };
                ingest.push(&key, &v).await?;
                out.items += 1;
            }
            ingest.finish().await?;
        }
        Ok(out)
    }
}
