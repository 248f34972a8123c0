//! PartiQL expressions written out as DynamoDB expressions: every name
//! becomes a `#nK` placeholder and every value a `:vK` one, so the JSON
//! API's own parser, checks and evaluator run them, and reserved words
//! and odd characters in names need no care.

use std::collections::HashMap;

use serde_json::{json, Map, Value as Json};

use super::parser::Expr;
use crate::error::{ApiError, ApiResult};
use crate::expr::{DocPath, PathElem};

/// The placeholders one request uses.
#[derive(Default)]
pub struct Render {
    names: Map<String, Json>,
    values: Map<String, Json>,
    by_name: HashMap<String, String>,
}

/// Functions a PartiQL condition may call, as DynamoDB names them.
const CONDITION_FUNCTIONS: [&str; 3] = ["begins_with", "contains", "attribute_type"];

impl Render {
    fn name(&mut self, n: &str) -> String {
        if let Some(p) = self.by_name.get(n) {
            return p.clone();
        }
        let p = format!("#n{}", self.by_name.len());
        self.names.insert(p.clone(), json!(n));
        self.by_name.insert(n.to_string(), p.clone());
        p
    }

    pub fn path(&mut self, path: &DocPath) -> String {
        let mut out = String::new();
        for (i, e) in path.iter().enumerate() {
            match e {
                PathElem::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    out.push_str(&self.name(k));
                }
                PathElem::Index(n) => out.push_str(&format!("[{n}]")),
            }
        }
        out
    }

    pub fn value(&mut self, v: &Json) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), v.clone());
        p
    }

    /// A comparison's operand: a path, a value or `size(path)`.
    pub fn operand(&mut self, e: &Expr) -> ApiResult<String> {
        match e {
            Expr::Path(p) => Ok(self.path(p)),
            Expr::Value(v) => Ok(self.value(v)),
            Expr::Call(f, args) if f == "size" => match args.as_slice() {
                [Expr::Path(p)] => Ok(format!("size({})", self.path(p))),
                _ => Err(wrong_arguments(f)),
            },
            Expr::Call(f, _) if CONDITION_FUNCTIONS.contains(&f.as_str()) => Err(
                ApiError::validation(format!("Unexpected function in operand position: {f}")),
            ),
            Expr::Call(f, _) => Err(unknown_function(f)),
            Expr::Arith(_, op, _) => Err(ApiError::validation(format!(
                "Arithmetic operator {op} is only supported in the SET clause of an UPDATE"
            ))),
            _ => Err(ApiError::validation(
                "Unsupported operand: a condition where a value was expected",
            )),
        }
    }

    /// A WHERE condition as a ConditionExpression.
    pub fn condition(&mut self, e: &Expr) -> ApiResult<String> {
        Ok(match e {
            Expr::Cmp(a, op, b) => format!("{} {op} {}", self.operand(a)?, self.operand(b)?),
            Expr::And(a, b) => {
                let (a, b) = (self.grouped(a, true)?, self.grouped(b, true)?);
                format!("{a} AND {b}")
            }
            Expr::Or(a, b) => format!("{} OR {}", self.condition(a)?, self.condition(b)?),
            Expr::Not(a) => format!("NOT {}", self.grouped(a, false)?),
            Expr::Between(a, lo, hi) => format!(
                "{} BETWEEN {} AND {}",
                self.operand(a)?,
                self.operand(lo)?,
                self.operand(hi)?
            ),
            Expr::In(a, list) => {
                let a = self.operand(a)?;
                let list = list
                    .iter()
                    .map(|e| self.operand(e))
                    .collect::<ApiResult<Vec<_>>>()?;
                format!("{a} IN ({})", list.join(", "))
            }
            Expr::Is { e, negated, null } => {
                let Expr::Path(p) = e.as_ref() else {
                    return Err(ApiError::validation(
                        "IS MISSING and IS NULL take an attribute path",
                    ));
                };
                let p = self.path(p);
                match (null, negated) {
                    (false, false) => format!("attribute_not_exists({p})"),
                    (false, true) => format!("attribute_exists({p})"),
                    (true, negated) => {
                        let t = self.value(&json!({ "S": "NULL" }));
                        let not = if *negated { "NOT " } else { "" };
                        format!("{not}attribute_type({p}, {t})")
                    }
                }
            }
            Expr::Call(f, args) if CONDITION_FUNCTIONS.contains(&f.as_str()) => {
                self.two_argument_call(f, args)?
            }
            Expr::Call(f, _) if f == "size" => {
                return Err(ApiError::validation(
                    "size() is a value: compare it with something",
                ))
            }
            Expr::Call(f, _) => return Err(unknown_function(f)),
            Expr::Value(_) | Expr::Path(_) | Expr::Arith(..) => {
                return Err(ApiError::validation(
                    "Unsupported condition: a value where a condition was expected",
                ))
            }
        })
    }

    /// A condition inside AND (`or_only`: only OR needs parentheses there)
    /// or NOT (every compound condition does). Never doubles parentheses:
    /// DynamoDB refuses redundant ones.
    fn grouped(&mut self, e: &Expr, or_only: bool) -> ApiResult<String> {
        let group = match e {
            Expr::Or(..) => true,
            Expr::Call(..) | Expr::Is { .. } => false,
            _ => !or_only,
        };
        let c = self.condition(e)?;
        Ok(if group { format!("({c})") } else { c })
    }

    /// The right side of `SET path = …`: a value, a path, `a + b`,
    /// `a - b`, `list_append(…)` or `if_not_exists(…)`.
    pub fn set_value(&mut self, e: &Expr) -> ApiResult<String> {
        match e {
            Expr::Arith(a, op, b) => {
                // A constant that is not a number is refused before any
                // item is read, in DynamoDB's words.
                for side in [a, b] {
                    if let Expr::Value(v) = side.as_ref() {
                        if let Some(t) = v.as_object().and_then(|o| o.keys().next()) {
                            if t != "N" {
                                return Err(ApiError::validation(format!(
                                    "Incorrect operand type for operator or function; operator or function: {op}, operand type: {t}"
                                )));
                            }
                        }
                    }
                }
                Ok(format!("{} {op} {}", self.operand(a)?, self.operand(b)?))
            }
            Expr::Call(f, args) if f == "list_append" || f == "if_not_exists" => {
                self.two_argument_call(f, args)
            }
            Expr::Path(_) | Expr::Value(_) => self.operand(e),
            Expr::Call(f, _) => Err(unknown_function(f)),
            _ => Err(ApiError::validation(
                "Unsupported value in SET: a condition where a value was expected",
            )),
        }
    }

    /// `f(a, b)`, each argument an operand.
    fn two_argument_call(&mut self, f: &str, args: &[Expr]) -> ApiResult<String> {
        if args.len() != 2 {
            return Err(wrong_arguments(f));
        }
        let args = args
            .iter()
            .map(|a| self.operand(a))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(format!("{f}({})", args.join(", ")))
    }

    /// Adds the placeholders to a request.
    pub fn finish(self, req: &mut Map<String, Json>) {
        if !self.names.is_empty() {
            req.insert("ExpressionAttributeNames".into(), Json::Object(self.names));
        }
        if !self.values.is_empty() {
            req.insert(
                "ExpressionAttributeValues".into(),
                Json::Object(self.values),
            );
        }
    }
}

pub fn unknown_function(f: &str) -> ApiError {
    ApiError::validation(format!("Unrecognized function: {f}"))
}

fn wrong_arguments(f: &str) -> ApiError {
    ApiError::validation(format!(
        "Incorrect number of operands for operator or function; operator or function: {f}"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::parser::{parse, Statement};
    use super::*;

    fn where_of(s: &str) -> (String, Map<String, Json>) {
        let Statement::Select(s) = parse(s, &[]).unwrap() else {
            panic!()
        };
        let mut r = Render::default();
        let c = r.condition(&s.filter.unwrap()).unwrap();
        let mut req = Map::new();
        r.finish(&mut req);
        (c, req)
    }

    #[test]
    fn writes_dynamodb_conditions() {
        let (c, req) = where_of(
            "SELECT * FROM t WHERE a = 1 AND (b < 2 OR NOT c IS MISSING) AND size(l) >= 3 AND \"a\" IS NOT NULL",
        );
        assert_eq!(
            c,
            "#n0 = :v0 AND (#n1 < :v1 OR NOT attribute_not_exists(#n2)) AND size(#n3) >= :v2 \
             AND NOT attribute_type(#n0, :v3)"
        );
        assert_eq!(req["ExpressionAttributeNames"]["#n3"], json!("l"));
        assert_eq!(
            req["ExpressionAttributeValues"][":v3"],
            json!({"S": "NULL"})
        );
        let (c, _) = where_of(
            "SELECT * FROM t WHERE m.x[2] IN [1, 2] OR begins_with(s, 'p') AND NOT (a = 1 AND b BETWEEN 1 AND 2)",
        );
        assert_eq!(
            c,
            "#n0.#n1[2] IN (:v0, :v1) OR begins_with(#n2, :v2) AND NOT (#n3 = :v3 AND #n4 BETWEEN :v4 AND :v5)"
        );
    }

    #[test]
    fn refuses_unknown_functions() {
        let Statement::Select(s) = parse("SELECT * FROM t WHERE foo(a)", &[]).unwrap() else {
            panic!()
        };
        let e = Render::default().condition(&s.filter.unwrap()).unwrap_err();
        assert_eq!(e.message, "Unrecognized function: foo");
    }
}
