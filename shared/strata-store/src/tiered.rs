//! One store made of up to three: each partition's log segments, its SSTs
//! and everything else can live in different stores (an S3 Express One
//! Zone directory bucket for the log: cheaper, faster PUTs; S3 Standard for
//! the rest). Which tier an object belongs to is decided by its name, in
//! `paths` ([`tier_of`]), so the engine never knows the store is split.
//!
//! Every object lives in exactly one tier, so reads, writes, conditional
//! creates and deletes go to one store and keep that store's guarantees.
//! A listing goes to the tiers that can hold objects under its prefix
//! ([`tiers_under`]) and merges their answers (unordered, as S3 Express
//! lists; Strata sorts what it lists).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::paths::{tier_of, tiers_under, Tier};
use crate::DynStore;

/// A store split by tier; a tier without a store of its own uses `main`.
#[derive(Debug, Clone)]
pub struct TieredStore {
    main: DynStore,
    log: Option<DynStore>,
    runs: Option<DynStore>,
}

impl TieredStore {
    pub fn new(main: DynStore, log: Option<DynStore>, runs: Option<DynStore>) -> Self {
        Self { main, log, runs }
    }

    fn store(&self, tier: Tier) -> &DynStore {
        match tier {
            Tier::Log => self.log.as_ref().unwrap_or(&self.main),
            Tier::Runs => self.runs.as_ref().unwrap_or(&self.main),
            Tier::Main => &self.main,
        }
    }

    fn at(&self, path: &Path) -> &DynStore {
        self.store(tier_of(path))
    }

    /// One listing of every store that can hold objects under `prefix`.
    fn merged(
        &self,
        prefix: Option<&Path>,
        list: impl Fn(&DynStore) -> BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        stream::select_all(self.stores_under(prefix).into_iter().map(list)).boxed()
    }

    /// The distinct stores that can hold objects under `prefix`.
    fn stores_under(&self, prefix: Option<&Path>) -> Vec<&DynStore> {
        let mut out: Vec<&DynStore> = Vec::new();
        for tier in tiers_under(prefix) {
            let s = self.store(*tier);
            if !out.iter().any(|o| Arc::ptr_eq(o, s)) {
                out.push(s);
            }
        }
        out
    }
}

impl fmt::Display for TieredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tiered(main: {}", self.main)?;
        if let Some(log) = &self.log {
            write!(f, ", log: {log}")?;
        }
        if let Some(runs) = &self.runs {
            write!(f, ", runs: {runs}")?;
        }
        write!(f, ")")
    }
}

#[async_trait]
impl ObjectStore for TieredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.at(location).put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.at(location).put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.at(location).get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.at(location).get_range(location, range).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.at(location).get_ranges(location, ranges).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.at(location).head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.at(location).delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.merged(prefix, |s| s.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.merged(prefix, |s| s.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut merged = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for s in self.stores_under(prefix) {
            let one = s.list_with_delimiter(prefix).await?;
            merged.common_prefixes.extend(one.common_prefixes);
            merged.objects.extend(one.objects);
        }
        merged.common_prefixes.sort();
        merged.common_prefixes.dedup();
        merged.objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(merged)
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        let (src, dst) = (self.at(from), self.at(to));
        if Arc::ptr_eq(src, dst) {
            return src.copy(from, to).await;
        }
        let bytes = src.get(from).await?.bytes().await?;
        dst.put(to, bytes.into()).await.map(|_| ())
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        let (src, dst) = (self.at(from), self.at(to));
        if Arc::ptr_eq(src, dst) {
            return src.copy_if_not_exists(from, to).await;
        }
        let bytes = src.get(from).await?.bytes().await?;
        let create = PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        dst.put_opts(to, bytes.into(), create).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::PartitionPaths;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    fn stores() -> (TieredStore, DynStore, DynStore, DynStore) {
        let (main, log, runs): (DynStore, DynStore, DynStore) = (
            Arc::new(InMemory::new()),
            Arc::new(InMemory::new()),
            Arc::new(InMemory::new()),
        );
        let t = TieredStore::new(main.clone(), Some(log.clone()), Some(runs.clone()));
        (t, main, log, runs)
    }

    async fn names(s: &dyn ObjectStore, prefix: Option<&Path>) -> Vec<String> {
        let mut v: Vec<String> = s
            .list(prefix)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        v.sort();
        v
    }

    #[tokio::test]
    async fn each_object_lives_in_its_tier_and_listings_merge() {
        let (t, main, log, runs) = stores();
        let p = PartitionPaths::new("t", "inc", 0);
        for path in [p.log(1), p.log(2), p.run("r"), p.manifest(1)] {
            t.put(&path, Bytes::from_static(b"x").into()).await.unwrap();
        }
        assert_eq!(names(log.as_ref(), None).await.len(), 2);
        assert_eq!(names(runs.as_ref(), None).await.len(), 1);
        assert_eq!(names(main.as_ref(), None).await.len(), 1);
        assert_eq!(names(&t, None).await.len(), 4);
        assert_eq!(names(&t, Some(&Path::from("tables/t"))).await.len(), 4);
        assert_eq!(names(&t, Some(&p.log_dir())).await.len(), 2);
        let after: Vec<_> = t
            .list_with_offset(Some(&p.log_dir()), &p.log(1))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        let dirs = t
            .list_with_delimiter(Some(&Path::from(p.root())))
            .await
            .unwrap();
        let dirs: Vec<_> = dirs.common_prefixes.iter().map(|d| d.to_string()).collect();
        assert_eq!(dirs.len(), 3, "{dirs:?}");
        // Conditional create holds within the tier.
        let create = PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        let again = t
            .put_opts(&p.log(1), Bytes::from_static(b"y").into(), create)
            .await;
        assert!(matches!(
            again,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        t.delete(&p.log(1)).await.unwrap();
        assert_eq!(names(log.as_ref(), None).await.len(), 1);
    }
}
