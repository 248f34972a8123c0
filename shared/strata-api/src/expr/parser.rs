//! Recursive-descent parsers for the expression kinds. Precedence, lowest
//! first, as DynamoDB documents it: OR, AND, NOT, then comparisons, BETWEEN,
//! IN and functions, with parentheses overriding.

use strata_engine::Value;

use super::lexer::{lex, syntax, Tok};
use super::reserved::is_reserved;
use super::{
    check_overlap, CmpOp, Cond, DocPath, Operand, PathElem, Placeholders, SetValue, UpdateAction,
    MAX_EXPRESSION_BYTES,
};
use crate::error::{ApiError, ApiResult};

/// Deepest nesting of parentheses and functions accepted (keeps recursion
/// bounded; a run of NOTs is parsed without recursion).
const MAX_DEPTH: usize = 64;
/// Most operators and functions in one expression.
const MAX_OPERATORS: usize = 300;

struct Parser<'a> {
    kind: &'a str,
    toks: Vec<Tok>,
    pos: usize,
    ph: &'a Placeholders,
    depth: usize,
    /// Operators and functions so far (DynamoDB allows 300 an expression).
    ops: usize,
    /// The token span (from its `(` to past its `)`) of the last
    /// parenthesized group parsed: a group that is only another group is
    /// refused, as DynamoDB refuses redundant parentheses.
    last_group: Option<(usize, usize)>,
}

fn check_size(kind: &str, src: &str) -> ApiResult<()> {
    if src.len() > MAX_EXPRESSION_BYTES {
        return Err(ApiError::validation(format!(
            "Invalid {kind}: Expression size has exceeded the maximum allowed size; expression size: {}",
            src.len()
        )));
    }
    if src.trim().is_empty() {
        return Err(ApiError::validation(format!(
            "Invalid {kind}: The expression can not be empty;"
        )));
    }
    Ok(())
}

impl<'a> Parser<'a> {
    fn new(kind: &'a str, src: &str, ph: &'a Placeholders) -> ApiResult<Self> {
        check_size(kind, src)?;
        Ok(Self {
            kind,
            toks: lex(kind, src)?,
            pos: 0,
            ph,
            depth: 0,
            ops: 0,
            last_group: None,
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// A syntax error at the current token, quoting its neighbours as
    /// DynamoDB does (`near: "= = :v"`).
    fn err_here(&self) -> ApiError {
        let token = self.peek().map_or("<EOF>".to_string(), Tok::text);
        let from = self.pos.saturating_sub(1);
        let take = if self.pos == 0 { 2 } else { 3 };
        let near: Vec<String> = self
            .toks
            .iter()
            .skip(from)
            .take(take)
            .map(Tok::text)
            .collect();
        syntax(self.kind, &token, &near.join(" "))
    }

    fn expect(&mut self, t: Tok) -> ApiResult<()> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err_here())
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn done(&self) -> ApiResult<()> {
        if self.pos < self.toks.len() {
            return Err(self.err_here());
        }
        Ok(())
    }

    /// Counts one operator or function: past 300, the expression is
    /// refused (DynamoDB counts AND, OR, NOT, comparisons, BETWEEN, IN,
    /// functions and update arithmetic).
    fn count_op(&mut self) -> ApiResult<()> {
        self.ops += 1;
        if self.ops > MAX_OPERATORS {
            return Err(ApiError::validation(format!(
                "Invalid {}: The expression contains too many operators; operator count: {}",
                self.kind, self.ops
            )));
        }
        Ok(())
    }

    fn enter(&mut self) -> ApiResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ApiError::validation(format!(
                "Invalid {}: The expression has too many nested levels",
                self.kind
            )));
        }
        Ok(())
    }

    // ------------------------------------------------------------ paths

    fn path(&mut self) -> ApiResult<DocPath> {
        let mut path = vec![PathElem::Key(self.path_name()?)];
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    path.push(PathElem::Key(self.path_name()?));
                }
                Some(Tok::LBrack) => {
                    self.pos += 1;
                    let idx = match self.next() {
                        Some(Tok::Int(s)) => s.parse::<usize>().map_err(|_| {
                            ApiError::validation(format!(
                                "Invalid {}: List index is too large; index: {s}",
                                self.kind
                            ))
                        })?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.err_here());
                        }
                    };
                    self.expect(Tok::RBrack)?;
                    path.push(PathElem::Index(idx));
                }
                _ => return Ok(path),
            }
        }
    }

    fn path_name(&mut self) -> ApiResult<String> {
        match self.next() {
            Some(Tok::Ident(w)) => {
                if is_reserved(&w) {
                    return Err(ApiError::validation(format!(
                        "Invalid {}: Attribute name is a reserved keyword; reserved keyword: {w}",
                        self.kind
                    )));
                }
                Ok(w)
            }
            Some(Tok::Name(n)) => self.ph.name(&n),
            _ => {
                self.pos -= 1;
                Err(self.err_here())
            }
        }
    }

    // ------------------------------------------------------------ conditions

    fn or(&mut self) -> ApiResult<Cond> {
        let mut left = self.and()?;
        while self.eat_kw("OR") {
            self.count_op()?;
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> ApiResult<Cond> {
        let mut left = self.not()?;
        while self.eat_kw("AND") {
            self.count_op()?;
            let right = self.not()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> ApiResult<Cond> {
        let mut nots = 0;
        while self.eat_kw("NOT") {
            self.count_op()?;
            nots += 1;
        }
        let mut c = self.primary()?;
        for _ in 0..nots {
            c = Cond::Not(Box::new(c));
        }
        Ok(c)
    }

    fn primary(&mut self) -> ApiResult<Cond> {
        if self.peek() == Some(&Tok::LParen) {
            let open = self.pos;
            self.pos += 1;
            self.enter()?;
            let c = self.or()?;
            self.depth -= 1;
            if self.last_group == Some((open + 1, self.pos)) {
                return Err(ApiError::validation(format!(
                    "Invalid {}: The expression has redundant parentheses;",
                    self.kind
                )));
            }
            self.expect(Tok::RParen)?;
            self.last_group = Some((open, self.pos));
            return Ok(c);
        }
        // Function names are case-sensitive.
        if let (Some(Tok::Ident(f)), Some(Tok::LParen)) = (self.peek(), self.peek_at(1)) {
            if f != "size" {
                let f = f.clone();
                return self.function(&f);
            }
        }
        let left = self.operand()?;
        if self.eat_kw("BETWEEN") {
            self.count_op()?;
            let lo = self.operand()?;
            if !self.eat_kw("AND") {
                return Err(self.err_here());
            }
            let hi = self.operand()?;
            self.orderable("BETWEEN", [&left, &lo, &hi])?;
            if let (Operand::Value(a), Operand::Value(b)) = (&lo, &hi) {
                if super::eval::compare(a, b).is_some_and(|o| o.is_gt()) {
                    return Err(ApiError::validation(format!(
                        "Invalid {}: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; \
                         lower bound operand: AttributeValue: {{{}:{}}}, upper bound operand: AttributeValue: {{{}:{}}}",
                        self.kind,
                        a.type_name(),
                        scalar_text(a),
                        b.type_name(),
                        scalar_text(b)
                    )));
                }
            }
            return Ok(Cond::Between(left, lo, hi));
        }
        if self.eat_kw("IN") {
            self.count_op()?;
            self.expect(Tok::LParen)?;
            let mut list = vec![self.operand()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                list.push(self.operand()?);
            }
            self.expect(Tok::RParen)?;
            if list.len() > 100 {
                return Err(ApiError::validation(format!(
                    "Invalid {}: The IN operator is provided with too many operands; number of operands: {}",
                    self.kind,
                    list.len()
                )));
            }
            return Ok(Cond::In(left, list));
        }
        let op = match self.next() {
            Some(Tok::Eq) => CmpOp::Eq,
            Some(Tok::Ne) => CmpOp::Ne,
            Some(Tok::Lt) => CmpOp::Lt,
            Some(Tok::Le) => CmpOp::Le,
            Some(Tok::Gt) => CmpOp::Gt,
            Some(Tok::Ge) => CmpOp::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.err_here());
            }
        };
        self.count_op()?;
        let right = self.operand()?;
        let symbol = match op {
            CmpOp::Lt => Some("<"),
            CmpOp::Le => Some("<="),
            CmpOp::Gt => Some(">"),
            CmpOp::Ge => Some(">="),
            CmpOp::Eq | CmpOp::Ne => None,
        };
        if let Some(symbol) = symbol {
            self.orderable(symbol, [&left, &right])?;
        }
        Ok(Cond::Cmp(left, op, right))
    }

    /// Ordering compares numbers, strings and binaries only: a value of any
    /// other type is refused before any item is read.
    fn orderable<const N: usize>(&self, op: &str, operands: [&Operand; N]) -> ApiResult<()> {
        for o in operands {
            if let Operand::Value(v) = o {
                if !matches!(v, Value::N(_) | Value::S(_) | Value::B(_)) {
                    return Err(self.operand_type(op, v));
                }
            }
        }
        Ok(())
    }

    fn function(&mut self, f: &str) -> ApiResult<Cond> {
        self.count_op()?;
        self.pos += 2; // name and '('
        let c = match f {
            "attribute_exists" => Cond::Exists(self.path()?),
            "attribute_not_exists" => Cond::NotExists(self.path()?),
            "attribute_type" => {
                // The first operand may be a value too; the type must be
                // a string value naming a type (DynamoDB Local's words).
                let o = self.operand()?;
                self.expect(Tok::Comma)?;
                let t = match self.operand()? {
                    Operand::Value(Value::S(s)) => s,
                    Operand::Value(v) => return Err(self.operand_type("attribute_type", &v)),
                    Operand::Path(_) | Operand::Size(_) => {
                        return Err(ApiError::validation(format!(
                            "Invalid {}: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: \
                             {{BOOL,HD,DECIMALSET,INTSET,DOUBLE,L,DICT,S,FS,M,N,NS,DECIMAL,SS,DOUBLESET,BS,NULL,FLOAT,B,HDS,INT}}",
                            self.kind
                        )))
                    }
                };
                if !["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"]
                    .contains(&t.as_str())
                {
                    return Err(ApiError::validation(format!(
                        "Invalid {}: Invalid attribute type name found; type: {t}, valid types: {{N,BS,L,B,NULL,M,S,SS,NS,BOOL}}",
                        self.kind
                    )));
                }
                Cond::Type(o, t)
            }
            "begins_with" => {
                let a = self.operand()?;
                self.expect(Tok::Comma)?;
                let b = self.operand()?;
                for o in [&a, &b] {
                    if let Operand::Value(v) = o {
                        if !matches!(v, Value::S(_) | Value::B(_)) {
                            return Err(self.operand_type("begins_with", v));
                        }
                    }
                }
                Cond::BeginsWith(a, b)
            }
            "contains" => {
                let a = self.operand()?;
                self.expect(Tok::Comma)?;
                let b = self.operand()?;
                if let (Operand::Path(p), Operand::Path(q)) = (&a, &b) {
                    if p == q {
                        return Err(ApiError::validation(format!(
                            "Invalid {}: The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: {}",
                            self.kind,
                            super::show_path(p)
                        )));
                    }
                }
                Cond::Contains(a, b)
            }
            other => {
                return Err(ApiError::validation(format!(
                    "Invalid {}: Invalid function name; function: {other}",
                    self.kind
                )))
            }
        };
        self.expect(Tok::RParen)?;
        Ok(c)
    }

    fn operand_type(&self, func: &str, v: &Value) -> ApiError {
        ApiError::validation(format!(
            "Invalid {}: Incorrect operand type for operator or function; operator or function: {func}, operand type: {}",
            self.kind,
            v.type_name()
        ))
    }

    fn operand(&mut self) -> ApiResult<Operand> {
        match self.peek() {
            Some(Tok::Val(v)) => {
                let v = v.clone();
                self.pos += 1;
                Ok(Operand::Value(self.ph.value(&v)?))
            }
            Some(Tok::Ident(f)) if f == "size" && self.peek_at(1) == Some(&Tok::LParen) => {
                self.count_op()?;
                self.pos += 2;
                // The size of a value is known now.
                if let Some(Tok::Val(v)) = self.peek() {
                    let v = self.ph.value(&v.clone())?;
                    self.pos += 1;
                    self.expect(Tok::RParen)?;
                    let size =
                        super::eval::size_of(&v).ok_or_else(|| self.operand_type("size", &v))?;
                    return Ok(Operand::Value(size));
                }
                let p = self.path()?;
                self.expect(Tok::RParen)?;
                Ok(Operand::Size(p))
            }
            Some(Tok::Ident(f)) if self.peek_at(1) == Some(&Tok::LParen) => {
                let f = f.clone();
                Err(ApiError::validation(format!(
                    "Invalid {}: The function is not allowed to be used this way in an expression; function: {f}",
                    self.kind
                )))
            }
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    // ------------------------------------------------------------ updates

    fn set_value(&mut self) -> ApiResult<SetValue> {
        let left = self.set_operand()?;
        match self.peek() {
            Some(Tok::Plus) => {
                self.pos += 1;
                self.count_op()?;
                Ok(SetValue::Plus(
                    Box::new(left),
                    Box::new(self.set_operand()?),
                ))
            }
            Some(Tok::Minus) => {
                self.pos += 1;
                self.count_op()?;
                Ok(SetValue::Minus(
                    Box::new(left),
                    Box::new(self.set_operand()?),
                ))
            }
            _ => Ok(left),
        }
    }

    fn set_operand(&mut self) -> ApiResult<SetValue> {
        if let (Some(Tok::Ident(f)), Some(Tok::LParen)) = (self.peek(), self.peek_at(1)) {
            let f = f.clone();
            self.enter()?;
            let v = match f.as_str() {
                // A function's arguments are operands: no arithmetic.
                "if_not_exists" => {
                    self.count_op()?;
                    self.pos += 2;
                    let p = self.path()?;
                    self.expect(Tok::Comma)?;
                    let v = self.set_operand()?;
                    self.expect(Tok::RParen)?;
                    SetValue::IfNotExists(p, Box::new(v))
                }
                "list_append" => {
                    self.count_op()?;
                    self.pos += 2;
                    let a = self.set_operand()?;
                    self.expect(Tok::Comma)?;
                    let b = self.set_operand()?;
                    self.expect(Tok::RParen)?;
                    SetValue::ListAppend(Box::new(a), Box::new(b))
                }
                "size" => SetValue::Operand(self.operand()?),
                other => {
                    return Err(ApiError::validation(format!(
                        "Invalid {}: Invalid function name; function: {other}",
                        self.kind
                    )))
                }
            };
            self.depth -= 1;
            return Ok(v);
        }
        Ok(SetValue::Operand(self.operand()?))
    }

    fn update(&mut self) -> ApiResult<Vec<UpdateAction>> {
        let mut actions = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        while let Some(t) = self.next() {
            let clause = match &t {
                Tok::Ident(w)
                    if ["SET", "REMOVE", "ADD", "DELETE"]
                        .iter()
                        .any(|k| w.eq_ignore_ascii_case(k)) =>
                {
                    w.to_ascii_uppercase()
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.err_here());
                }
            };
            if seen.contains(&clause) {
                return Err(ApiError::validation(format!(
                    "Invalid {}: The \"{clause}\" section can only be used once in an update expression;",
                    self.kind
                )));
            }
            seen.push(clause.clone());
            loop {
                let path = self.path()?;
                let action = match clause.as_str() {
                    "SET" => {
                        self.expect(Tok::Eq)?;
                        UpdateAction::Set(path, self.set_value()?)
                    }
                    "REMOVE" => UpdateAction::Remove(path),
                    _ => {
                        let v = match self.operand()? {
                            Operand::Value(v) => v,
                            _ => return Err(self.err_here()),
                        };
                        let ok = if clause == "ADD" {
                            matches!(v, Value::N(_) | Value::SS(_) | Value::NS(_) | Value::BS(_))
                        } else {
                            matches!(v, Value::SS(_) | Value::NS(_) | Value::BS(_))
                        };
                        if !ok {
                            return Err(self.operand_type(&clause, &v));
                        }
                        if clause == "ADD" {
                            UpdateAction::Add(path, v)
                        } else {
                            UpdateAction::Delete(path, v)
                        }
                    }
                };
                actions.push(action);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        if actions.is_empty() {
            return Err(self.err_here());
        }
        let paths: Vec<&DocPath> = actions.iter().map(UpdateAction::path).collect();
        check_overlap(self.kind, &paths)?;
        Ok(actions)
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::S(s) => s.clone(),
        Value::N(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// A condition (ConditionExpression, FilterExpression, KeyConditionExpression).
pub fn parse_condition(kind: &str, src: &str, ph: &Placeholders) -> ApiResult<Cond> {
    let mut p = Parser::new(kind, src, ph)?;
    let c = p.or()?;
    p.done()?;
    Ok(c)
}

pub fn parse_update(src: &str, ph: &Placeholders) -> ApiResult<Vec<UpdateAction>> {
    let mut p = Parser::new("UpdateExpression", src, ph)?;
    p.update()
}

pub fn parse_projection(src: &str, ph: &Placeholders) -> ApiResult<Vec<DocPath>> {
    let mut p = Parser::new("ProjectionExpression", src, ph)?;
    let mut paths = vec![p.path()?];
    while p.peek() == Some(&Tok::Comma) {
        p.pos += 1;
        paths.push(p.path()?);
    }
    p.done()?;
    check_overlap("ProjectionExpression", &paths.iter().collect::<Vec<_>>())?;
    Ok(paths)
}
