//! DynamoDB's PartiQL statements, parsed into [`Statement`]s. Constants and
//! `?` parameters become DynamoDB AttributeValues (JSON) as they are read,
//! so what follows ([`super::plan`]) deals only in paths, values and
//! operators.
//!
//! The grammar is DynamoDB's subset of PartiQL:
//! ```text
//! SELECT * | path, … FROM name[.name] [WHERE cond] [ORDER BY path [ASC|DESC]]
//! INSERT INTO name VALUE {'attr': value, …}
//! UPDATE name (SET path = value, … | REMOVE path, …)… [WHERE cond] [RETURNING (ALL|MODIFIED) (OLD|NEW) *]
//! DELETE FROM name [WHERE cond] [RETURNING ALL OLD *]
//! ```

use serde_json::{json, Map, Value as Json};

use super::lexer::{tokens, Tok};
use crate::error::{ApiError, ApiResult};
use crate::expr::{DocPath, PathElem};

/// A condition or value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant or parameter, as a DynamoDB AttributeValue.
    Value(Json),
    Path(DocPath),
    /// `a <op> b` with `op` one of `= <> < <= > >=` (`!=` is read as `<>`).
    Cmp(Box<Expr>, &'static str, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Between(Box<Expr>, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>),
    /// `e IS [NOT] MISSING` (`null: false`) or `e IS [NOT] NULL`.
    Is {
        e: Box<Expr>,
        negated: bool,
        null: bool,
    },
    /// A function call; the name in lower case.
    Call(String, Vec<Expr>),
    /// `a + b` or `a - b`.
    Arith(Box<Expr>, char, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Set(DocPath, Expr),
    Remove(DocPath),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// The projected paths; `None` for `*`.
    pub projection: Option<Vec<DocPath>>,
    pub table: String,
    pub index: Option<String>,
    pub filter: Option<Expr>,
    /// `ORDER BY path`, and whether it is descending.
    pub order: Option<(DocPath, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Select),
    Insert {
        table: String,
        /// The item: an `{"M": …}` AttributeValue.
        item: Json,
    },
    Update {
        table: String,
        actions: Vec<Action>,
        filter: Option<Expr>,
        /// The ReturnValues the RETURNING clause asks for.
        returning: Option<&'static str>,
    },
    Delete {
        table: String,
        filter: Option<Expr>,
        returning: Option<&'static str>,
    },
}

/// The `?`s a statement has (so a request with too few parameters is
/// refused before anything is parsed).
pub fn count_params(src: &str) -> usize {
    tokens(src).map_or(0, |t| t.iter().filter(|t| **t == Tok::Param).count())
}

/// Parses one statement, taking its `?`s from `params` in order.
pub fn parse(src: &str, params: &[Json]) -> ApiResult<Statement> {
    let toks = tokens(src).ok_or_else(|| malformed(src))?;
    let mut p = Parser {
        src,
        toks,
        at: 0,
        params,
        next_param: 0,
        depth: 0,
        ops: 0,
    };
    let stmt = p.statement()?;
    p.eat_sym(";");
    if p.at != p.toks.len() {
        return Err(malformed(src));
    }
    Ok(stmt)
}

fn malformed(src: &str) -> ApiError {
    ApiError::validation(format!(
        "Statement wasn't well formed, can't be processed: {src}"
    ))
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    at: usize,
    params: &'a [Json],
    next_param: usize,
    /// Nesting so far (parentheses, constructors, calls) and operators so
    /// far: both bounded, so no statement can exhaust the stack.
    depth: usize,
    ops: usize,
}

/// Deepest nesting a statement may have.
const MAX_DEPTH: usize = 64;
/// Most operators (AND, OR, NOT, comparisons, arithmetic) in a statement.
const MAX_OPERATORS: usize = 300;

impl Parser<'_> {
    fn bad(&self) -> ApiError {
        malformed(self.src)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.at + n)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_word(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_word(&mut self, kw: &str) -> bool {
        let yes = self.is_word(kw);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn word(&mut self, kw: &str) -> ApiResult<()> {
        if self.eat_word(kw) {
            Ok(())
        } else {
            Err(self.bad())
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        let yes = matches!(self.peek(), Some(Tok::Sym(x)) if *x == s);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn sym(&mut self, s: &str) -> ApiResult<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.bad())
        }
    }

    /// One or more `item`s separated by commas.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> ApiResult<T>) -> ApiResult<Vec<T>> {
        let mut out = vec![item(self)?];
        while self.eat_sym(",") {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn statement(&mut self) -> ApiResult<Statement> {
        if self.eat_word("SELECT") {
            return self.select().map(Statement::Select);
        }
        if self.eat_word("INSERT") {
            self.word("INTO")?;
            let table = self.name()?;
            self.word("VALUE")?;
            let item =
                match self.primary()? {
                    Expr::Value(v) if v.get("M").is_some() => v,
                    _ => return Err(ApiError::validation(
                        "Unsupported format in item expression. Please use struct format {...} \
                         to express item values for insert statement.",
                    )),
                };
            return Ok(Statement::Insert { table, item });
        }
        if self.eat_word("UPDATE") {
            let table = self.name()?;
            let mut actions = Vec::new();
            loop {
                if self.eat_word("SET") {
                    actions.extend(self.list(|p| {
                        let path = p.path()?;
                        p.sym("=")?;
                        Ok(Action::Set(path, p.additive()?))
                    })?);
                } else if self.eat_word("REMOVE") {
                    actions.extend(self.list(|p| p.path().map(Action::Remove))?);
                } else {
                    break;
                }
            }
            if actions.is_empty() {
                return Err(self.bad());
            }
            let filter = self.where_clause()?;
            let returning = self.returning()?;
            return Ok(Statement::Update {
                table,
                actions,
                filter,
                returning,
            });
        }
        if self.eat_word("DELETE") {
            self.word("FROM")?;
            let table = self.name()?;
            let filter = self.where_clause()?;
            let returning = self.returning()?;
            if let Some(r) = returning.filter(|r| *r != "ALL_OLD") {
                let words = match r {
                    "ALL_NEW" => "ALL NEW",
                    "UPDATED_OLD" => "MODIFIED OLD",
                    _ => "MODIFIED NEW",
                };
                return Err(ApiError::validation(format!(
                    "Invalid returning clause: RETURNING {words} *. Only RETURNING ALL OLD * is \
                     allowed in DELETE statements."
                )));
            }
            return Ok(Statement::Delete {
                table,
                filter,
                returning,
            });
        }
        if self.is_word("EXISTS") {
            return Err(ApiError::validation(
                "EXISTS can only be used in ExecuteTransaction write requests.",
            ));
        }
        Err(self.bad())
    }

    fn select(&mut self) -> ApiResult<Select> {
        let projection = if self.eat_sym("*") {
            None
        } else {
            Some(self.list(Self::path)?)
        };
        self.word("FROM")?;
        let table = self.name()?;
        let index = if self.eat_sym(".") {
            Some(self.name()?)
        } else {
            None
        };
        let filter = self.where_clause()?;
        let order = if self.eat_word("ORDER") {
            self.word("BY")?;
            let path = self.path()?;
            let desc = if self.eat_word("DESC") {
                true
            } else {
                self.eat_word("ASC");
                false
            };
            Some((path, desc))
        } else {
            None
        };
        Ok(Select {
            projection,
            table,
            index,
            filter,
            order,
        })
    }

    fn where_clause(&mut self) -> ApiResult<Option<Expr>> {
        if self.eat_word("WHERE") {
            self.or().map(Some)
        } else {
            Ok(None)
        }
    }

    fn returning(&mut self) -> ApiResult<Option<&'static str>> {
        if !self.eat_word("RETURNING") {
            return Ok(None);
        }
        let all = if self.eat_word("ALL") {
            true
        } else {
            self.word("MODIFIED")?;
            false
        };
        let old = if self.eat_word("OLD") {
            true
        } else {
            self.word("NEW")?;
            false
        };
        self.sym("*")?;
        Ok(Some(match (all, old) {
            (true, true) => "ALL_OLD",
            (true, false) => "ALL_NEW",
            (false, true) => "UPDATED_OLD",
            (false, false) => "UPDATED_NEW",
        }))
    }

    /// A table, index or attribute name: unquoted or `"quoted"`.
    fn name(&mut self) -> ApiResult<String> {
        match self.next() {
            Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => Ok(w),
            _ => Err(self.bad()),
        }
    }

    fn path(&mut self) -> ApiResult<DocPath> {
        let mut path = vec![PathElem::Key(self.name()?)];
        loop {
            if self.eat_sym(".") {
                path.push(PathElem::Key(self.name()?));
            } else if self.eat_sym("[") {
                match self.next() {
                    Some(Tok::Num(n)) => {
                        let i = n.parse::<u32>().map_err(|_| self.bad())?;
                        path.push(PathElem::Index(i as usize));
                    }
                    Some(Tok::Str(s)) => path.push(PathElem::Key(s)),
                    _ => return Err(self.bad()),
                }
                self.sym("]")?;
            } else {
                return Ok(path);
            }
        }
    }

    fn count_op(&mut self) -> ApiResult<()> {
        self.ops += 1;
        if self.ops > MAX_OPERATORS {
            return Err(ApiError::validation(format!(
                "The statement contains too many operators; operator count: {}",
                self.ops
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> ApiResult<Expr> {
        let mut e = self.and()?;
        while self.eat_word("OR") {
            self.count_op()?;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> ApiResult<Expr> {
        let mut e = self.not()?;
        while self.eat_word("AND") {
            self.count_op()?;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> ApiResult<Expr> {
        let mut nots = 0usize;
        while self.eat_word("NOT") {
            self.count_op()?;
            nots += 1;
        }
        let mut e = self.predicate()?;
        for _ in 0..nots {
            e = Expr::Not(Box::new(e));
        }
        Ok(e)
    }

    fn predicate(&mut self) -> ApiResult<Expr> {
        let left = self.additive()?;
        let cmp = match self.peek() {
            Some(Tok::Sym(s)) if ["=", "<>", "!=", "<", "<=", ">", ">="].contains(s) => Some(*s),
            _ => None,
        };
        if let Some(op) = cmp {
            self.count_op()?;
            self.at += 1;
            let op = if op == "!=" { "<>" } else { op };
            return Ok(Expr::Cmp(Box::new(left), op, Box::new(self.additive()?)));
        }
        if self.eat_word("BETWEEN") {
            let low = self.additive()?;
            self.word("AND")?;
            let high = self.additive()?;
            return Ok(Expr::Between(Box::new(left), Box::new(low), Box::new(high)));
        }
        let negated_in = self.is_word("NOT")
            && matches!(self.peek_at(1), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IN"));
        if negated_in {
            self.at += 1;
        }
        if self.eat_word("IN") {
            let close = if self.eat_sym("[") {
                "]"
            } else {
                self.sym("(")?;
                ")"
            };
            let list = self.list(Self::additive)?;
            self.sym(close)?;
            let e = Expr::In(Box::new(left), list);
            return Ok(if negated_in {
                Expr::Not(Box::new(e))
            } else {
                e
            });
        }
        if self.eat_word("IS") {
            let negated = self.eat_word("NOT");
            let null = if self.eat_word("NULL") {
                true
            } else {
                self.word("MISSING")?;
                false
            };
            return Ok(Expr::Is {
                e: Box::new(left),
                negated,
                null,
            });
        }
        Ok(left)
    }

    fn additive(&mut self) -> ApiResult<Expr> {
        let mut e = self.primary()?;
        loop {
            let op = if self.eat_sym("+") {
                '+'
            } else if self.eat_sym("-") {
                '-'
            } else {
                return Ok(e);
            };
            self.count_op()?;
            e = Expr::Arith(Box::new(e), op, Box::new(self.primary()?));
        }
    }

    fn primary(&mut self) -> ApiResult<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ApiError::validation(format!(
                "The statement has too many nested levels; more than {MAX_DEPTH}"
            )));
        }
        let e = self.primary_inner();
        self.depth -= 1;
        e
    }

    fn primary_inner(&mut self) -> ApiResult<Expr> {
        let Some(tok) = self.next() else {
            return Err(self.bad());
        };
        Ok(match tok {
            Tok::Str(s) => Expr::Value(json!({ "S": s })),
            Tok::Num(n) => Expr::Value(json!({ "N": n })),
            Tok::Sym("-") => match self.next() {
                Some(Tok::Num(n)) => Expr::Value(json!({ "N": format!("-{n}") })),
                _ => return Err(self.bad()),
            },
            Tok::Param => {
                let v = self.params.get(self.next_param).cloned().ok_or_else(|| {
                    ApiError::validation(
                        "Number of parameters in request and statement don't match.",
                    )
                })?;
                self.next_param += 1;
                Expr::Value(v)
            }
            Tok::Sym("(") => {
                let e = self.or()?;
                self.sym(")")?;
                e
            }
            Tok::Sym("{") => self.tuple()?,
            Tok::Sym("[") => {
                let items = self.constants("]")?;
                Expr::Value(json!({ "L": items }))
            }
            Tok::Sym("<<") => self.bag()?,
            Tok::Word(w) if self.peek() == Some(&Tok::Sym("(")) => {
                self.at += 1;
                let mut args = Vec::new();
                if !self.eat_sym(")") {
                    args = self.list(Self::additive)?;
                    self.sym(")")?;
                }
                Expr::Call(w.to_ascii_lowercase(), args)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Expr::Value(json!({ "BOOL": true })),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => {
                Expr::Value(json!({ "BOOL": false }))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Expr::Value(json!({ "NULL": true })),
            Tok::Word(w) if w.eq_ignore_ascii_case("missing") => {
                return Err(ApiError::validation(
                    "Unsupported data type: MISSING under key root",
                ))
            }
            Tok::Word(_) | Tok::Quoted(_) => {
                self.at -= 1;
                Expr::Path(self.path()?)
            }
            _ => return Err(self.bad()),
        })
    }

    /// Comma-separated constants up to `close`.
    fn constants(&mut self, close: &str) -> ApiResult<Vec<Json>> {
        if self.eat_sym(close) {
            return Ok(Vec::new());
        }
        let out = self.list(|p| match p.additive()? {
            Expr::Value(v) => Ok(v),
            _ => Err(p.bad()),
        })?;
        self.sym(close)?;
        Ok(out)
    }

    /// `{'name': value, …}` after its `{`: a map.
    fn tuple(&mut self) -> ApiResult<Expr> {
        let mut map = Map::new();
        if !self.eat_sym("}") {
            loop {
                let key = match self.next() {
                    Some(Tok::Str(s)) | Some(Tok::Quoted(s)) => s,
                    _ => return Err(self.bad()),
                };
                self.sym(":")?;
                let value = match self.additive()? {
                    Expr::Value(v) => v,
                    _ => return Err(self.bad()),
                };
                if map.insert(key.clone(), value).is_some() {
                    return Err(ApiError::validation(format!(
                        "Duplicate keys in tuple. Key: {key} under root"
                    )));
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.sym("}")?;
        }
        Ok(Expr::Value(json!({ "M": map })))
    }

    /// `<<value, …>>` after its `<<`: a string or number set.
    fn bag(&mut self) -> ApiResult<Expr> {
        let items = self.constants(">>")?;
        if items.is_empty() {
            return Err(ApiError::validation("Empty bags are not supported"));
        }
        for kind in ["S", "N", "B"] {
            if items.iter().all(|v| v.get(kind).is_some()) {
                let members: Vec<Json> = items.iter().map(|v| v[kind].clone()).collect();
                return Ok(Expr::Value(json!({ format!("{kind}S"): members })));
            }
        }
        Err(ApiError::validation(
            "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathElem {
        PathElem::Key(k.into())
    }

    #[test]
    fn parses_each_statement() {
        let s = parse(
            r#"select a, "b".c[2] FROM "T"."ix" where pk = ? and not n < 3 order by sk desc"#,
            &[json!({"S": "x"})],
        )
        .unwrap();
        let Statement::Select(s) = s else { panic!() };
        assert_eq!(
            s.projection,
            Some(vec![
                vec![key("a")],
                vec![key("b"), key("c"), PathElem::Index(2)]
            ])
        );
        assert_eq!((s.table.as_str(), s.index.as_deref()), ("T", Some("ix")));
        assert_eq!(s.order, Some((vec![key("sk")], true)));
        let Some(Expr::And(l, r)) = s.filter else {
            panic!()
        };
        assert_eq!(
            *l,
            Expr::Cmp(
                Box::new(Expr::Path(vec![key("pk")])),
                "=",
                Box::new(Expr::Value(json!({"S": "x"})))
            )
        );
        assert!(matches!(*r, Expr::Not(_)));

        let s = parse(
            "INSERT INTO t VALUE {'a': 1, 'b': <<'x', 'y'>>, 'c': [true, null]}",
            &[],
        )
        .unwrap();
        assert_eq!(
            s,
            Statement::Insert {
                table: "t".into(),
                item: json!({"M": {"a": {"N": "1"}, "b": {"SS": ["x", "y"]},
                    "c": {"L": [{"BOOL": true}, {"NULL": true}]}}}),
            }
        );

        let s = parse(
            "UPDATE t SET a = a + 1, b = list_append(b, [1]) REMOVE c WHERE k = 1 RETURNING MODIFIED NEW *",
            &[],
        )
        .unwrap();
        let Statement::Update {
            actions, returning, ..
        } = s
        else {
            panic!()
        };
        assert_eq!(actions.len(), 3);
        assert_eq!(returning, Some("UPDATED_NEW"));

        let s = parse("DELETE FROM t WHERE k = 1 RETURNING ALL OLD *;", &[]).unwrap();
        assert!(matches!(
            s,
            Statement::Delete {
                returning: Some("ALL_OLD"),
                ..
            }
        ));
    }

    #[test]
    fn refuses_what_dynamodb_refuses() {
        let msg = |s: &str, p: &[Json]| parse(s, p).unwrap_err().message;
        assert!(msg("SELEC * FROM t", &[]).starts_with("Statement wasn't well formed"));
        assert!(msg("SELECT * FROM t WHERE", &[]).starts_with("Statement wasn't well formed"));
        assert!(msg("SELECT a, * FROM t", &[]).starts_with("Statement wasn't well formed"));
        assert!(msg("SELECT * FROM t x", &[]).starts_with("Statement wasn't well formed"));
        assert_eq!(
            msg("SELECT * FROM t WHERE a = ?", &[]),
            "Number of parameters in request and statement don't match."
        );
        assert!(msg("INSERT INTO t VALUE 5", &[]).starts_with("Unsupported format"));
        assert!(msg("INSERT INTO t VALUE {'a': 1, 'a': 2}", &[]).starts_with("Duplicate keys"));
        assert!(msg("INSERT INTO t VALUE {'a': <<>>}", &[]).starts_with("Empty bags"));
        assert!(msg("INSERT INTO t VALUE {'a': <<1, 'x'>>}", &[])
            .starts_with("Unsupported data type in Bag"));
        assert!(msg("DELETE FROM t WHERE k = 1 RETURNING ALL NEW *", &[])
            .starts_with("Invalid returning"));
        assert!(msg("EXISTS(SELECT * FROM t)", &[]).starts_with("EXISTS can only"));
        // Bounded nesting and operator counts: no statement exhausts the stack.
        let deep = format!(
            "SELECT * FROM t WHERE {}a = 1{}",
            "(".repeat(4000),
            ")".repeat(4000)
        );
        assert!(msg(&deep, &[]).contains("too many nested levels"));
        let nots = format!("SELECT * FROM t WHERE {}a = 1", "NOT ".repeat(2000));
        assert!(msg(&nots, &[]).contains("too many operators"));
        let tuple = format!(
            "INSERT INTO t VALUE {}1{}",
            "{'a': ".repeat(2000),
            "}".repeat(2000)
        );
        assert!(msg(&tuple, &[]).contains("too many nested levels"));
    }
}
