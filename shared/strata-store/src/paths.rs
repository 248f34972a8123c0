//! Where every object lives. One place, so the layout is decided once:
//! every object name Strata writes is built here, and every name it reads
//! back out of a listing or a notification is parsed here.
//!
//! ```text
//! tables/<table>/schema/<v:020>                               table descriptor versions (create-next)
//! tables/<table>/<incarnation>/p<part:04>/log/<seq:020>.seg   one committed batch (immutable)
//! tables/<table>/<incarnation>/p<part:04>/runs/<id>.sst       one SST (immutable)
//! tables/<table>/<incarnation>/p<part:04>/manifest/<v:020>    sorted runs + compacted_through (create-next)
//! replication/<table>/<from-region>/p<part:04>                a replicator's cursor (target store)
//! exports/<table>/<export-id>.json                            an export's record
//! backups/<backup-id>.json                                    an on-demand backup (pins SSTs)
//! imports/<import-id>.json                                    an import's record (ImportTable)
//! backup-uses/<backup-id>/<table>!<nonce> | !deleting          a restore reading a backup, or its deletion
//! _strata/probe/<nonce:016x>-<round>                          the start-up atomicity probe
//! txn/<id:032x>                                               a transaction's decision (create once)
//! <prefix>/AWSDynamoDB/<export-id>/…                           an export (see `ExportPaths`)
//! ```
//! Zero-padded numbers keep LIST order equal to numeric order. The
//! incarnation (a random id chosen at CreateTable) keeps a re-created table
//! from ever seeing its predecessor's objects, even before they are deleted.

use object_store::path::Path;

pub fn tables_root() -> Path {
    Path::from("tables")
}

pub fn table_root(table: &str) -> Path {
    Path::from(format!("tables/{table}"))
}

pub fn schema_dir(table: &str) -> Path {
    Path::from(format!("tables/{table}/schema"))
}

pub fn schema(table: &str, version: u64) -> Path {
    Path::from(format!("tables/{table}/schema/{version:020}"))
}

pub fn incarnation_root(table: &str, incarnation: &str) -> Path {
    Path::from(format!("tables/{table}/{incarnation}"))
}

/// The objects of one partition of one table incarnation.
#[derive(Debug, Clone)]
pub struct PartitionPaths {
    root: String,
}

impl PartitionPaths {
    pub fn new(table: &str, incarnation: &str, part: u32) -> Self {
        Self {
            root: format!("tables/{table}/{incarnation}/p{part:04}"),
        }
    }

    /// The partition's prefix; unique per table incarnation and partition.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn log_dir(&self) -> Path {
        Path::from(format!("{}/log", self.root))
    }

    pub fn log(&self, seq: u64) -> Path {
        Path::from(format!("{}/log/{seq:020}.seg", self.root))
    }

    pub fn runs_dir(&self) -> Path {
        Path::from(format!("{}/runs", self.root))
    }

    /// The id of the SST `path` names, if it is one of this partition's.
    pub fn own_run_id(&self, path: &str) -> Option<String> {
        let name = path
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/runs/")?;
        name.strip_suffix(".sst")
            .filter(|id| !id.contains('/'))
            .map(str::to_string)
    }

    pub fn run(&self, id: &str) -> Path {
        Path::from(format!("{}/runs/{id}.sst", self.root))
    }

    pub fn manifest_dir(&self) -> Path {
        Path::from(format!("{}/manifest", self.root))
    }

    pub fn manifest(&self, version: u64) -> Path {
        Path::from(format!("{}/manifest/{version:020}", self.root))
    }
}

/// A replicator's cursor for one partition, in the target region's store.
pub fn replication_cursor(table: &str, from_region: &str, part: u32) -> Path {
    Path::from(format!("replication/{table}/{from_region}/p{part:04}"))
}

/// An index follower's cursor: how far the index table (this incarnation)
/// has followed partition `part` of its base table's log.
pub fn index_cursor(index_table: &str, incarnation: &str, part: u32) -> Path {
    Path::from(format!(
        "tables/{index_table}/{incarnation}/follow/p{part:04}"
    ))
}

/// Where an export's description is kept, in the table's store.
pub fn export_record(table: &str, export_id: &str) -> Path {
    Path::from(format!("exports/{table}/{export_id}.json"))
}

/// The export records of one table, or of every table.
pub fn export_records(table: Option<&str>) -> Path {
    match table {
        Some(t) => Path::from(format!("exports/{t}")),
        None => Path::from("exports"),
    }
}

/// An import's record: its ImportTableDescription, rewritten when it ends.
pub fn import_record(import_id: &str) -> Path {
    Path::from(format!("imports/{import_id}.json"))
}

pub fn import_records() -> Path {
    Path::from("imports")
}

/// The deployment's key for authenticating DynamoDB Streams shard
/// iterators (random, created once by whichever instance needs it first).
pub fn stream_iterator_key() -> Path {
    Path::from("keys/stream-iterators")
}

/// An on-demand backup's record: the table's descriptor and each live
/// partition's manifest when it was taken (what pins their SSTs).
pub fn backup(backup_id: &str) -> Path {
    Path::from(format!("backups/{backup_id}.json"))
}

pub fn backups_dir() -> Path {
    Path::from("backups")
}

/// The id in a backup's or an import's record name (`backups/<id>.json`,
/// `imports/<id>.json` → id).
pub fn parse_record_id(path: &Path) -> Option<String> {
    path.filename()?.strip_suffix(".json").map(str::to_string)
}

/// Marks a restore from a backup into `table` in progress (DeleteBackup
/// then refuses), one mark per restore (`nonce`); or, with `table` None, a
/// DeleteBackup in progress (restores then refuse). A table name never
/// holds `!` (nor does object_store encode it).
pub fn backup_use(backup_id: &str, table: Option<&str>, nonce: &str) -> Path {
    match table {
        Some(t) => Path::from(format!("backup-uses/{backup_id}/{t}!{nonce}")),
        None => Path::from(format!("backup-uses/{backup_id}/!deleting")),
    }
}

/// What a mark under `backup_uses` is: Some(table) for a restore's, None
/// for a DeleteBackup's.
pub fn parse_backup_use(path: &Path) -> Option<Option<String>> {
    let name = path.filename()?;
    if name == "!deleting" {
        return Some(None);
    }
    name.split_once('!').map(|(t, _)| Some(t.to_string()))
}

pub fn backup_uses(backup_id: &str) -> Path {
    Path::from(format!("backup-uses/{backup_id}"))
}

/// One key of the start-up atomicity probe.
pub fn probe(nonce: u64, round: usize) -> Path {
    Path::from(format!("_strata/probe/{nonce:016x}-{round}"))
}

/// Whether a path belongs to the start-up probe.
pub fn is_probe(path: &str) -> bool {
    path.starts_with("_strata/probe")
}

/// The objects of one export, under the destination's prefix, laid out as
/// DynamoDB lays its exports out.
#[derive(Debug, Clone)]
pub struct ExportPaths {
    dir: String,
}

impl ExportPaths {
    /// `<prefix>/AWSDynamoDB/<export_id>` (no prefix: from the bucket root).
    pub fn new(prefix: &str, export_id: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let dir = if prefix.is_empty() {
            format!("AWSDynamoDB/{export_id}")
        } else {
            format!("{prefix}/AWSDynamoDB/{export_id}")
        };
        Self { dir }
    }

    /// An export whose directory is already known.
    pub fn at(dir: &str) -> Self {
        Self {
            dir: dir.trim_matches('/').to_string(),
        }
    }

    /// The export's directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Written first: the export has started.
    pub fn started(&self) -> String {
        format!("{}/_started", self.dir)
    }

    pub fn manifest_files(&self) -> String {
        format!("{}/manifest-files.json", self.dir)
    }

    pub fn manifest_summary(&self) -> String {
        format!("{}/manifest-summary.json", self.dir)
    }

    /// A data file's key (`name` from [`ExportPaths::data_name`]).
    pub fn data(&self, name: &str) -> String {
        format!("{}/data/{name}", self.dir)
    }

    /// A partition's data file name, by format extension (`parquet`,
    /// `json.gz`).
    pub fn data_name(part: u32, export_id: &str, extension: &str) -> String {
        format!("{part:04}-{export_id}.{extension}")
    }
}

/// S3's bucket-name rules. A bucket name becomes part of a store URL, so
/// anything else (`?endpoint=…`, slashes) must never get that far.
pub fn valid_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.'])
}

/// The (table, partition) a log segment's object key names, if it is one
/// (an S3 notification's key, which may carry a store prefix before
/// `tables/`).
pub fn parse_log_object(key: &str) -> Option<(String, u32)> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.get(parts.len().checked_sub(6)?..)? {
        ["tables", table, _incarnation, part, "log", file] if file.ends_with(".seg") => {
            let part = part.strip_prefix('p')?.parse().ok()?;
            Some((table.to_string(), part))
        }
        _ => None,
    }
}

/// The tiers a store may be split into (see `tiered`): a partition's log
/// segments, its SSTs, and everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Log,
    Runs,
    Main,
}

/// The tier an object belongs to: `tables/<t>/<inc>/p<part>/log/…` is the
/// log, `…/runs/…` the runs, the rest main.
pub fn tier_of(path: &Path) -> Tier {
    let mut parts = path.parts();
    let parts: [_; 5] = std::array::from_fn(|_| parts.next());
    match parts.map(|p| p.map(|p| p.as_ref().to_string())) {
        [Some(root), Some(_), Some(_), Some(part), Some(dir)]
            if root == "tables" && is_partition_dir(&part) =>
        {
            match dir.as_str() {
                "log" => Tier::Log,
                "runs" => Tier::Runs,
                _ => Tier::Main,
            }
        }
        _ => Tier::Main,
    }
}

/// The tiers that can hold objects under `prefix`: one, below a
/// partition's directories; all three above them (a table's or the whole
/// store's listing).
pub fn tiers_under(prefix: Option<&Path>) -> &'static [Tier] {
    const ALL: &[Tier] = &[Tier::Main, Tier::Log, Tier::Runs];
    let Some(prefix) = prefix else { return ALL };
    let parts: Vec<String> = prefix.parts().map(|p| p.as_ref().to_string()).collect();
    match parts.as_slice() {
        [] => ALL,
        [root, ..] if root != "tables" => &[Tier::Main],
        [_] | [_, _] | [_, _, _] => ALL,
        [_, _, _, part] if is_partition_dir(part) => ALL,
        [_, _, _, part, ..] if is_partition_dir(part) => match tier_of(prefix) {
            Tier::Log => &[Tier::Log],
            Tier::Runs => &[Tier::Runs],
            Tier::Main => &[Tier::Main],
        },
        _ => &[Tier::Main],
    }
}

fn is_partition_dir(name: &str) -> bool {
    name.strip_prefix('p')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The number in a sequenced object name (`…/00000000000000000042.seg` → 42).
pub fn parse_seq(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    let digits = name.split('.').next()?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

/// The id in a run name (`…/runs/<id>.sst` → id).
pub fn parse_run_id(path: &Path) -> Option<String> {
    path.filename()?.strip_suffix(".sst").map(str::to_string)
}

/// Where a transaction's decision lives (see the engine's `txn`).
pub fn txn_decision(id: &str) -> Path {
    Path::from(format!("txn/{id}"))
}

/// The directory of every decision.
pub fn txn_decisions() -> Path {
    Path::from("txn")
}

/// A fresh random id (128 bits, hex): run ids, incarnations, commit ids.
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequenced_names_parse_back() {
        let p = PartitionPaths::new("t", "abc", 3);
        assert_eq!(
            p.log(42).as_ref(),
            "tables/t/abc/p0003/log/00000000000000000042.seg"
        );
        assert_eq!(parse_seq(&p.log(42)), Some(42));
        assert_eq!(parse_seq(&p.manifest(7)), Some(7));
        assert_eq!(parse_run_id(&p.run("xyz")), Some("xyz".to_string()));
        assert_eq!(parse_seq(&Path::from("tables/t/abc/p0003/log/junk")), None);
    }

    #[test]
    fn every_object_has_one_tier_and_listings_find_it() {
        let p = PartitionPaths::new("t", "abc", 3);
        assert_eq!(tier_of(&p.log(1)), Tier::Log);
        assert_eq!(tier_of(&p.run("x")), Tier::Runs);
        for main in [
            p.manifest(1),
            schema("t", 1),
            replication_cursor("t", "eu-west-1", 3),
            probe(1, 0),
            Path::from("tables/t/abc/p0003"),
            Path::from("tables/t/abc/notapartition/log/1.seg"),
        ] {
            assert_eq!(tier_of(&main), Tier::Main, "{main}");
        }
        // Each object is listed by every prefix above it.
        for object in [p.log(1), p.run("x"), p.manifest(1), schema("t", 1)] {
            let parts: Vec<_> = object.parts().collect();
            for n in 0..parts.len() {
                let prefix = Path::from_iter(parts[..n].iter().cloned());
                let prefix = (n > 0).then_some(&prefix);
                assert!(
                    tiers_under(prefix).contains(&tier_of(&object)),
                    "{object} under {prefix:?}"
                );
            }
        }
        assert_eq!(tiers_under(Some(&p.log_dir())), &[Tier::Log]);
        assert_eq!(tiers_under(Some(&p.manifest_dir())), &[Tier::Main]);
        assert_eq!(tiers_under(Some(&Path::from("exports"))), &[Tier::Main]);
    }
}
#[cfg(test)]
mod mark_tests {
    /// Names object_store would percent-encode (`~`) do not parse back.
    #[test]
    fn marks_parse_back() {
        let p = super::backup_use("b", Some("dst"), "n1");
        assert_eq!(p.as_ref(), "backup-uses/b/dst!n1");
        assert_eq!(super::parse_backup_use(&p), Some(Some("dst".to_string())));
        let d = super::backup_use("b", None, "");
        assert_eq!(d.as_ref(), "backup-uses/b/!deleting");
        assert_eq!(super::parse_backup_use(&d), Some(None));
    }
}
