//! DynamoDB's data model: attribute values, items, keys and item size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::number::Number;

/// One attribute value, in DynamoDB's ten types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(BTreeMap<String, Value>),
    L(Vec<Value>),
    SS(Vec<String>),
    NS(Vec<Number>),
    BS(Vec<Vec<u8>>),
}

/// An item: attribute name to value.
pub type Item = BTreeMap<String, Value>;

/// Largest item DynamoDB stores, in bytes as [`item_size`] counts them.
pub const MAX_ITEM_SIZE: usize = 400 * 1024;
/// Largest partition-key and sort-key values, in bytes.
pub const MAX_HASH_KEY_SIZE: usize = 2048;
pub const MAX_RANGE_KEY_SIZE: usize = 1024;

impl Value {
    /// Size of the value as DynamoDB bills it (without the attribute name).
    pub fn size(&self) -> usize {
        match self {
            Value::S(s) => s.len(),
            Value::N(n) => number_size(n),
            Value::B(b) => b.len(),
            Value::Bool(_) | Value::Null => 1,
            // 3 bytes per List or Map, plus 1 byte per element.
            Value::M(m) => 3 + m.iter().map(|(k, v)| k.len() + v.size() + 1).sum::<usize>(),
            Value::L(l) => 3 + l.iter().map(|v| v.size() + 1).sum::<usize>(),
            Value::SS(v) => v.iter().map(|s| s.len()).sum(),
            Value::NS(v) => v.iter().map(number_size).sum(),
            Value::BS(v) => v.iter().map(|b| b.len()).sum(),
        }
    }

    /// DynamoDB's type descriptor ("S", "N", "BOOL", …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::S(_) => "S",
            Value::N(_) => "N",
            Value::B(_) => "B",
            Value::Bool(_) => "BOOL",
            Value::Null => "NULL",
            Value::M(_) => "M",
            Value::L(_) => "L",
            Value::SS(_) => "SS",
            Value::NS(_) => "NS",
            Value::BS(_) => "BS",
        }
    }
}

fn number_size(n: &Number) -> usize {
    n.significant_digits().div_ceil(2) + 1
}

/// Deepest nesting DynamoDB accepts for a document attribute.
pub const MAX_NESTING: usize = 32;

/// How deeply the item's maps and lists nest (a flat item is 0). Iterative,
/// so a hostile item cannot overflow the stack while being measured.
pub fn nesting_depth(item: &Item) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = item.values().map(|v| (v, 0)).collect();
    while let Some((v, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match v {
            Value::M(m) => stack.extend(m.values().map(|c| (c, depth + 1))),
            Value::L(l) => stack.extend(l.iter().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Size of an item as DynamoDB computes it: names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// Memory a decoded item holds, as the caches and the log tails charge it:
/// twice its DynamoDB size (each name and value in its own allocation, the
/// map's nodes) plus a fixed overhead. For the levels bench's ~1 KB items
/// that is within a tenth of what the allocator counts.
pub fn item_footprint(item: &Item) -> usize {
    item_size(item) * 2 + 64
}

/// The scalar types a key attribute may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    S,
    N,
    B,
}

/// One key attribute of a table: its name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    pub name: String,
    pub key_type: KeyType,
}

/// A table's primary key: a partition (HASH) key and an optional sort (RANGE) key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub hash: KeyAttribute,
    pub range: Option<KeyAttribute>,
}

/// A key attribute's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    S(String),
    N(Number),
    B(Vec<u8>),
}

impl KeyValue {
    pub fn key_type(&self) -> KeyType {
        match self {
            KeyValue::S(_) => KeyType::S,
            KeyValue::N(_) => KeyType::N,
            KeyValue::B(_) => KeyType::B,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            KeyValue::S(s) => Value::S(s.clone()),
            KeyValue::N(n) => Value::N(n.clone()),
            KeyValue::B(b) => Value::B(b.clone()),
        }
    }

    fn size(&self) -> usize {
        match self {
            KeyValue::S(s) => s.len(),
            KeyValue::N(n) => number_size(n),
            KeyValue::B(b) => b.len(),
        }
    }
}

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub hash: KeyValue,
    pub range: Option<KeyValue>,
}

/// Why a key or item does not fit a table's schema. The messages follow
/// DynamoDB's ValidationException wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("One of the required keys was not given a value")]
    Missing,
    #[error("One or more parameter values were invalid: Type mismatch for key {name} expected: {expected:?} actual: {actual}")]
    TypeMismatch {
        name: String,
        expected: KeyType,
        actual: &'static str,
    },
    #[error("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {kind} value. Key: {name}")]
    Empty { name: String, kind: &'static str },
    #[error("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of 2048 bytes")]
    HashTooLarge,
    #[error("One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes")]
    RangeTooLarge,
    #[error("The provided key element does not match the schema")]
    SchemaMismatch,
}

impl KeySchema {
    /// The key attributes: the partition key, then the sort key if any.
    pub fn attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        std::iter::once(&self.hash).chain(self.range.as_ref())
    }

    fn key_value(attr: &KeyAttribute, v: Option<&Value>) -> Result<KeyValue, KeyError> {
        let v = v.ok_or(KeyError::Missing)?;
        let kv = match (attr.key_type, v) {
            (KeyType::S, Value::S(s)) => KeyValue::S(s.clone()),
            (KeyType::N, Value::N(n)) => KeyValue::N(n.clone()),
            (KeyType::B, Value::B(b)) => KeyValue::B(b.clone()),
            (expected, other) => {
                return Err(KeyError::TypeMismatch {
                    name: attr.name.clone(),
                    expected,
                    actual: other.type_name(),
                })
            }
        };
        let empty = match &kv {
            KeyValue::S(s) => s.is_empty().then_some("string"),
            KeyValue::B(b) => b.is_empty().then_some("binary"),
            KeyValue::N(_) => None,
        };
        if let Some(kind) = empty {
            return Err(KeyError::Empty {
                name: attr.name.clone(),
                kind,
            });
        }
        Ok(kv)
    }

    /// The key of an item, checked against the schema.
    pub fn key_of(&self, item: &Item) -> Result<ItemKey, KeyError> {
        let hash = Self::key_value(&self.hash, item.get(&self.hash.name))?;
        let range = match &self.range {
            Some(r) => Some(Self::key_value(r, item.get(&r.name))?),
            None => None,
        };
        let key = ItemKey { hash, range };
        self.check_sizes(&key)?;
        Ok(key)
    }

    /// A key given on its own (GetItem's `Key`): exactly the key attributes.
    pub fn key_from_attributes(&self, attrs: &Item) -> Result<ItemKey, KeyError> {
        let expected = 1 + usize::from(self.range.is_some());
        if attrs.len() != expected {
            return Err(KeyError::SchemaMismatch);
        }
        self.key_of(attrs).map_err(|e| match e {
            KeyError::Missing | KeyError::TypeMismatch { .. } => KeyError::SchemaMismatch,
            other => other,
        })
    }

    fn check_sizes(&self, key: &ItemKey) -> Result<(), KeyError> {
        if key.hash.size() > MAX_HASH_KEY_SIZE {
            return Err(KeyError::HashTooLarge);
        }
        // An index entry's synthetic sort key holds a whole base key, and
        // is bounded by the keys it is made of, not by this limit.
        let synthetic = self
            .range
            .as_ref()
            .is_some_and(|r| r.name == crate::index::ENTRY_KEY);
        if !synthetic
            && key
                .range
                .as_ref()
                .is_some_and(|r| r.size() > MAX_RANGE_KEY_SIZE)
        {
            return Err(KeyError::RangeTooLarge);
        }
        Ok(())
    }

    /// The key attributes of `key` as an item (what a delete's tombstone or a
    /// KEYS_ONLY projection carries).
    pub fn key_item(&self, key: &ItemKey) -> Item {
        let mut item = Item::new();
        item.insert(self.hash.name.clone(), key.hash.to_value());
        if let (Some(attr), Some(v)) = (&self.range, &key.range) {
            item.insert(attr.name.clone(), v.to_value());
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> KeySchema {
        KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: Some(KeyAttribute {
                name: "sk".into(),
                key_type: KeyType::N,
            }),
        }
    }

    #[test]
    fn sizes_follow_dynamodb() {
        let mut item = Item::new();
        item.insert("a".into(), Value::S("hello".into())); // 1 + 5
        item.insert("n".into(), Value::N(Number::parse("12345").unwrap())); // 1 + 3 + 1
        item.insert("l".into(), Value::L(vec![Value::Null, Value::Bool(true)])); // 1 + 3 + 2*(1+1)
        item.insert(
            "m".into(),
            Value::M(BTreeMap::from([("k".into(), Value::S("v".into()))])),
        ); // 1 + 3 + (1+1+1)
        assert_eq!(item_size(&item), 6 + 5 + 8 + 7);
    }

    #[test]
    fn keys_are_checked_against_the_schema() {
        let s = schema();
        let mut item = Item::new();
        assert_eq!(s.key_of(&item), Err(KeyError::Missing));
        item.insert("pk".into(), Value::S("".into()));
        item.insert("sk".into(), Value::N(Number::from_i64(1)));
        assert!(matches!(s.key_of(&item), Err(KeyError::Empty { .. })));
        item.insert("pk".into(), Value::N(Number::from_i64(1)));
        assert!(matches!(
            s.key_of(&item),
            Err(KeyError::TypeMismatch { .. })
        ));
        item.insert("pk".into(), Value::S("x".repeat(2049)));
        assert_eq!(s.key_of(&item), Err(KeyError::HashTooLarge));
        item.insert("pk".into(), Value::S("a".into()));
        let key = s.key_of(&item).unwrap();
        assert_eq!(s.key_item(&key), item);
        item.insert("other".into(), Value::Null);
        assert_eq!(s.key_from_attributes(&item), Err(KeyError::SchemaMismatch));
    }
}
