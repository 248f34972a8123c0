//! DynamoDB's expression language: condition, filter, key-condition, update
//! and projection expressions, with `#name` and `:value` placeholders.
//!
//! Parsing resolves placeholders (recording which were used, so a request
//! can be refused for unused or undefined ones, as DynamoDB does) and checks
//! reserved words; evaluation is total over any item.

mod eval;
mod lexer;
mod parser;
pub mod reserved;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use strata_engine::Value;

use crate::error::{ApiError, ApiResult};

pub use eval::{
    apply_update, compare, eval_condition, project, resolve, updated_paths, values_equal, BAD_TYPE,
};
pub use parser::{parse_condition, parse_projection, parse_update};

/// Longest expression DynamoDB accepts, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElem {
    Key(String),
    Index(usize),
}

/// A document path: a top-level attribute, then map keys and list indexes.
pub type DocPath = Vec<PathElem>;

/// A value's type as DynamoDB's longer messages name it (ADD and DELETE
/// operands, AttributeUpdates actions).
pub fn long_type_name(v: &Value) -> &'static str {
    match v {
        Value::S(_) => "STRING",
        Value::N(_) => "NUMBER",
        Value::B(_) => "BINARY",
        Value::Bool(_) => "BOOLEAN",
        Value::Null => "NULL",
        Value::L(_) => "LIST",
        Value::M(_) => "MAP",
        Value::SS(_) => "STRING_SET",
        Value::NS(_) => "NUMBER_SET",
        Value::BS(_) => "BINARY_SET",
    }
}

/// Prints a path as DynamoDB does in messages: `[a, b, [0]]`.
pub fn show_path(p: &DocPath) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|e| match e {
            PathElem::Key(k) => k.clone(),
            PathElem::Index(i) => format!("[{i}]"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(DocPath),
    Value(Value),
    Size(DocPath),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(Operand, CmpOp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Exists(DocPath),
    NotExists(DocPath),
    /// attribute_type(operand, :t): the type name is a value, checked when
    /// parsed.
    Type(Operand, String),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
}

impl Cond {
    /// Every document path the condition reads, in order.
    pub fn paths(&self) -> Vec<&DocPath> {
        fn operand<'a>(o: &'a Operand, out: &mut Vec<&'a DocPath>) {
            if let Operand::Path(p) | Operand::Size(p) = o {
                out.push(p);
            }
        }
        fn walk<'a>(c: &'a Cond, out: &mut Vec<&'a DocPath>) {
            match c {
                Cond::Cmp(a, _, b) | Cond::BeginsWith(a, b) | Cond::Contains(a, b) => {
                    operand(a, out);
                    operand(b, out);
                }
                Cond::Between(a, b, c) => {
                    for o in [a, b, c] {
                        operand(o, out);
                    }
                }
                Cond::In(a, list) => {
                    operand(a, out);
                    for o in list {
                        operand(o, out);
                    }
                }
                Cond::And(a, b) | Cond::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Cond::Not(a) => walk(a, out),
                Cond::Exists(p) | Cond::NotExists(p) => out.push(p),
                Cond::Type(o, _) => operand(o, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    Operand(Operand),
    IfNotExists(DocPath, Box<SetValue>),
    ListAppend(Box<SetValue>, Box<SetValue>),
    Plus(Box<SetValue>, Box<SetValue>),
    Minus(Box<SetValue>, Box<SetValue>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAction {
    Set(DocPath, SetValue),
    Remove(DocPath),
    Add(DocPath, Value),
    Delete(DocPath, Value),
}

/// Every document path an update names or reads.
pub fn update_paths(actions: &[UpdateAction]) -> Vec<&DocPath> {
    fn operand<'a>(o: &'a Operand, out: &mut Vec<&'a DocPath>) {
        if let Operand::Path(p) | Operand::Size(p) = o {
            out.push(p);
        }
    }
    fn value<'a>(v: &'a SetValue, out: &mut Vec<&'a DocPath>) {
        match v {
            SetValue::Operand(o) => operand(o, out),
            SetValue::IfNotExists(p, v) => {
                out.push(p);
                value(v, out);
            }
            SetValue::ListAppend(a, b) | SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
                value(a, out);
                value(b, out);
            }
        }
    }
    let mut out = Vec::new();
    for a in actions {
        out.push(a.path());
        if let UpdateAction::Set(_, v) = a {
            value(v, &mut out);
        }
    }
    out
}

impl UpdateAction {
    pub fn path(&self) -> &DocPath {
        match self {
            UpdateAction::Set(p, _)
            | UpdateAction::Remove(p)
            | UpdateAction::Add(p, _)
            | UpdateAction::Delete(p, _) => p,
        }
    }
}

/// A request's ExpressionAttributeNames and ExpressionAttributeValues, and
/// which of them its expressions used.
pub struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, Value>,
    used_names: RefCell<BTreeSet<String>>,
    used_values: RefCell<BTreeSet<String>>,
}

impl Placeholders {
    pub fn new(names: HashMap<String, String>, values: HashMap<String, Value>) -> Self {
        Self {
            names,
            values,
            used_names: RefCell::default(),
            used_values: RefCell::default(),
        }
    }

    pub fn empty() -> Self {
        Self::new(HashMap::new(), HashMap::new())
    }

    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    pub fn has_values(&self) -> bool {
        !self.values.is_empty()
    }

    fn name(&self, placeholder: &str) -> ApiResult<String> {
        match self.names.get(placeholder) {
            Some(n) => {
                self.used_names.borrow_mut().insert(placeholder.to_string());
                Ok(n.clone())
            }
            None => Err(ApiError::validation(format!(
                "An expression attribute name used in the document path is not defined; attribute name: {placeholder}"
            ))),
        }
    }

    /// Whether ExpressionAttributeValues defines the placeholder.
    fn defines_value(&self, placeholder: &str) -> bool {
        self.values.contains_key(placeholder)
    }

    fn value(&self, placeholder: &str) -> ApiResult<Value> {
        match self.values.get(placeholder) {
            Some(v) => {
                self.used_values.borrow_mut().insert(placeholder.to_string());
                Ok(v.clone())
            }
            None => Err(ApiError::validation(format!(
                "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
            ))),
        }
    }

    /// After every expression of a request is parsed: DynamoDB refuses
    /// placeholders that no expression used.
    pub fn check_all_used(&self) -> ApiResult<()> {
        let unused = |all: Vec<&String>, used: &BTreeSet<String>| {
            let mut v: Vec<String> = all
                .into_iter()
                .filter(|k| !used.contains(*k))
                .cloned()
                .collect();
            v.sort();
            v
        };
        let names = unused(self.names.keys().collect(), &self.used_names.borrow());
        if !names.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                crate::error::bounded(&names.join(", "))
            )));
        }
        let values = unused(self.values.keys().collect(), &self.used_values.borrow());
        if !values.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                crate::error::bounded(&values.join(", "))
            )));
        }
        Ok(())
    }
}

/// Refuses two paths where one is a prefix of (or equal to) the other.
pub fn check_overlap(kind: &str, paths: &[&DocPath]) -> ApiResult<()> {
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let n = a.len().min(b.len());
            if a[..n] == b[..n] {
                return Err(ApiError::validation(format!(
                    "Invalid {kind}: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    show_path(a),
                    show_path(b)
                )));
            }
        }
    }
    Ok(())
}
