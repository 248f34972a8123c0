use super::*;

/// A version replicated from another region, for
/// [`Partition::apply_replicated`].
#[derive(Debug, Clone)]
pub struct ReplicatedChange {
    /// The encoded key.
    pub key: Vec<u8>,
    /// The item, or for a delete its key attributes.
    pub image: Arc<Item>,
    pub deleted: bool,
    pub stamp: Stamp,
}

impl Partition {
    /// Applies versions replicated from another region, last writer wins:
    /// a version is written only if its stamp is newer than the stamp of
    /// what the partition holds for its key (tombstones included), so
    /// applying a batch twice changes nothing the second time. Returns how
    /// many were written.
    pub async fn apply_replicated(self: &Arc<Self>, changes: &[ReplicatedChange]) -> Result<usize> {
        self.wait_for_room().await;
        let applied = {
            let _g = self.sync.lock().await;
            // Applying a batch twice is a no-op (last writer wins), so an
            // attempt whose outcome is unknown is simply evaluated again.
            self.append_loop(Refresh::IfStale, IfUnresolved::Reevaluate, || {
                Box::pin(async move {
                    let images_gen = self.next_images_gen();
                    let mutations = self
                        .evaluate_replicated(changes, images_gen % 2 == 1)
                        .await?;
                    if mutations.is_empty() {
                        return Ok(Proposal::Done(0));
                    }
                    let n = mutations.len();
                    let seg = self.next_segment(rand::random(), 0, images_gen, mutations);
                    Ok(Proposal::Append(seg, n))
                })
            })
            .await
        };
        self.maybe_compact();
        Ok(applied?.0)
    }

    pub(super) async fn evaluate_replicated(
        &self,
        changes: &[ReplicatedChange],
        keep_old: bool,
    ) -> Result<Vec<Mutation>> {
        // Per key: the newest stamp so far, and the item before the batch
        // (the old image of whichever change of the batch survives).
        let mut seen: HashMap<&[u8], (Stamp, Option<Arc<Item>>)> = HashMap::new();
        let mut out: Vec<Mutation> = Vec::new();
        for c in changes {
            let (stamp, before) = match seen.get(c.key.as_slice()) {
                Some(s) => s.clone(),
                None => match self.lookup(&c.key, Fill::No).await? {
                    Some(v) => (v.stamp(), Some(v.item).filter(|_| !v.deleted)),
                    None => (Stamp::default(), None),
                },
            };
            if c.stamp <= stamp {
                seen.insert(c.key.as_slice(), (stamp, before));
                continue;
            }
            // An earlier change of this batch to the same key is superseded.
            out.retain(|m| m.key != c.key);
            out.push(Mutation {
                key: c.key.clone(),
                image: Arc::clone(&c.image),
                deleted: c.deleted,
                old_image: if keep_old { before.clone() } else { None },
                token: None,
                replicated: Some(c.stamp.clone()),
                expired: false,
            });
            seen.insert(c.key.as_slice(), (c.stamp.clone(), before));
        }
        Ok(out)
    }
}
