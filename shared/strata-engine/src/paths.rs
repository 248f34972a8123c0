//! Where every object lives. One place, so the layout is decided once.
//!
//! ```text
//! tables/<table>/schema/<v:020>                          table descriptor versions (create-next)
//! tables/<table>/<incarnation>/p<part:04>/log/<seq:020>.seg   one committed batch (immutable)
//! tables/<table>/<incarnation>/p<part:04>/runs/<id>.sst       sorted run (immutable)
//! tables/<table>/<incarnation>/p<part:04>/manifest/<v:020>    live runs + compacted_through (create-next)
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
}
