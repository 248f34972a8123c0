use super::*;

impl Partition {
    /// Evaluates every request in order against the view plus the effects of
    /// the requests before it. Returns the mutations to commit and each
    /// request's result (`true` when it adds mutations).
    pub(super) async fn evaluate(
        &self,
        reqs: &[WriteRequest],
    ) -> Result<(Vec<Mutation>, Evaluated, u64, u64)> {
        let images_gen = self.next_images_gen();
        let keep_old = images_gen % 2 == 1;
        let mut newest_seen = 0;
        let mut state: HashMap<Vec<u8>, Option<Arc<Item>>> = HashMap::new();
        let mut tokens_in_batch: HashMap<&str, ()> = HashMap::new();
        let mut mutations = Vec::new();
        let mut results = Vec::with_capacity(reqs.len());
        for req in reqs {
            if let Some(token) = req.token.as_deref() {
                let seen = self.read_view().token_seq(token);
                if seen.is_some() || tokens_in_batch.contains_key(token) {
                    results.push(Ok((
                        Committed {
                            seq: seen.unwrap_or_default(),
                            outcomes: Vec::new(),
                            replayed: true,
                        },
                        false,
                    )));
                    continue;
                }
            }
            let mut local: HashMap<Vec<u8>, Option<Arc<Item>>> = HashMap::new();
            let mut outcomes = Vec::with_capacity(req.ops.len());
            let mut staged = Vec::with_capacity(req.ops.len());
            let mut failure = None;
            for (index, op) in req.ops.iter().enumerate() {
                let key = encode_key(&op.key);
                if self.read_view().locks.contains_key(&key) {
                    // A transaction in flight holds the item.
                    failure = Some(Error::TransactionConflict {
                        table: self.table.name.clone(),
                    });
                    break;
                }
                let current = match local.get(&key).or_else(|| state.get(&key)) {
                    Some(c) => c.clone(),
                    None => {
                        let found = self.lookup(&key, Fill::No).await?;
                        if let Some(v) = &found {
                            newest_seen = newest_seen.max(v.ts_micros);
                        }
                        found.filter(|v| !v.deleted).map(|v| v.item)
                    }
                };
                match self.apply_op(op, current.as_deref(), index) {
                    Ok(new) => {
                        let new = new.map(Arc::new);
                        outcomes.push(WriteOutcome {
                            old: current.as_deref().cloned(),
                            new: new.as_deref().cloned(),
                        });
                        let image = new
                            .clone()
                            .unwrap_or_else(|| Arc::new(self.table.key_schema.key_item(&op.key)));
                        staged.push(Mutation {
                            key: key.clone(),
                            deleted: new.is_none(),
                            image,
                            old_image: if keep_old { current.clone() } else { None },
                            token: req.token.clone(),
                            replicated: None,
                            expired: matches!(op.change, Change::Expire),
                        });
                        local.insert(key, new);
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                Some(e) => results.push(Err(e)),
                None => {
                    state.extend(local);
                    mutations.extend(staged);
                    if let Some(t) = req.token.as_deref() {
                        tokens_in_batch.insert(t, ());
                    }
                    results.push(Ok((
                        Committed {
                            seq: 0,
                            outcomes,
                            replayed: false,
                        },
                        true,
                    )));
                }
            }
        }
        Ok((mutations, results, newest_seen, images_gen))
    }

    /// One operation against the item's current state: the new state
    /// (None for a delete) or why it is refused.
    pub(super) fn apply_op(
        &self,
        op: &crate::ops::WriteOp,
        current: Option<&Item>,
        index: usize,
    ) -> Result<Option<Item>> {
        // A put's item is refused for a bad index key before its condition
        // is looked at, as DynamoDB does.
        if let Change::Put(item) = &op.change {
            crate::index::check_index_keys(&self.table.indexes, item).map_err(Error::Validation)?;
        }
        if let Some(cond) = &op.condition {
            if !cond(current).map_err(Error::Validation)? {
                return Err(Error::ConditionFailed {
                    index,
                    item: current.cloned(),
                });
            }
        }
        let schema = &self.table.key_schema;
        let new = match &op.change {
            Change::Delete | Change::Expire => return Ok(None),
            Change::Put(item) => item.clone(),
            Change::Update(f) => {
                let Some(mut item) = f(current).map_err(Error::Validation)? else {
                    return Ok(None);
                };
                // An update of an absent item creates it, with its key.
                for (k, v) in schema.key_item(&op.key) {
                    item.entry(k).or_insert(v);
                }
                item
            }
        };
        match schema.key_of(&new) {
            Ok(k) if k == op.key => {}
            Ok(_) => {
                let name = if matches!(op.change, Change::Put(_)) {
                    "The provided key element does not match the schema".to_string()
                } else {
                    format!(
                        "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                        schema.hash.name
                    )
                };
                return Err(Error::Validation(name));
            }
            Err(e) => return Err(Error::Validation(e.to_string())),
        }
        if matches!(op.change, Change::Update(_)) {
            crate::index::check_index_keys(&self.table.indexes, &new).map_err(Error::Validation)?;
        }
        check_limits(&new)?;
        Ok(Some(new))
    }
}

/// DynamoDB's limits on a stored item: nesting and size.
pub(crate) fn check_limits(item: &Item) -> Result<()> {
    if nesting_depth(item) > MAX_NESTING {
        return Err(Error::Validation(
            "Nesting Levels have exceeded supported limits: Nesting levels of document attributes cannot exceed 32"
                .into(),
        ));
    }
    if item_size(item) > MAX_ITEM_SIZE {
        return Err(Error::Validation(
            "Item size has exceeded the maximum allowed size".into(),
        ));
    }
    Ok(())
}
