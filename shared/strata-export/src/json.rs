//! DynamoDB JSON, written straight from engine values (no intermediate
//! `serde_json::Value`): `{"S": "…"}`, `{"N": "…"}`, binary in base64.

use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use strata_engine::{Item, Value};

/// An item as a DynamoDB JSON map.
pub struct ItemJson<'a>(pub &'a Item);

struct ValueJson<'a>(&'a Value);

struct Many<'a, T, F: Fn(&'a T) -> String>(&'a [T], F);

impl<'a, T, F: Fn(&'a T) -> String> Serialize for Many<'a, T, F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&(self.1)(v))?;
        }
        seq.end()
    }
}

struct List<'a>(&'a [Value]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&ValueJson(v))?;
        }
        seq.end()
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

impl Serialize for ItemJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, &ValueJson(v))?;
        }
        map.end()
    }
}

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Value::S(v) => map.serialize_entry("S", v)?,
            Value::N(n) => map.serialize_entry("N", &n.to_string())?,
            Value::B(b) => map.serialize_entry("B", &b64(b))?,
            Value::Bool(b) => map.serialize_entry("BOOL", b)?,
            Value::Null => map.serialize_entry("NULL", &true)?,
            Value::M(m) => map.serialize_entry("M", &ItemJson(m))?,
            Value::L(l) => map.serialize_entry("L", &List(l))?,
            Value::SS(v) => map.serialize_entry("SS", v)?,
            Value::NS(v) => map.serialize_entry("NS", &Many(v, |n| n.to_string()))?,
            Value::BS(v) => map.serialize_entry("BS", &Many(v, |b: &Vec<u8>| b64(b)))?,
        }
        map.end()
    }
}

/// The item as a DynamoDB JSON string.
pub fn item_json(item: &Item) -> String {
    serde_json::to_string(&ItemJson(item)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_engine::Number;

    #[test]
    fn writes_every_type() {
        let mut m = Item::new();
        m.insert("x".into(), Value::S("y\"z".into()));
        let item = Item::from([
            ("s".to_string(), Value::S("a".into())),
            ("n".to_string(), Value::N(Number::parse("1.50").unwrap())),
            ("b".to_string(), Value::B(vec![0, 1])),
            ("t".to_string(), Value::Bool(true)),
            ("z".to_string(), Value::Null),
            ("m".to_string(), Value::M(m)),
            ("l".to_string(), Value::L(vec![Value::Null])),
            ("ss".to_string(), Value::SS(vec!["p".into()])),
            ("ns".to_string(), Value::NS(vec![Number::from_i64(2)])),
            ("bs".to_string(), Value::BS(vec![vec![255]])),
        ]);
        let j: serde_json::Value = serde_json::from_str(&item_json(&item)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "s": {"S": "a"}, "n": {"N": "1.5"}, "b": {"B": "AAE="}, "t": {"BOOL": true},
                "z": {"NULL": true}, "m": {"M": {"x": {"S": "y\"z"}}}, "l": {"L": [{"NULL": true}]},
                "ss": {"SS": ["p"]}, "ns": {"NS": ["2"]}, "bs": {"BS": ["/w=="]}
            })
        );
    }
}
