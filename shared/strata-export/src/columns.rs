//! The Parquet schema of an export, and building Arrow batches for it.
//!
//! Key attributes are always typed columns. Every other top-level
//! attribute whose values all share one scalar type across the export gets
//! a typed column too: S as UTF-8, B as binary, BOOL as boolean, N as
//! decimal128(38, s) when every value fits exactly with one scale s (else as
//! a UTF-8 string of the exact number). Other attributes (maps, lists, sets,
//! NULL, mixed types) live only in the whole item, kept in DynamoDB JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use strata_engine::{Item, KeySchema, Value};

/// What one attribute's values have been so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S,
    B,
    Bool,
    N {
        scale: u32,
        int_digits: u32,
    },
    /// Not one scalar type: no typed column.
    Other,
}

impl Kind {
    fn of(v: &Value) -> Kind {
        match v {
            Value::S(_) => Kind::S,
            Value::B(_) => Kind::B,
            Value::Bool(_) => Kind::Bool,
            Value::N(n) => Kind::N {
                scale: n.scale(),
                int_digits: n.integer_digits(),
            },
            _ => Kind::Other,
        }
    }

    fn merge(self, o: Kind) -> Kind {
        match (self, o) {
            (
                Kind::N { scale, int_digits },
                Kind::N {
                    scale: s2,
                    int_digits: i2,
                },
            ) => Kind::N {
                scale: scale.max(s2),
                int_digits: int_digits.max(i2),
            },
            (a, b) if a == b => a,
            _ => Kind::Other,
        }
    }

    fn data_type(self) -> Option<DataType> {
        match self {
            Kind::S => Some(DataType::Utf8),
            Kind::B => Some(DataType::Binary),
            Kind::Bool => Some(DataType::Boolean),
            Kind::N { scale, int_digits } if scale + int_digits <= 38 => {
                Some(DataType::Decimal128(38, scale as i8))
            }
            Kind::N { .. } => Some(DataType::Utf8),
            Kind::Other => None,
        }
    }
}

/// Attribute kinds seen across an export.
#[derive(Debug, Default, Clone)]
pub struct Inference {
    kinds: BTreeMap<String, Kind>,
}

impl Inference {
    pub fn observe(&mut self, item: &Item) {
        for (name, v) in item {
            let k = Kind::of(v);
            match self.kinds.get_mut(name) {
                Some(seen) => *seen = seen.merge(k),
                None => {
                    self.kinds.insert(name.clone(), k);
                }
            }
        }
    }

    /// Adds what another part of the export saw.
    pub fn merge(&mut self, other: &Inference) {
        for (name, k) in &other.kinds {
            match self.kinds.get_mut(name) {
                Some(seen) => *seen = seen.merge(*k),
                None => {
                    self.kinds.insert(name.clone(), *k);
                }
            }
        }
    }

    /// The typed columns: key attributes first, then the others by name,
    /// skipping any whose name the export's own columns use.
    pub fn columns(&self, keys: &KeySchema, reserved: &[&str]) -> Vec<Column> {
        let mut key_names = vec![keys.hash.name.clone()];
        if let Some(r) = &keys.range {
            key_names.push(r.name.clone());
        }
        // Names compare case-insensitively, as DuckDB and Spark do: the
        // first of colliding names gets the column, the rest live only in
        // the item JSON (as does anything named like the export's own columns).
        let mut taken: std::collections::HashSet<String> =
            reserved.iter().map(|r| r.to_lowercase()).collect();
        let mut out = Vec::new();
        let others = self.kinds.iter().filter(|(n, _)| !key_names.contains(n));
        let keys = key_names
            .iter()
            .map(|n| (n, self.kinds.get(n).copied().unwrap_or(Kind::S)));
        for (name, kind) in keys.chain(others.map(|(n, k)| (n, *k))) {
            if let Some(dt) = kind.data_type() {
                if taken.insert(name.to_lowercase()) {
                    out.push(Column::new(name, kind, dt));
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    kind: Kind,
    pub data_type: DataType,
}

impl Column {
    fn new(name: &str, kind: Kind, data_type: DataType) -> Self {
        Column {
            name: name.to_string(),
            kind,
            data_type,
        }
    }
}

/// An extra string or timestamp column of an export (the item as JSON, the
/// change kind…), filled by the caller row by row.
pub enum Extra {
    Text(&'static str),
    Time(&'static str),
}

pub fn schema(columns: &[Column], extras: &[Extra]) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.clone(), true))
        .collect();
    for e in extras {
        fields.push(match e {
            Extra::Text(n) => Field::new(*n, DataType::Utf8, true),
            Extra::Time(n) => Field::new(
                *n,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        });
    }
    Arc::new(Schema::new(fields))
}

enum Builder {
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Bool(BooleanBuilder),
    Dec(Decimal128Builder, u32),
    NumText(StringBuilder),
    Time(TimestampMicrosecondBuilder),
}

/// Accumulates rows, then yields a batch.
pub struct Rows {
    schema: SchemaRef,
    columns: Vec<Column>,
    builders: Vec<Builder>,
    extras: usize,
    pub len: usize,
}

/// One extra column's value in a row.
pub enum ExtraValue<'a> {
    Text(Option<&'a str>),
    Time(Option<i64>),
}

impl Rows {
    pub fn new(columns: &[Column], extras: &[Extra]) -> Result<Rows, ArrowError> {
        let mut builders = Vec::new();
        for c in columns {
            builders.push(match (c.kind, &c.data_type) {
                (Kind::N { scale, .. }, DataType::Decimal128(..)) => Builder::Dec(
                    Decimal128Builder::new().with_precision_and_scale(38, scale as i8)?,
                    scale,
                ),
                (Kind::N { .. }, _) => Builder::NumText(StringBuilder::new()),
                (Kind::S, _) => Builder::Str(StringBuilder::new()),
                (Kind::B, _) => Builder::Bin(BinaryBuilder::new()),
                (Kind::Bool, _) => Builder::Bool(BooleanBuilder::new()),
                (Kind::Other, _) => Builder::Str(StringBuilder::new()),
            });
        }
        for e in extras {
            builders.push(match e {
                Extra::Text(_) => Builder::Str(StringBuilder::new()),
                Extra::Time(_) => {
                    Builder::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                }
            });
        }
        Ok(Rows {
            schema: schema(columns, extras),
            columns: columns.to_vec(),
            builders,
            extras: extras.len(),
            len: 0,
        })
    }

    /// Appends a row: the typed columns from `item` (all null when None),
    /// then the extras in order.
    pub fn push(&mut self, item: Option<&Item>, extras: &[ExtraValue<'_>]) {
        let n = self.columns.len();
        for (c, b) in self.columns.iter().zip(self.builders.iter_mut()) {
            let v = item.and_then(|i| i.get(&c.name));
            match (b, v) {
                (Builder::Str(b), Some(Value::S(s))) => b.append_value(s),
                (Builder::Str(b), _) => b.append_null(),
                (Builder::Bin(b), Some(Value::B(x))) => b.append_value(x),
                (Builder::Bin(b), _) => b.append_null(),
                (Builder::Bool(b), Some(Value::Bool(x))) => b.append_value(*x),
                (Builder::Bool(b), _) => b.append_null(),
                (Builder::Dec(b, scale), Some(Value::N(x))) => match x.to_scaled_i128(*scale) {
                    Some(v) => b.append_value(v),
                    None => b.append_null(),
                },
                (Builder::Dec(b, _), _) => b.append_null(),
                (Builder::NumText(b), Some(Value::N(x))) => b.append_value(x.to_string()),
                (Builder::NumText(b), _) => b.append_null(),
                (Builder::Time(b), _) => b.append_null(),
            }
        }
        for (b, e) in self.builders[n..].iter_mut().zip(extras) {
            match (b, e) {
                (Builder::Str(b), ExtraValue::Text(Some(t))) => b.append_value(t),
                (Builder::Time(b), ExtraValue::Time(Some(t))) => b.append_value(*t),
                (Builder::Str(b), _) => b.append_null(),
                (Builder::Time(b), _) => b.append_null(),
                _ => {}
            }
        }
        debug_assert_eq!(self.builders.len(), n + self.extras);
        self.len += 1;
    }

    /// The rows so far as a batch; the builders start over.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Str(b) | Builder::NumText(b) => Arc::new(b.finish()),
                    Builder::Bin(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Dec(b, _) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.len = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
