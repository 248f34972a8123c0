//! Consumed capacity, as `ReturnConsumedCapacity` reports it: read and
//! write units, and what a write costs each secondary index it touches
//! (DynamoDB Local 3.3.0's accounting: an index entry put costs its size
//! in write units, a delete 1, a move both; an index the write leaves
//! unchanged costs nothing).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};
use strata_engine::value::item_size;
use strata_engine::{IndexDef, IndexKind, Item, TableDescriptor, WriteOutcome};

use crate::choices::ReturnCapacity;

/// Read units: 4 KB per unit, rounded up; eventual reads cost half.
pub(crate) fn read_units(bytes: usize, strong: bool) -> f64 {
    let units = (bytes.max(1) as f64 / 4096.0).ceil();
    if strong {
        units
    } else {
        units / 2.0
    }
}

/// Write units: 1 KB per unit, rounded up.
pub(crate) fn write_units(bytes: usize) -> f64 {
    (bytes.max(1) as f64 / 1024.0).ceil()
}

/// Units consumed by one request on one table: the table's own, and each
/// index's.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Capacity {
    table: f64,
    global: BTreeMap<String, f64>,
    local: BTreeMap<String, f64>,
}

impl Capacity {
    pub fn table(units: f64) -> Self {
        Self {
            table: units,
            ..Self::default()
        }
    }

    /// A read through index `ix`: its units are the index's.
    pub fn index(ix: &IndexDef, units: f64) -> Self {
        let mut c = Self::default();
        c.charge(ix, units);
        c
    }

    fn charge(&mut self, ix: &IndexDef, units: f64) {
        let group = match ix.kind {
            IndexKind::Global => &mut self.global,
            IndexKind::Local => &mut self.local,
        };
        *group.entry(ix.name.clone()).or_default() += units;
    }

    /// What a committed write cost the table and each of its indexes.
    pub fn of_write(d: &TableDescriptor, o: &WriteOutcome) -> Self {
        let size = |i: &Option<Item>| i.as_ref().map_or(0, item_size);
        let mut c = Self::table(write_units(size(&o.old).max(size(&o.new))));
        for ix in &d.indexes {
            let entry = |i: &Option<Item>| i.as_ref().and_then(|i| ix.entry(&d.key_schema, i));
            let units = match (entry(&o.old), entry(&o.new)) {
                (None, None) => 0.0,
                (Some(_), None) => 1.0,
                (None, Some(new)) => write_units(item_size(&new)),
                (Some(old), Some(new)) if old == new => 0.0,
                (Some(old), Some(new)) => {
                    let schema = ix.table_schema();
                    let moved = schema.key_of(&old).ok() != schema.key_of(&new).ok();
                    write_units(item_size(&new)) + if moved { 1.0 } else { 0.0 }
                }
            };
            if units > 0.0 {
                c.charge(ix, units);
            }
        }
        c
    }

    pub fn add(&mut self, o: &Capacity) {
        self.table += o.table;
        for (k, v) in &o.global {
            *self.global.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.local {
            *self.local.entry(k.clone()).or_default() += v;
        }
    }

    fn total(&self) -> f64 {
        self.table + self.global.values().sum::<f64>() + self.local.values().sum::<f64>()
    }

    /// The ConsumedCapacity member for `table`, if `mode` asks for one.
    pub fn json(&self, table: &str, mode: ReturnCapacity) -> Option<Json> {
        match mode {
            ReturnCapacity::None => None,
            ReturnCapacity::Total => {
                Some(json!({ "TableName": table, "CapacityUnits": self.total() }))
            }
            ReturnCapacity::Indexes => {
                let mut out = json!({
                    "TableName": table,
                    "CapacityUnits": self.total(),
                    "Table": { "CapacityUnits": self.table },
                });
                let group = |g: &BTreeMap<String, f64>| {
                    Json::Object(
                        g.iter()
                            .map(|(k, v)| (k.clone(), json!({ "CapacityUnits": v })))
                            .collect::<Map<String, Json>>(),
                    )
                };
                if !self.global.is_empty() {
                    out["GlobalSecondaryIndexes"] = group(&self.global);
                }
                if !self.local.is_empty() {
                    out["LocalSecondaryIndexes"] = group(&self.local);
                }
                Some(out)
            }
        }
    }
}

/// `ReturnConsumedCapacity` of a request on a table alone.
pub(crate) fn consumed(table: &str, units: f64, mode: ReturnCapacity) -> Option<Json> {
    Capacity::table(units).json(table, mode)
}
