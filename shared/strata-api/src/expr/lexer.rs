//! Splits an expression into tokens.

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: an attribute name, keyword or function name.
    Ident(String),
    /// `#name`
    Name(String),
    /// `:value`
    Val(String),
    /// Digits (list indexes).
    Int(String),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Dot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
}

impl Tok {
    pub fn text(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Int(s) => s.clone(),
            Tok::Name(s) | Tok::Val(s) => s.clone(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::LBrack => "[".into(),
            Tok::RBrack => "]".into(),
            Tok::Comma => ",".into(),
            Tok::Dot => ".".into(),
            Tok::Eq => "=".into(),
            Tok::Ne => "<>".into(),
            Tok::Lt => "<".into(),
            Tok::Le => "<=".into(),
            Tok::Gt => ">".into(),
            Tok::Ge => ">=".into(),
            Tok::Plus => "+".into(),
            Tok::Minus => "-".into(),
        }
    }

    /// True for a bare word equal to `kw`, ignoring case.
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The tokens of an expression, and where each lies in it (char offsets,
/// end exclusive), so a syntax error can quote the text around it.
pub type Spans = Vec<(usize, usize)>;

pub fn lex(kind: &str, src: &str) -> ApiResult<(Vec<Tok>, Spans)> {
    let mut out = Vec::new();
    let mut spans: Spans = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let take_word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && word_char(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let two = chars.get(i + 1).copied();
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBrack,
            ']' => Tok::RBrack,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '=' => Tok::Eq,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '<' if two == Some('>') => {
                i += 1;
                Tok::Ne
            }
            '<' if two == Some('=') => {
                i += 1;
                Tok::Le
            }
            '<' => Tok::Lt,
            '>' if two == Some('=') => {
                i += 1;
                Tok::Ge
            }
            '>' => Tok::Gt,
            '#' | ':' => {
                i += 1;
                let w = take_word(&mut i);
                if w.is_empty() {
                    // Quoted with the token before it, as DynamoDB does.
                    let from = spans.last().map_or(start, |s| s.0);
                    let near: String = chars[from..=start].iter().collect();
                    return Err(syntax(kind, &c.to_string(), &near));
                }
                out.push(if c == '#' {
                    Tok::Name(format!("#{w}"))
                } else {
                    Tok::Val(format!(":{w}"))
                });
                spans.push((start, i));
                continue;
            }
            c if c.is_ascii_digit() => {
                let w = take_word(&mut i);
                out.push(if w.bytes().all(|b| b.is_ascii_digit()) {
                    Tok::Int(w)
                } else {
                    Tok::Ident(w)
                });
                spans.push((start, i));
                continue;
            }
            c if word_char(c) => {
                out.push(Tok::Ident(take_word(&mut i)));
                spans.push((start, i));
                continue;
            }
            other => {
                return Err(ApiError::validation(format!(
                    "Invalid {kind}: Invalid token: \"{other}\""
                )))
            }
        };
        out.push(tok);
        i += 1;
        spans.push((start, i));
    }
    Ok((out, spans))
}

pub fn syntax(kind: &str, token: &str, near: &str) -> ApiError {
    ApiError::validation(format!(
        "Invalid {kind}: Syntax error; token: \"{token}\", near: \"{near}\""
    ))
}
