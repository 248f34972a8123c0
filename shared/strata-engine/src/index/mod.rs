//! Secondary indexes: what an index is, and how a base item maps to its
//! index entry.
//!
//! Every index, global or local, is stored as a table of its own (an
//! *index table*, named `<table>!<index>`: `!` is not allowed in table
//! names, so no user table can collide with one and no API request can
//! name one). Its key is the index's partition key and one synthetic sort
//! key, [`ENTRY_KEY`], a binary holding the order-preserving encoding of
//! (index sort key, base primary key): entries are ordered by the index
//! sort key, then by the base table's key, and two base items with equal
//! index keys are two entries. An entry holds the projected attributes and
//! every key attribute of the table and the index.
//!
//! Index tables are maintained from the base table's log by the
//! [`follower`] (see ARCHITECTURE.md, "Secondary indexes").

pub mod follower;

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::keys::{begins_with_prefix, encode_component, encode_key, prefix_end};
use crate::ops::SortKeyCondition;
use crate::value::{Item, ItemKey, KeyAttribute, KeySchema, KeyType, KeyValue, Value};

/// The synthetic sort-key attribute of an index table (see the module
/// documentation). It starts with a NUL byte, which no attribute name a
/// client sends in practice has; it is never shown to clients.
pub const ENTRY_KEY: &str = "\u{0}strata:entry";

/// Most global and local secondary indexes a table may have.
pub const MAX_GLOBAL_INDEXES: usize = 20;
pub const MAX_LOCAL_INDEXES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    Global,
    Local,
}

/// Which attributes an index entry holds besides the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

/// Where an index is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexStatus {
    /// Being filled from the table's items (UpdateTable added it to a
    /// table that may hold data).
    Creating,
    Active,
}

/// One secondary index, as the table descriptor records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// Random id of this index, given when it is created: an index dropped
    /// and added again under the same name is another index, and never
    /// uses the first one's table or cursors.
    #[serde(default)]
    pub id: String,
    pub kind: IndexKind,
    pub key_schema: KeySchema,
    pub projection: Projection,
    pub status: IndexStatus,
    /// Settings the engine does not interpret (provisioned throughput…).
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// The name of the table holding `index` of `table`.
pub fn index_table_name(table: &str, index: &str) -> String {
    format!("{table}!{index}")
}

/// Whether a stored table is an index table (see [`index_table_name`]).
pub fn is_index_table(name: &str) -> bool {
    name.contains('!')
}

impl IndexDef {
    /// The key schema of this index's table.
    pub fn table_schema(&self) -> KeySchema {
        KeySchema {
            hash: self.key_schema.hash.clone(),
            range: Some(KeyAttribute {
                name: ENTRY_KEY.to_string(),
                key_type: KeyType::B,
            }),
        }
    }

    /// The index key of `item`: None when the item is not in the index
    /// (it lacks an index key attribute, or one has another type: sparse).
    pub fn key_of(&self, item: &Item) -> Option<(KeyValue, Option<KeyValue>)> {
        // Writes refuse such values (`check_index_keys`), but an item may
        // predate the index, or come from a writer or region that did not
        // know it yet: a value DynamoDB could not index is not indexed.
        let value = |a: &KeyAttribute, limit: usize| {
            let v = item.get(&a.name)?;
            if v.size() > limit {
                return None;
            }
            match (a.key_type, v) {
                (KeyType::S, Value::S(s)) if !s.is_empty() => Some(KeyValue::S(s.clone())),
                (KeyType::N, Value::N(n)) => Some(KeyValue::N(n.clone())),
                (KeyType::B, Value::B(b)) if !b.is_empty() => Some(KeyValue::B(b.clone())),
                _ => None,
            }
        };
        let hash = value(&self.key_schema.hash, crate::value::MAX_HASH_KEY_SIZE)?;
        let range = match &self.key_schema.range {
            Some(r) => Some(value(r, crate::value::MAX_RANGE_KEY_SIZE)?),
            None => None,
        };
        Some((hash, range))
    }

    /// The key of the entry `item` (whose base key is `base`) has in the
    /// index table, if it is in the index.
    pub fn entry_key(&self, item: &Item, base: &ItemKey) -> Option<ItemKey> {
        let (hash, range) = self.key_of(item)?;
        Some(ItemKey {
            hash,
            range: Some(KeyValue::B(entry_sort_key(range.as_ref(), base))),
        })
    }

    /// The entry of `item` in the index table, if it is in the index.
    pub fn entry(&self, base_schema: &KeySchema, item: &Item) -> Option<Item> {
        let base = base_schema.key_of(item).ok()?;
        let key = self.entry_key(item, &base)?;
        let keys = self.key_attributes(base_schema);
        let mut entry: Item = match &self.projection {
            Projection::All => item.clone(),
            Projection::KeysOnly => Item::new(),
            Projection::Include(names) => names
                .iter()
                .filter_map(|n| Some((n.clone(), item.get(n)?.clone())))
                .collect(),
        };
        for k in keys {
            if let Some(v) = item.get(k) {
                entry.insert(k.to_string(), v.clone());
            }
        }
        if let Some(KeyValue::B(b)) = key.range {
            entry.insert(ENTRY_KEY.to_string(), Value::B(b));
        }
        Some(entry)
    }

    /// The entry-key attributes alone (what deleting an entry needs).
    pub fn entry_key_item(&self, key: &ItemKey) -> Item {
        self.table_schema().key_item(key)
    }

    /// The names of every key attribute of the table and of the index.
    pub fn key_attributes<'a>(&'a self, base_schema: &'a KeySchema) -> Vec<&'a str> {
        let mut out = vec![base_schema.hash.name.as_str()];
        out.extend(base_schema.range.as_ref().map(|r| r.name.as_str()));
        for a in self.key_schema.attributes() {
            if !out.contains(&a.name.as_str()) {
                out.push(&a.name);
            }
        }
        out
    }

    /// Whether the index holds attribute `name` (a projected or key attribute).
    pub fn projects(&self, base_schema: &KeySchema, name: &str) -> bool {
        match &self.projection {
            Projection::All => true,
            Projection::KeysOnly => self.key_attributes(base_schema).contains(&name),
            Projection::Include(names) => {
                names.iter().any(|n| n == name) || self.key_attributes(base_schema).contains(&name)
            }
        }
    }

    /// The index-table key of a position given as an item holding the
    /// table's and the index's key attributes (a LastEvaluatedKey).
    pub fn position(&self, base_schema: &KeySchema, key: &Item) -> Option<ItemKey> {
        let base = base_schema.key_of(key).ok()?;
        self.entry_key(key, &base)
    }

    /// Encoded-key bounds of the entries with index partition key `hash`
    /// whose index sort key satisfies `cond`.
    pub fn bounds(
        &self,
        hash: &KeyValue,
        cond: &SortKeyCondition,
    ) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let mut prefix = Vec::new();
        encode_component(hash, &mut prefix);
        // An entry's encoded key is the prefix, then its sort key (a
        // binary) escaped: bytes as they are, 0x00 as 0x00 0xFF. Escaping
        // keeps byte order, so the entries whose sort key starts with `p`
        // are exactly those whose encoded key starts with `at(p)`.
        let at = |raw: &[u8]| {
            let mut k = prefix.clone();
            for &b in raw {
                k.push(b);
                if b == 0 {
                    k.push(0xff);
                }
            }
            k
        };
        let enc = |v: &KeyValue| {
            let mut out = Vec::new();
            encode_component(v, &mut out);
            out
        };
        let past = |k: Vec<u8>| prefix_end(&k).map_or(Bound::Unbounded, Bound::Excluded);
        let end = || past(prefix.clone());
        match cond {
            SortKeyCondition::All => (Bound::Included(prefix.clone()), end()),
            SortKeyCondition::Eq(v) => (Bound::Included(at(&enc(v))), past(at(&enc(v)))),
            SortKeyCondition::Lt(v) => (
                Bound::Included(prefix.clone()),
                Bound::Excluded(at(&enc(v))),
            ),
            SortKeyCondition::Le(v) => (Bound::Included(prefix.clone()), past(at(&enc(v)))),
            // The first key past every entry whose sort key starts with
            // enc(v) (an encoded key never ends in 0xFF bytes only).
            SortKeyCondition::Gt(v) => match prefix_end(&at(&enc(v))) {
                Some(k) => (Bound::Included(k), end()),
                None => (Bound::Excluded(at(&enc(v))), end()),
            },
            SortKeyCondition::Ge(v) => (Bound::Included(at(&enc(v))), end()),
            SortKeyCondition::Between(a, b) => (Bound::Included(at(&enc(a))), past(at(&enc(b)))),
            SortKeyCondition::BeginsWith(v) => {
                let p = at(&begins_with_prefix(v));
                (Bound::Included(p.clone()), past(p))
            }
        }
    }
}

/// An entry's synthetic sort key: the index sort key (if any), then the
/// base key, each self-delimiting and order-preserving.
fn entry_sort_key(range: Option<&KeyValue>, base: &ItemKey) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(r) = range {
        encode_component(r, &mut out);
    }
    out.extend(encode_key(base));
    out
}

/// Checks the index key attributes a written item carries: an attribute
/// that is an index key must have the index's type and not be empty (an
/// item without it is simply not in that index). DynamoDB's words.
pub fn check_index_keys(indexes: &[IndexDef], item: &Item) -> Result<(), String> {
    for ix in indexes {
        for a in ix.key_schema.attributes() {
            let Some(v) = item.get(&a.name) else {
                continue;
            };
            let ok = matches!(
                (a.key_type, v),
                (KeyType::S, Value::S(_)) | (KeyType::N, Value::N(_)) | (KeyType::B, Value::B(_))
            );
            if !ok {
                return Err(format!(
                    "One or more parameter values were invalid: Type mismatch for Index Key {} Expected: {:?} Actual: {} IndexName: {}",
                    a.name,
                    a.key_type,
                    v.type_name(),
                    ix.name
                ));
            }
            let empty = match v {
                Value::S(s) => s.is_empty().then_some("string"),
                Value::B(b) => b.is_empty().then_some("binary"),
                _ => None,
            };
            if let Some(kind) = empty {
                return Err(format!(
                    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty {kind} value. IndexName: {}, IndexKey: {}",
                    ix.name, a.name
                ));
            }
            let is_hash = std::ptr::eq(a, &ix.key_schema.hash);
            if is_hash && v.size() > crate::value::MAX_HASH_KEY_SIZE {
                return Err(crate::value::KeyError::HashTooLarge.to_string());
            }
            if !is_hash && v.size() > crate::value::MAX_RANGE_KEY_SIZE {
                return Err(crate::value::KeyError::RangeTooLarge.to_string());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::Number;

    fn def(range: Option<KeyType>) -> IndexDef {
        IndexDef {
            name: "ix".into(),
            kind: IndexKind::Global,
            key_schema: KeySchema {
                hash: KeyAttribute {
                    name: "g".into(),
                    key_type: KeyType::S,
                },
                range: range.map(|t| KeyAttribute {
                    name: "r".into(),
                    key_type: t,
                }),
            },
            projection: Projection::KeysOnly,
            status: IndexStatus::Active,
            id: String::new(),
            meta: serde_json::Value::Null,
        }
    }

    fn base() -> KeySchema {
        KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: None,
        }
    }

    fn item(pk: &str, g: &str, r: Option<Value>) -> Item {
        let mut i = Item::new();
        i.insert("pk".into(), Value::S(pk.into()));
        i.insert("g".into(), Value::S(g.into()));
        i.insert("x".into(), Value::Bool(true));
        if let Some(r) = r {
            i.insert("r".into(), r);
        }
        i
    }

    fn n(v: &str) -> Value {
        Value::N(Number::parse(v).unwrap())
    }

    fn encoded(d: &IndexDef, i: &Item) -> Vec<u8> {
        let key = d
            .table_schema()
            .key_of(&d.entry(&base(), i).unwrap())
            .unwrap();
        encode_key(&key)
    }

    fn within(k: &[u8], (lo, hi): &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
        let above = match lo {
            Bound::Included(l) => k >= l.as_slice(),
            Bound::Excluded(l) => k > l.as_slice(),
            Bound::Unbounded => true,
        };
        let below = match hi {
            Bound::Included(h) => k <= h.as_slice(),
            Bound::Excluded(h) => k < h.as_slice(),
            Bound::Unbounded => true,
        };
        above && below
    }

    #[test]
    fn entries_order_by_index_sort_key_then_base_key() {
        let d = def(Some(KeyType::N));
        let values = ["-10", "-1.5", "0", "0.25", "3", "100"];
        let mut keys = Vec::new();
        for v in values {
            for pk in ["a", "a\u{0}", "b"] {
                keys.push(encoded(&d, &item(pk, "h", Some(n(v)))));
            }
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn bounds_select_exactly_the_matching_entries() {
        let d = def(Some(KeyType::N));
        let values = ["-10", "-1.5", "0", "0.25", "3", "100"];
        let num = |v: &str| KeyValue::N(Number::parse(v).unwrap());
        let conds = [
            (SortKeyCondition::Eq(num("0")), vec!["0"]),
            (SortKeyCondition::Lt(num("0")), vec!["-10", "-1.5"]),
            (SortKeyCondition::Le(num("0")), vec!["-10", "-1.5", "0"]),
            (SortKeyCondition::Gt(num("0")), vec!["0.25", "3", "100"]),
            (SortKeyCondition::Ge(num("3")), vec!["3", "100"]),
            (
                SortKeyCondition::Between(num("-1.5"), num("3")),
                vec!["-1.5", "0", "0.25", "3"],
            ),
            (SortKeyCondition::All, values.to_vec()),
        ];
        for (cond, want) in conds {
            let b = d.bounds(&KeyValue::S("h".into()), &cond);
            for v in values {
                for pk in ["a", "a\u{0}", "zz"] {
                    let k = encoded(&d, &item(pk, "h", Some(n(v))));
                    assert_eq!(within(&k, &b), want.contains(&v), "{cond:?} {v} {pk:?}");
                    let other = encoded(&d, &item(pk, "h2", Some(n(v))));
                    assert!(!within(&other, &b));
                }
            }
        }
        let d = def(Some(KeyType::S));
        let b = d.bounds(
            &KeyValue::S("h".into()),
            &SortKeyCondition::BeginsWith(KeyValue::S("ab".into())),
        );
        for (s, inside) in [
            ("a", false),
            ("ab", true),
            ("ab\u{0}", true),
            ("abc", true),
            ("ac", false),
        ] {
            let k = encoded(&d, &item("p", "h", Some(Value::S(s.into()))));
            assert_eq!(within(&k, &b), inside, "{s:?}");
        }
    }

    #[test]
    fn sparse_items_and_wrong_types_are_not_in_the_index() {
        let d = def(Some(KeyType::N));
        assert!(d.entry(&base(), &item("a", "h", None)).is_none());
        assert!(d
            .entry(&base(), &item("a", "h", Some(Value::S("1".into()))))
            .is_none());
        assert!(d.entry(&base(), &item("a", "", Some(n("1")))).is_none());
        let e = d.entry(&base(), &item("a", "h", Some(n("1")))).unwrap();
        // KEYS_ONLY: the table's and the index's keys, and the entry key.
        assert_eq!(e.len(), 4);
        assert!(!e.contains_key("x"));
        assert!(check_index_keys(
            std::slice::from_ref(&d),
            &item("a", "h", Some(Value::S("1".into())))
        )
        .is_err());
        assert!(check_index_keys(std::slice::from_ref(&d), &item("a", "", Some(n("1")))).is_err());
        assert!(check_index_keys(std::slice::from_ref(&d), &item("a", "h", None)).is_ok());
        let long = item("a", &"x".repeat(2049), Some(n("1")));
        assert!(check_index_keys(std::slice::from_ref(&d), &long)
            .unwrap_err()
            .contains("2048"));
        assert!(d.entry(&base(), &long).is_none(), "too long to index");
    }
}
