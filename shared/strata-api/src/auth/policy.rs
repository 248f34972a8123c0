//! IAM-style policies: Allow and Deny statements over actions and resource
//! ARNs (with `*` and `?` wildcards), `NotAction` and `NotResource`, and
//! conditions on request keys. Evaluated as IAM evaluates one identity
//! policy: an explicit Deny wins, then an Allow, else the request is denied
//! by default.
//!
//! Condition operators: `StringEquals`, `StringNotEquals`,
//! `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`, `StringLike`,
//! `StringNotLike`, each with an `IfExists` suffix and a `ForAllValues:` or
//! `ForAnyValue:` set qualifier; and `Null`. Values may use the policy
//! variable `${aws:username}`; the keys `dynamodb:LeadingKeys`,
//! `dynamodb:Attributes`, `dynamodb:Select`, `dynamodb:ReturnValues` and
//! `aws:username`. A policy using anything else is refused when it is
//! loaded, never ignored.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// The condition keys a request carries (lower-case).
const SUPPORTED_KEYS: &[&str] = &[
    "dynamodb:leadingkeys",
    "dynamodb:attributes",
    "dynamodb:select",
    "dynamodb:returnvalues",
    "aws:username",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
struct Patterns {
    /// `NotAction` / `NotResource`: the statement applies to what does not match.
    negated: bool,
    /// Actions match whatever their case (the patterns are kept lower-case);
    /// resources as written.
    ignore_case: bool,
    patterns: Vec<String>,
}

impl Patterns {
    fn applies(&self, value: &str) -> bool {
        let lower;
        let value = if self.ignore_case {
            lower = value.to_ascii_lowercase();
            lower.as_str()
        } else {
            value
        };
        self.patterns.iter().any(|p| glob(p, value)) != self.negated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    EqualsIgnoreCase,
    Like,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Single,
    ForAll,
    ForAny,
}

#[derive(Debug, Clone)]
struct Condition {
    op: Op,
    negated: bool,
    if_exists: bool,
    set: Set,
    /// Lower-case: condition keys are case-insensitive.
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    statements: Vec<Statement>,
    /// Policy variables (`${aws:username}`) are substituted only in a
    /// policy of version 2012-10-17, as IAM does; elsewhere they are text.
    variables: bool,
    /// Every condition key a statement names (lower-case): the keys a
    /// request's evaluation needs computed, the others never matter.
    keys: std::collections::BTreeSet<String>,
}

/// What a request asks to do, as a policy sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `dynamodb:GetItem`
    pub action: &'a str,
    pub resource: &'a str,
    /// Condition keys present in the request (lower-case names), each with
    /// its values (`dynamodb:leadingkeys` → the partition keys touched).
    pub keys: &'a BTreeMap<String, Vec<String>>,
    /// Condition keys the request has but whose values are not known
    /// (lower-case): a condition on one is met in a Deny statement and not
    /// in an Allow, so not knowing can only refuse.
    pub unknown: &'a [&'a str],
    /// For `${aws:username}`.
    pub username: &'a str,
}

/// How a policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    ExplicitDeny,
}

fn strings(v: &Json, what: &str) -> Result<Vec<String>, String> {
    match v {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(a) if a.is_empty() => Err(format!("{what} must not be an empty list")),
        Json::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what}: every entry must be a string"))
            })
            .collect(),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

fn patterns(
    st: &serde_json::Map<String, Json>,
    name: &str,
    ignore_case: bool,
) -> Result<Patterns, String> {
    let (negated, patterns) = match (st.get(name), st.get(&format!("Not{name}"))) {
        (Some(v), None) => (false, strings(v, name)?),
        (None, Some(v)) => (true, strings(v, &format!("Not{name}"))?),
        (Some(_), Some(_)) => return Err(format!("a statement has both {name} and Not{name}")),
        (None, None) => return Err(format!("a statement needs {name} or Not{name}")),
    };
    let patterns = if ignore_case {
        patterns.iter().map(|p| p.to_ascii_lowercase()).collect()
    } else {
        patterns
    };
    Ok(Patterns {
        negated,
        ignore_case,
        patterns,
    })
}

fn condition(op_name: &str, key: &str, values: &Json) -> Result<Condition, String> {
    let (set, rest) = if let Some(r) = op_name.strip_prefix("ForAllValues:") {
        (Set::ForAll, r)
    } else if let Some(r) = op_name.strip_prefix("ForAnyValue:") {
        (Set::ForAny, r)
    } else {
        (Set::Single, op_name)
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (op, negated) = match rest {
        "StringEquals" => (Op::Equals, false),
        "StringNotEquals" => (Op::Equals, true),
        "StringEqualsIgnoreCase" => (Op::EqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Op::EqualsIgnoreCase, true),
        "StringLike" => (Op::Like, false),
        "StringNotLike" => (Op::Like, true),
        "Null" => (Op::Null, false),
        other => return Err(format!("unsupported condition operator {other:?}")),
    };
    let lower = key.to_ascii_lowercase();
    let multi_valued = lower == "dynamodb:leadingkeys" || lower == "dynamodb:attributes";
    if multi_valued && set == Set::Single && op != Op::Null {
        // A request can carry several; a single-valued operator over them
        // is ambiguous (IAM's docs say to use a set qualifier).
        return Err(format!(
            "{op_name} on {key}: use ForAllValues:{op_name} (or ForAnyValue:), as the key can have several values"
        ));
    }
    if !SUPPORTED_KEYS.contains(&lower.as_str()) {
        // Evaluating it as absent could allow what the policy means to refuse.
        return Err(format!(
            "unsupported condition key {key:?} (supported: dynamodb:LeadingKeys, dynamodb:Attributes, dynamodb:Select, dynamodb:ReturnValues, aws:username)"
        ));
    }
    let values = match values {
        Json::Bool(b) => vec![b.to_string()],
        v => strings(v, op_name)?,
    };
    Ok(Condition {
        op,
        negated,
        if_exists,
        set,
        key: key.to_ascii_lowercase(),
        values,
    })
}

impl Policy {
    /// Parses an IAM policy document (`{"Version": …, "Statement": [...]}`).
    pub fn parse(doc: &Json) -> Result<Policy, String> {
        let stmts = match doc.get("Statement") {
            Some(Json::Array(a)) => a.clone(),
            Some(o @ Json::Object(_)) => vec![o.clone()],
            _ => return Err("a policy needs a Statement (an object or a list)".into()),
        };
        let mut statements = Vec::new();
        for s in &stmts {
            let st = s.as_object().ok_or("each statement must be an object")?;
            let effect = match st.get("Effect").and_then(Json::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return Err("a statement's Effect must be Allow or Deny".into()),
            };
            if st.contains_key("Principal") || st.contains_key("NotPrincipal") {
                return Err("identity policies name no Principal".into());
            }
            let mut conditions = Vec::new();
            if let Some(c) = st.get("Condition") {
                let c = c.as_object().ok_or("Condition must be an object")?;
                for (op, keys) in c {
                    let keys = keys
                        .as_object()
                        .ok_or_else(|| format!("Condition {op} must map keys to values"))?;
                    for (key, values) in keys {
                        conditions.push(condition(op, key, values)?);
                    }
                }
            }
            for k in st.keys() {
                if !matches!(
                    k.as_str(),
                    "Sid"
                        | "Effect"
                        | "Action"
                        | "NotAction"
                        | "Resource"
                        | "NotResource"
                        | "Condition"
                ) {
                    return Err(format!("unsupported statement member {k:?}"));
                }
            }
            statements.push(Statement {
                effect,
                actions: patterns(st, "Action", true)?,
                resources: patterns(st, "Resource", false)?,
                conditions,
            });
        }
        let variables = doc.get("Version").and_then(Json::as_str) == Some("2012-10-17");
        let keys = statements
            .iter()
            .flat_map(|s| s.conditions.iter().map(|c| c.key.clone()))
            .collect();
        Ok(Policy {
            statements,
            variables,
            keys,
        })
    }

    /// Whether a condition of this policy names `key` (lower-case).
    pub fn names_key(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        let mut allowed = false;
        for s in &self.statements {
            let applies = s.actions.applies(req.action)
                && s.resources.applies(req.resource)
                && s.conditions.iter().all(|c| {
                    if req.unknown.contains(&c.key.as_str()) {
                        s.effect == Effect::Deny
                    } else {
                        c.holds(req, self.variables)
                    }
                });
            match (applies, s.effect) {
                (true, Effect::Deny) => return Decision::ExplicitDeny,
                (true, Effect::Allow) => allowed = true,
                _ => {}
            }
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        }
    }
}

impl Condition {
    fn holds(&self, req: &Request<'_>, variables: bool) -> bool {
        let present: Option<Vec<String>> = match self.key.as_str() {
            "aws:username" => Some(vec![req.username.to_string()]),
            k => req.keys.get(k).cloned(),
        };
        if self.op == Op::Null {
            // Null: true when the key is absent (value "true") or present ("false").
            let absent = present.as_ref().is_none_or(Vec::is_empty);
            return self.values.iter().any(|v| v == &absent.to_string());
        }
        let values: Vec<String> = self
            .values
            .iter()
            .map(|v| {
                if variables {
                    v.replace("${aws:username}", req.username)
                } else {
                    v.clone()
                }
            })
            .collect();
        let matches_one = |x: &str| {
            let hit = values.iter().any(|p| match self.op {
                Op::Equals => p == x,
                Op::EqualsIgnoreCase => p.eq_ignore_ascii_case(x),
                Op::Like => glob(p, x),
                Op::Null => false,
            });
            hit != self.negated
        };
        match (self.set, present) {
            (Set::ForAll, None) => true,
            (Set::ForAll, Some(v)) => v.iter().all(|x| matches_one(x)),
            (Set::ForAny, None) => false,
            (Set::ForAny, Some(v)) => v.iter().any(|x| matches_one(x)),
            // A missing key: IfExists holds; a negated operator holds (no
            // value equals); any other does not.
            (Set::Single, None) => self.if_exists || self.negated,
            (Set::Single, Some(v)) if v.is_empty() => self.if_exists || self.negated,
            (Set::Single, Some(v)) => v.iter().any(|x| matches_one(x)),
        }
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn glob(pattern: &str, value: &str) -> bool {
    if pattern.is_ascii() && value.is_ascii() {
        return glob_in(pattern.as_bytes(), value.as_bytes());
    }
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    glob_in(&p, &v)
}

/// [`glob`] over bytes (ASCII text, no allocation) or chars.
fn glob_in<C: Copy + PartialEq + From<u8>>(p: &[C], v: &[C]) -> bool {
    let (any, one) = (C::from(b'*'), C::from(b'?'));
    let (mut i, mut j) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == one || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == any {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == any {
        i += 1;
    }
    i == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        for (p, v, m) in [
            ("*", "anything", true),
            ("dynamodb:Get*", "dynamodb:GetItem", true),
            ("dynamodb:Get*", "dynamodb:PutItem", false),
            ("arn:*:table/T?", "arn:x:table/T1", true),
            ("arn:*:table/T?", "arn:x:table/T12", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("", "", true),
        ] {
            assert_eq!(glob(p, v), m, "{p} {v}");
        }
    }

    #[test]
    fn deny_wins_and_the_default_is_deny() {
        let p = Policy::parse(&json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": "arn:aws:dynamodb:*:*:table/Prod"},
        ]}))
        .unwrap();
        let keys = BTreeMap::new();
        let r = |action, resource| Request {
            action,
            resource,
            keys: &keys,
            unknown: &[],
            username: "u",
        };
        assert_eq!(
            p.evaluate(&r(
                "dynamodb:DeleteTable",
                "arn:aws:dynamodb:us-east-1:0:table/Prod"
            )),
            Decision::ExplicitDeny
        );
        assert_eq!(
            p.evaluate(&r(
                "dynamodb:DeleteTable",
                "arn:aws:dynamodb:us-east-1:0:table/Dev"
            )),
            Decision::Allowed
        );
        let none = Policy::parse(&json!({"Statement": []})).unwrap();
        assert_eq!(
            none.evaluate(&r("dynamodb:GetItem", "x")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn leading_keys_limit_a_user_to_their_own_items() {
        let p = Policy::parse(&json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
            "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}}
        }]}))
        .unwrap();
        let own = BTreeMap::from([(
            "dynamodb:leadingkeys".to_string(),
            vec!["alice".to_string()],
        )]);
        let other = BTreeMap::from([(
            "dynamodb:leadingkeys".to_string(),
            vec!["alice".into(), "bob".into()],
        )]);
        let r = |keys| Request {
            action: "dynamodb:GetItem",
            resource: "t",
            keys,
            unknown: &[],
            username: "alice",
        };
        assert_eq!(p.evaluate(&r(&own)), Decision::Allowed);
        assert_eq!(p.evaluate(&r(&other)), Decision::ImplicitDeny);
        // Keys not known (a PartiQL statement's) never satisfy an Allow...
        let none = BTreeMap::new();
        let unknown = Request {
            unknown: &["dynamodb:leadingkeys"],
            ..r(&none)
        };
        assert_eq!(p.evaluate(&unknown), Decision::ImplicitDeny);
        // ... and always meet a Deny.
        let deny = Policy::parse(&json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": ["bob"]}}}]}))
        .unwrap();
        assert_eq!(deny.evaluate(&unknown), Decision::ExplicitDeny);
        assert_eq!(deny.evaluate(&r(&own)), Decision::Allowed);
        // Without Version 2012-10-17, ${aws:username} is plain text, as in IAM.
        let old = Policy::parse(&json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}}}]}))
        .unwrap();
        assert_eq!(old.evaluate(&r(&own)), Decision::ImplicitDeny);
    }

    #[test]
    fn unsupported_policies_are_refused_not_ignored() {
        for bad in [
            json!({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "x"}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"ForAllValues:StringEquals": {"dynamodb:EnclosingOperation": ["a"]}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"dynamodb:Attributes": ["a"]}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"dynamodb:LeadingKeys": ["a"]}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": []}]}),
        ] {
            assert!(Policy::parse(&bad).is_err(), "{bad}");
        }
    }
}
