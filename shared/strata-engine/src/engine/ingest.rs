//! Bulk loads (ImportTable): items added to a table as SSTs, with no
//! commit per item and no stream record, as DynamoDB's imports fill a new
//! table.

use super::*;

/// What one [`Engine::ingest_items`] call did.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Items written (a key given twice counts once: the last is kept).
    pub items: u64,
    /// Items refused, by their index in the call, and why (DynamoDB's
    /// words: missing or mistyped key, too large, too deeply nested, a bad
    /// index key).
    pub refused: Vec<(usize, String)>,
}

impl Engine {
    /// Adds `items` to `table` as SSTs: each partition's items, sorted by
    /// key, become its newest level-0 run (memory: the items given, and
    /// one SST being written), replacing what it held for those keys, as
    /// puts would (and as later puts replace them). For a table being
    /// filled (an import), which takes no writes meanwhile.
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
        // Stable, then reversed: of two items with one key the last given
        // comes first, and is the one kept.
        keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        keyed.reverse();
        keyed.dedup_by(|earlier, last| earlier.0 == last.0 && earlier.1 == last.1);
        keyed.reverse();
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
            ingest.finish_on_top().await?;
        }
        Ok(out)
    }
}
