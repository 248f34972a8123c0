//! Tokens of DynamoDB's PartiQL: keywords and unquoted names, `"quoted"`
//! names, `'strings'` (a doubled quote escapes itself in both), numbers,
//! `?` parameters and punctuation, with `--` comments skipped.

/// One token. Keywords are unquoted names; the parser compares them
/// without regard to case, as PartiQL does.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Word(String),
    Quoted(String),
    Str(String),
    Num(String),
    Param,
    Sym(&'static str),
}

/// Punctuation, longest first so `<<` wins over `<`.
const SYMBOLS: [&str; 22] = [
    "<<", ">>", "<=", ">=", "<>", "!=", "=", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":",
    "*", "+", "-", ";",
];

/// Splits a statement into tokens; `None` for anything that is not one
/// (an unterminated string, a stray character).
pub fn tokens(src: &str) -> Option<Vec<Tok>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if src[i..].starts_with("--") {
            i = src[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if c == b'\'' || c == b'"' {
            let (text, next) = quoted(src, i)?;
            out.push(if c == b'\'' {
                Tok::Str(text)
            } else {
                Tok::Quoted(text)
            });
            i = next;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            out.push(Tok::Num(src[start..i].to_string()));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            out.push(Tok::Word(src[start..i].to_string()));
        } else if c == b'?' {
            out.push(Tok::Param);
            i += 1;
        } else {
            let sym = SYMBOLS.iter().find(|s| src[i..].starts_with(**s))?;
            out.push(Tok::Sym(sym));
            i += sym.len();
        }
    }
    Some(out)
}

/// The text of a quoted token starting at `start`, and where it ends.
fn quoted(src: &str, start: usize) -> Option<(String, usize)> {
    let q = src[start..].chars().next()?;
    let mut text = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == q {
            if chars.peek().map(|(_, n)| *n) == Some(q) {
                chars.next();
                text.push(q);
                continue;
            }
            return Some((text, start + 1 + at + 1));
        }
        text.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_statement() {
        let t =
            tokens(r#"SELECT "a""b", x FROM t WHERE s = 'it''s' AND n >= -1.5e3 AND b = <<?>>"#)
                .unwrap();
        assert_eq!(t[1], Tok::Quoted("a\"b".into()));
        assert!(t.contains(&Tok::Str("it's".into())));
        assert!(t.contains(&Tok::Num("1.5e3".into())));
        assert!(t.contains(&Tok::Sym("<<")));
        assert!(t.contains(&Tok::Param));
        assert_eq!(t.last(), Some(&Tok::Sym(">>")));
    }

    #[test]
    fn refuses_what_is_not_a_token() {
        assert!(tokens("SELECT 'open").is_none());
        assert!(tokens("SELECT # FROM t").is_none());
        assert_eq!(tokens("-- nothing\n").unwrap(), vec![]);
    }
}
