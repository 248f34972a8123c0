//! The cache of immutable objects: run meta blocks (index + bloom) and
//! decoded data blocks. They never change once written, so entries need no
//! expiry, only a bound on bytes. Keys are object paths, which are never
//! reused (runs have random ids, tables have incarnations).

use std::sync::Arc;

use moka::sync::Cache;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::io;
use crate::run::{decode_block, decode_meta, Block, BlockHandle, RunInfo, RunMeta};

#[derive(Clone)]
enum Cached {
    Meta(Arc<RunMeta>),
    Block(Arc<Block>),
}

pub struct ObjectCache {
    entries: Cache<(String, u64), (Cached, u32)>,
}

impl ObjectCache {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &(String, u64), v: &(Cached, u32)| v.1)
                .build(),
        }
    }

    pub async fn run_meta(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        info: &RunInfo,
    ) -> Result<Arc<RunMeta>> {
        let key = (path.to_string(), u64::MAX);
        if let Some((Cached::Meta(m), _)) = self.entries.get(&key) {
            return Ok(m);
        }
        let bytes = io::get_range(store, path, info.meta_offset, info.size).await?;
        let meta = Arc::new(decode_meta(&bytes).map_err(|e| Error::corrupt(path, e))?);
        self.entries
            .insert(key, (Cached::Meta(Arc::clone(&meta)), weight(bytes.len())));
        Ok(meta)
    }

    pub async fn block(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        handle: &BlockHandle,
    ) -> Result<Arc<Block>> {
        let key = (path.to_string(), handle.offset);
        if let Some((Cached::Block(b), _)) = self.entries.get(&key) {
            return Ok(b);
        }
        let bytes = io::get_range(store, path, handle.offset, handle.offset + handle.len).await?;
        let block = Arc::new(decode_block(&bytes).map_err(|e| Error::corrupt(path, e))?);
        // Decoded blocks take more memory than their bytes; count them double.
        self.entries.insert(
            key,
            (Cached::Block(Arc::clone(&block)), weight(bytes.len() * 2)),
        );
        Ok(block)
    }
}

fn weight(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
