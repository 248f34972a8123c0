//! Recursive-descent parsers for the expression kinds. Precedence, lowest
//! first, as DynamoDB documents it: OR, AND, NOT, then comparisons, BETWEEN,
//! IN and functions, with parentheses overriding.

use strata_engine::Value;

use super::lexer::{lex, syntax, Spans, Tok};
use super::reserved::is_reserved;
use super::{
    check_overlap, long_type_name, CmpOp, Cond, DocPath, Operand, PathElem, Placeholders, SetValue,
    UpdateAction, MAX_EXPRESSION_BYTES,
};
use crate::error::{ApiError, ApiResult};

/// Deepest nesting of parentheses and functions accepted (keeps recursion
/// bounded; a run of NOTs is parsed without recursion).
const MAX_DEPTH: usize = 64;
/// Most levels in one document path (`a.b[0]` has three).
const MAX_PATH_LEVELS: usize = 32;
/// Most operators and functions in one expression.
const MAX_OPERATORS: usize = 300;

struct Parser<'a> {
    kind: &'a str,
    toks: Vec<Tok>,
    /// Where each token lies in `chars`, the expression's text.
    spans: Spans,
    chars: Vec<char>,
    pos: usize,
    ph: &'a Placeholders,
    depth: usize,
    /// Operators and functions so far (DynamoDB allows 300 an expression).
    ops: usize,
    /// The token span (from its `(` to past its `)`) of the last
    /// parenthesized group parsed: a group that is only another group is
    /// refused, as DynamoDB refuses redundant parentheses.
    last_group: Option<(usize, usize)>,
    /// The first error found in what parsed well (an undefined
    /// placeholder, an operand of the wrong type…): DynamoDB reports a
    /// syntax error anywhere in the expression before any of these.
    deferred: Option<ApiError>,
    /// ADD and DELETE operands of the wrong type: DynamoDB reports these
    /// before any other deferred error, a DELETE's before an ADD's.
    bad_delete: Option<ApiError>,
    bad_add: Option<ApiError>,
    /// A list index past a 32-bit int: reported before anything else the
    /// parse deferred (before an update's overlapping paths too).
    bad_index: Option<ApiError>,
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
        let (toks, spans) = lex(kind, src)?;
        Ok(Self {
            kind,
            toks,
            spans,
            chars: src.chars().collect(),
            pos: 0,
            ph,
            depth: 0,
            ops: 0,
            last_group: None,
            deferred: None,
            bad_delete: None,
            bad_add: None,
            bad_index: None,
        })
    }

    /// Records an error to report once the whole expression has parsed.
    fn defer(&mut self, e: ApiError) {
        self.deferred.get_or_insert(e);
    }

    /// The expression parsed: the first deferred error, if any.
    fn finish<T>(&mut self, parsed: T) -> ApiResult<T> {
        match self
            .bad_index
            .take()
            .or_else(|| self.bad_delete.take())
            .or_else(|| self.bad_add.take())
            .or_else(|| self.deferred.take())
        {
            Some(e) => Err(e),
            None => Ok(parsed),
        }
    }

    /// A placeholder's name; an undefined one is deferred.
    fn name_of(&mut self, placeholder: &str) -> String {
        match self.ph.name(placeholder) {
            Ok(n) => n,
            Err(e) => {
                self.defer(self.prefixed(e));
                placeholder.to_string()
            }
        }
    }

    /// A placeholder's value; an undefined one is deferred.
    fn value_of(&mut self, placeholder: &str) -> Value {
        match self.ph.value(placeholder) {
            Ok(v) => v,
            Err(e) => {
                self.defer(self.prefixed(e));
                Value::Null
            }
        }
    }

    fn prefixed(&self, e: ApiError) -> ApiError {
        ApiError::validation(format!("Invalid {}: {}", self.kind, e.message))
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
        // From the token before to the token after (or the expression's
        // end, trailing blanks included), in the expression's own text.
        let from = self
            .pos
            .saturating_sub(1)
            .min(self.toks.len().saturating_sub(1));
        let start = self.spans.get(from).map_or(0, |s| s.0);
        let end = self
            .spans
            .get(self.pos + 1)
            .map_or(self.chars.len(), |s| s.1);
        let near: String = self.chars[start.min(end)..end].iter().collect();
        syntax(self.kind, &token, &near)
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
                        // A list index is a 32-bit int.
                        Some(Tok::Int(s)) => match s.parse::<i32>() {
                            Ok(i) => i as usize,
                            Err(_) => {
                                let kind = self.kind;
                                self.bad_index.get_or_insert(ApiError::validation(format!(
                                    "Invalid {kind}: List index is not within the allowable range; index: [{s}]"
                                )));
                                0
                            }
                        },
                        _ => {
                            self.pos -= 1;
                            return Err(self.err_here());
                        }
                    };
                    self.expect(Tok::RBrack)?;
                    path.push(PathElem::Index(idx));
                }
                _ => {
                    if path.len() > MAX_PATH_LEVELS {
                        let kind = self.kind;
                        self.defer(ApiError::validation(format!(
                            "Invalid {kind}: The document path has too many nesting levels; nesting levels: {}",
                            path.len()
                        )));
                    }
                    return Ok(path);
                }
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
            Some(Tok::Name(n)) => Ok(self.name_of(&n)),
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
            // `(a = b) = :v`: a condition is not an operand. Read on, so
            // an error later in the text is the one reported.
            if matches!(
                self.peek(),
                Some(Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge)
            ) {
                let at = self.pos;
                self.pos += 1;
                self.operand()?;
                self.pos = at;
                return Err(self.err_here());
            }
            return Ok(c);
        }
        // Function names are case-sensitive.
        if let (Some(Tok::Ident(f)), Some(Tok::LParen)) = (self.peek(), self.peek_at(1)) {
            if f != "size" {
                let f = f.clone();
                let c = self.function(&f)?;
                // `begins_with(a, :v) = :v` parses; its meaning does not.
                if matches!(
                    self.peek(),
                    Some(Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge)
                ) {
                    self.pos += 1;
                    self.operand()?;
                    self.defer(ApiError::validation(format!(
                        "Invalid {}: The function is not allowed to be used this way in an expression; function: {f}",
                        self.kind
                    )));
                }
                return Ok(c);
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
            self.distinct("BETWEEN", &left, &[&lo, &hi]);
            self.orderable("BETWEEN", [&left, &lo, &hi]);
            if let (Operand::Value(a), Operand::Value(b)) = (&lo, &hi) {
                let fault = if a.type_name() != b.type_name() {
                    Some("requires same data type for lower and upper bounds")
                } else if super::eval::compare(a, b).is_some_and(|o| o.is_gt()) {
                    Some("requires upper bound to be greater than or equal to lower bound")
                } else {
                    None
                };
                if let Some(fault) = fault {
                    self.defer(ApiError::validation(format!(
                        "Invalid {}: The BETWEEN operator {fault}; lower bound operand: AttributeValue: {{{}:{}}}, \
                         upper bound operand: AttributeValue: {{{}:{}}}",
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
            self.distinct("IN", &left, &list.iter().collect::<Vec<_>>());
            if list.len() > 100 {
                self.defer(ApiError::validation(format!(
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
        let name = match op {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            _ => symbol.unwrap_or_default(),
        };
        self.distinct(name, &left, &[&right]);
        if let Some(symbol) = symbol {
            self.orderable(symbol, [&left, &right]);
        }
        Ok(Cond::Cmp(left, op, right))
    }

    /// Ordering compares numbers, strings and binaries only: a value of any
    /// other type is refused before any item is read.
    /// An operator's first operand, when it is a path, may not be one of
    /// its other operands (`a = a`, `a BETWEEN :v AND a`).
    fn distinct(&mut self, op: &str, first: &Operand, rest: &[&Operand]) {
        let Operand::Path(p) = first else { return };
        if rest.iter().any(|o| matches!(o, Operand::Path(q) if q == p)) {
            self.defer(ApiError::validation(format!(
                "Invalid {}: The first operand must be distinct from the remaining operands for this operator or function; operator: {op}, first operand: {}",
                self.kind,
                super::show_path(p)
            )));
        }
    }

    fn orderable<const N: usize>(&mut self, op: &str, operands: [&Operand; N]) {
        for o in operands {
            if let Operand::Value(v) = o {
                if !matches!(v, Value::N(_) | Value::S(_) | Value::B(_)) {
                    let e = self.operand_type(op, v);
                    self.defer(e);
                    return;
                }
            }
        }
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
                    Operand::Value(v) => {
                        let e = self.operand_type("attribute_type", &v);
                        self.defer(e);
                        "S".to_string()
                    }
                    Operand::Path(_) | Operand::Size(_) => {
                        self.defer(ApiError::validation(format!(
                            "Invalid {}: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: \
                             {{BOOL,HD,DECIMALSET,INTSET,DOUBLE,L,DICT,S,FS,M,N,NS,DECIMAL,SS,DOUBLESET,BS,NULL,FLOAT,B,HDS,INT}}",
                            self.kind
                        )));
                        "S".to_string()
                    }
                };
                if !["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"]
                    .contains(&t.as_str())
                {
                    self.defer(ApiError::validation(format!(
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
                self.distinct("begins_with", &a, &[&b]);
                for o in [&a, &b] {
                    if let Operand::Value(v) = o {
                        if !matches!(v, Value::S(_) | Value::B(_)) {
                            let e = self.operand_type("begins_with", v);
                            self.defer(e);
                        }
                    }
                }
                Cond::BeginsWith(a, b)
            }
            "contains" => {
                let a = self.operand()?;
                self.expect(Tok::Comma)?;
                let b = self.operand()?;
                self.distinct("contains", &a, &[&b]);
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
                Ok(Operand::Value(self.value_of(&v)))
            }
            Some(Tok::Ident(f)) if f == "size" && self.peek_at(1) == Some(&Tok::LParen) => {
                self.count_op()?;
                self.pos += 2;
                // The size of a value is known now.
                if let Some(Tok::Val(v)) = self.peek() {
                    let v = v.clone();
                    let v = self.value_of(&v);
                    self.pos += 1;
                    self.expect(Tok::RParen)?;
                    let size = super::eval::size_of(&v).unwrap_or_else(|| {
                        let e = self.operand_type("size", &v);
                        self.defer(e);
                        Value::Null
                    });
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
                        // An undefined operand is reported as such, not
                        // as an operand of the wrong type.
                        let defined = match self.toks.get(self.pos.wrapping_sub(1)) {
                            Some(Tok::Val(name)) => self.ph.defines_value(name),
                            _ => true,
                        };
                        let ok = !defined
                            || if clause == "ADD" {
                                matches!(
                                    v,
                                    Value::N(_) | Value::SS(_) | Value::NS(_) | Value::BS(_)
                                )
                            } else {
                                matches!(v, Value::SS(_) | Value::NS(_) | Value::BS(_))
                            };
                        if !ok {
                            let e = ApiError::validation(format!(
                                "Invalid {}: Incorrect operand type for operator or function; operator: {clause}, operand type: {}, typeSet: ALLOWED_FOR_{clause}_OPERAND",
                                self.kind,
                                long_type_name(&v)
                            ));
                            if clause == "ADD" {
                                self.bad_add.get_or_insert(e);
                            } else {
                                self.bad_delete.get_or_insert(e);
                            }
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
    p.finish(c)
}

pub fn parse_update(src: &str, ph: &Placeholders) -> ApiResult<Vec<UpdateAction>> {
    let mut p = Parser::new("UpdateExpression", src, ph)?;
    let actions = p.update()?;
    // Overlapping paths are reported after a bad list index and before
    // operand types and placeholders (DynamoDB Local's order).
    if let Some(e) = p.bad_index.take() {
        return Err(e);
    }
    let paths: Vec<&DocPath> = actions.iter().map(UpdateAction::path).collect();
    check_overlap("UpdateExpression", &paths)?;
    p.finish(actions)
}

pub fn parse_projection(src: &str, ph: &Placeholders) -> ApiResult<Vec<DocPath>> {
    let mut p = Parser::new("ProjectionExpression", src, ph)?;
    let mut paths = vec![p.path()?];
    while p.peek() == Some(&Tok::Comma) {
        p.pos += 1;
        paths.push(p.path()?);
    }
    p.done()?;
    let paths = p.finish(paths)?;
    check_overlap("ProjectionExpression", &paths.iter().collect::<Vec<_>>())?;
    Ok(paths)
}
