//! Evaluating expressions against items, applying updates, projecting.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use strata_engine::{Item, Number, Value};

use super::{CmpOp, Cond, DocPath, Operand, PathElem, SetValue, UpdateAction};

pub const BAD_TYPE: &str = "An operand in the update expression has an incorrect data type";
const MISSING: &str =
    "The provided expression refers to an attribute that does not exist in the item";
const BAD_PATH: &str = "The document path provided in the update expression is invalid for update";

/// The value at `path`, if the item has one.
pub fn resolve<'a>(item: &'a Item, path: &DocPath) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let PathElem::Key(k) = first else { return None };
    let mut cur = item.get(k)?;
    for e in rest {
        cur = match (cur, e) {
            (Value::M(m), PathElem::Key(k)) => m.get(k)?,
            (Value::L(l), PathElem::Index(i)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn operand<'a>(item: &'a Item, o: &'a Operand) -> Option<Cow<'a, Value>> {
    match o {
        Operand::Value(v) => Some(Cow::Borrowed(v)),
        Operand::Path(p) => resolve(item, p).map(Cow::Borrowed),
        Operand::Size(p) => size_of(resolve(item, p)?).map(Cow::Owned),
    }
}

/// What `size()` answers, as a number: strings in characters, binaries in
/// bytes, sets, lists and maps in elements; None for the types it does not
/// take.
pub fn size_of(v: &Value) -> Option<Value> {
    let n = match v {
        Value::S(s) => s.chars().count(),
        Value::B(b) => b.len(),
        Value::SS(v) => v.len(),
        Value::NS(v) => v.len(),
        Value::BS(v) => v.len(),
        Value::L(v) => v.len(),
        Value::M(v) => v.len(),
        _ => return None,
    };
    Some(Value::N(Number::from_i64(n as i64)))
}

/// Order of two scalars of the same orderable type (S, N or B).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::S(x), Value::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::N(x), Value::N(y)) => Some(x.cmp(y)),
        (Value::B(x), Value::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn same_members<T: Ord + Clone>(a: &[T], b: &[T]) -> bool {
    let (mut x, mut y) = (a.to_vec(), b.to_vec());
    x.sort();
    y.sort();
    x == y
}

/// DynamoDB equality: sets compare as sets, everything else structurally.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::SS(x), Value::SS(y)) => same_members(x, y),
        (Value::NS(x), Value::NS(y)) => same_members(x, y),
        (Value::BS(x), Value::BS(y)) => same_members(x, y),
        (Value::L(x), Value::L(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::M(x), Value::M(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Evaluates a condition; a missing item is an empty one.
pub fn eval_condition(c: &Cond, item: Option<&Item>) -> bool {
    let empty = Item::new();
    eval(c, item.unwrap_or(&empty))
}

fn eval(c: &Cond, item: &Item) -> bool {
    match c {
        Cond::And(a, b) => eval(a, item) && eval(b, item),
        Cond::Or(a, b) => eval(a, item) || eval(b, item),
        Cond::Not(a) => !eval(a, item),
        Cond::Exists(p) => resolve(item, p).is_some(),
        Cond::NotExists(p) => resolve(item, p).is_none(),
        Cond::Cmp(a, op, b) => {
            let (Some(a), Some(b)) = (operand(item, a), operand(item, b)) else {
                // A missing attribute equals nothing, so it differs from everything.
                return *op == CmpOp::Ne;
            };
            match op {
                CmpOp::Eq => values_equal(&a, &b),
                CmpOp::Ne => !values_equal(&a, &b),
                _ => compare(&a, &b).is_some_and(|o| match op {
                    CmpOp::Lt => o.is_lt(),
                    CmpOp::Le => o.is_le(),
                    CmpOp::Gt => o.is_gt(),
                    _ => o.is_ge(),
                }),
            }
        }
        Cond::Between(x, lo, hi) => {
            let (Some(x), Some(lo), Some(hi)) =
                (operand(item, x), operand(item, lo), operand(item, hi))
            else {
                return false;
            };
            compare(&lo, &x).is_some_and(|o| o.is_le())
                && compare(&x, &hi).is_some_and(|o| o.is_le())
        }
        Cond::In(x, list) => {
            let Some(x) = operand(item, x) else {
                return false;
            };
            list.iter()
                .any(|o| operand(item, o).is_some_and(|v| values_equal(&x, &v)))
        }
        Cond::Type(o, t) => operand(item, o).is_some_and(|v| v.type_name() == t),
        Cond::BeginsWith(a, b) => match (operand(item, a), operand(item, b)) {
            (Some(a), Some(b)) => match (&*a, &*b) {
                (Value::S(x), Value::S(y)) => x.starts_with(y.as_str()),
                (Value::B(x), Value::B(y)) => x.starts_with(y),
                _ => false,
            },
            _ => false,
        },
        Cond::Contains(a, b) => match (operand(item, a), operand(item, b)) {
            (Some(a), Some(b)) => match (&*a, &*b) {
                (Value::S(x), Value::S(y)) => x.contains(y.as_str()),
                (Value::B(x), Value::B(y)) => {
                    y.is_empty() || x.windows(y.len()).any(|w| w == y.as_slice())
                }
                (Value::SS(x), Value::S(y)) => x.contains(y),
                (Value::NS(x), Value::N(y)) => x.contains(y),
                (Value::BS(x), Value::B(y)) => x.contains(y),
                (Value::L(x), y) => x.iter().any(|e| values_equal(e, y)),
                _ => false,
            },
            _ => false,
        },
    }
}

fn set_value(item: &Item, v: &SetValue) -> Result<Value, String> {
    match v {
        SetValue::Operand(o) => operand(item, o)
            .map(Cow::into_owned)
            .ok_or_else(|| MISSING.to_string()),
        SetValue::IfNotExists(p, default) => match resolve(item, p) {
            Some(v) => Ok(v.clone()),
            None => set_value(item, default),
        },
        SetValue::ListAppend(a, b) => match (set_value(item, a)?, set_value(item, b)?) {
            (Value::L(mut x), Value::L(y)) => {
                x.extend(y);
                Ok(Value::L(x))
            }
            _ => Err(BAD_TYPE.to_string()),
        },
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            match (set_value(item, a)?, set_value(item, b)?) {
                (Value::N(x), Value::N(y)) => {
                    let r = if matches!(v, SetValue::Plus(..)) {
                        x.add(&y)
                    } else {
                        x.sub(&y)
                    };
                    r.map(Value::N).map_err(|e| e.to_string())
                }
                _ => Err(BAD_TYPE.to_string()),
            }
        }
    }
}

fn container_mut<'a>(item: &'a mut Item, parent: &[PathElem]) -> Result<&'a mut Value, String> {
    let (first, rest) = parent.split_first().ok_or_else(|| BAD_PATH.to_string())?;
    let PathElem::Key(k) = first else {
        return Err(BAD_PATH.to_string());
    };
    let mut cur = item.get_mut(k).ok_or_else(|| BAD_PATH.to_string())?;
    for e in rest {
        cur = match (cur, e) {
            (Value::M(m), PathElem::Key(k)) => m.get_mut(k).ok_or_else(|| BAD_PATH.to_string())?,
            (Value::L(l), PathElem::Index(i)) => {
                l.get_mut(*i).ok_or_else(|| BAD_PATH.to_string())?
            }
            _ => return Err(BAD_PATH.to_string()),
        };
    }
    Ok(cur)
}

fn set_path(item: &mut Item, path: &DocPath, v: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        return Err(BAD_PATH.to_string());
    };
    if parent.is_empty() {
        let PathElem::Key(k) = last else {
            return Err(BAD_PATH.to_string());
        };
        item.insert(k.clone(), v);
        return Ok(());
    }
    match (container_mut(item, parent)?, last) {
        (Value::M(m), PathElem::Key(k)) => {
            m.insert(k.clone(), v);
            Ok(())
        }
        (Value::L(l), PathElem::Index(i)) => {
            if *i < l.len() {
                l[*i] = v;
            } else {
                l.push(v);
            }
            Ok(())
        }
        _ => Err(BAD_PATH.to_string()),
    }
}

/// A nested REMOVE needs its parent: a map for a name, a list for an index.
fn check_remove_path(item: &Item, path: &DocPath) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        return Ok(());
    };
    if parent.is_empty() {
        return Ok(());
    }
    match (resolve(item, &parent.to_vec()), last) {
        (Some(Value::M(_)), PathElem::Key(_)) | (Some(Value::L(_)), PathElem::Index(_)) => Ok(()),
        _ => Err(BAD_PATH.to_string()),
    }
}

fn remove_path(item: &mut Item, path: &DocPath) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        return Ok(());
    };
    if parent.is_empty() {
        if let PathElem::Key(k) = last {
            item.remove(k);
        }
        return Ok(());
    }
    // A nested path needs its parent: a map for a name, a list for an
    // index (an index past the list's end removes nothing).
    match (container_mut(item, parent)?, last) {
        (Value::M(m), PathElem::Key(k)) => {
            m.remove(k);
        }
        (Value::L(l), PathElem::Index(i)) => {
            if *i < l.len() {
                l.remove(*i);
            }
        }
        _ => return Err(BAD_PATH.to_string()),
    }
    Ok(())
}

fn union<T: PartialEq + Clone>(a: &mut Vec<T>, b: &[T]) {
    for x in b {
        if !a.contains(x) {
            a.push(x.clone());
        }
    }
}

/// Applies update actions to the current item (None: absent). Every
/// operand is read from the item as it was before the update. Actions
/// that only remove (REMOVE, DELETE) leave an absent item absent: the
/// result is None, and nothing is created.
pub fn apply_update(
    actions: &[UpdateAction],
    current: Option<&Item>,
) -> Result<Option<Item>, String> {
    let only_removes = !actions.is_empty()
        && actions
            .iter()
            .all(|a| matches!(a, UpdateAction::Remove(_) | UpdateAction::Delete(..)));
    let before = current.cloned().unwrap_or_default();
    let mut item = before.clone();
    let mut removes = Vec::new();
    // SETs apply in path order, so several past a list's end append in
    // index order (`SET l[10] = :a, l[5] = :b` appends b, then a), as
    // DynamoDB does; paths never overlap, so nothing else depends on it.
    let mut ordered: Vec<&UpdateAction> = actions.iter().collect();
    ordered.sort_by_key(|a| match a {
        UpdateAction::Set(p, _) => (0, Some(p)),
        _ => (1, None),
    });
    for a in ordered {
        match a {
            UpdateAction::Set(p, v) => {
                let v = set_value(&before, v)?;
                set_path(&mut item, p, v)?;
            }
            UpdateAction::Remove(p) => {
                // Checked in order with the other actions; removed last.
                check_remove_path(&before, p)?;
                removes.push(p.clone());
            }
            UpdateAction::Add(p, v) => {
                let next = match (resolve(&before, p), v) {
                    (None, v) => v.clone(),
                    (Some(Value::N(x)), Value::N(y)) => {
                        Value::N(x.add(y).map_err(|e| e.to_string())?)
                    }
                    (Some(Value::SS(x)), Value::SS(y)) => Value::SS({
                        let mut x = x.clone();
                        union(&mut x, y);
                        x
                    }),
                    (Some(Value::NS(x)), Value::NS(y)) => Value::NS({
                        let mut x = x.clone();
                        union(&mut x, y);
                        x
                    }),
                    (Some(Value::BS(x)), Value::BS(y)) => Value::BS({
                        let mut x = x.clone();
                        union(&mut x, y);
                        x
                    }),
                    _ => return Err(BAD_TYPE.to_string()),
                };
                set_path(&mut item, p, next)?;
            }
            UpdateAction::Delete(p, v) => {
                let next = match (resolve(&before, p), v) {
                    (None, _) => {
                        // Nothing to delete from; a nested path still
                        // needs its parent.
                        check_remove_path(&before, p)?;
                        continue;
                    }
                    (Some(Value::SS(x)), Value::SS(y)) => Some(Value::SS(
                        x.iter().filter(|e| !y.contains(e)).cloned().collect(),
                    ))
                    .filter(|v| !matches!(v, Value::SS(s) if s.is_empty())),
                    (Some(Value::NS(x)), Value::NS(y)) => Some(Value::NS(
                        x.iter().filter(|e| !y.contains(e)).cloned().collect(),
                    ))
                    .filter(|v| !matches!(v, Value::NS(s) if s.is_empty())),
                    (Some(Value::BS(x)), Value::BS(y)) => Some(Value::BS(
                        x.iter().filter(|e| !y.contains(e)).cloned().collect(),
                    ))
                    .filter(|v| !matches!(v, Value::BS(s) if s.is_empty())),
                    _ => return Err(BAD_TYPE.to_string()),
                };
                match next {
                    Some(v) => set_path(&mut item, p, v)?,
                    None => removes.push(p.clone()),
                }
            }
        }
    }
    // Remove list elements from the highest index down, so every index
    // refers to the list as it was.
    removes.sort();
    for p in removes.iter().rev() {
        remove_path(&mut item, p)?;
    }
    if current.is_none() && only_removes {
        return Ok(None);
    }
    Ok(Some(item))
}

/// The paths an update names: UPDATED_OLD and UPDATED_NEW return the item
/// projected on them (before or after the update), so a nested change
/// returns only the nested value, inside its parents. As in DynamoDB (and
/// unlike DynamoDB Local, which returns whole top-level attributes), a
/// path that names nothing on that side returns nothing: `SET l[100]`
/// appends at the list's end, so UPDATED_NEW has no `l[100]`; after
/// `REMOVE l[1]`, UPDATED_NEW shows the element that moved into `l[1]`.
pub fn updated_paths(actions: &[UpdateAction]) -> Vec<DocPath> {
    let mut paths: Vec<DocPath> = actions.iter().map(|a| a.path().clone()).collect();
    paths.sort();
    paths.dedup();
    paths
}

enum Tree {
    Leaf(Value),
    Map(BTreeMap<String, Tree>),
    List(BTreeMap<usize, Tree>),
}

fn insert_tree(node: &mut Tree, rest: &[PathElem], v: Value) {
    let Some((first, rest)) = rest.split_first() else {
        *node = Tree::Leaf(v);
        return;
    };
    match first {
        PathElem::Key(k) => {
            if !matches!(node, Tree::Map(_)) {
                *node = Tree::Map(BTreeMap::new());
            }
            if let Tree::Map(m) = node {
                insert_tree(
                    m.entry(k.clone()).or_insert(Tree::Map(BTreeMap::new())),
                    rest,
                    v,
                );
            }
        }
        PathElem::Index(i) => {
            if !matches!(node, Tree::List(_)) {
                *node = Tree::List(BTreeMap::new());
            }
            if let Tree::List(l) = node {
                insert_tree(l.entry(*i).or_insert(Tree::Map(BTreeMap::new())), rest, v);
            }
        }
    }
}

fn tree_value(t: Tree) -> Value {
    match t {
        Tree::Leaf(v) => v,
        Tree::Map(m) => Value::M(m.into_iter().map(|(k, t)| (k, tree_value(t))).collect()),
        Tree::List(l) => Value::L(l.into_values().map(tree_value).collect()),
    }
}

/// The item reduced to the given paths (ProjectionExpression): nested paths
/// keep their structure, list elements keep their order.
pub fn project(item: &Item, paths: &[DocPath]) -> Item {
    let mut root = Tree::Map(BTreeMap::new());
    for p in paths {
        if let Some(v) = resolve(item, p) {
            insert_tree(&mut root, p, v.clone());
        }
    }
    match tree_value(root) {
        Value::M(m) => m,
        _ => Item::new(),
    }
}
