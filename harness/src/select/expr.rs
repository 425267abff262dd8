//! Selection expressions: pytest's `-m` / `-k` grammar, parsed into an [`Expr`].
//!
//! The grammar and the error messages follow pytest's `_pytest/mark/expression.py`, so that a
//! user who knows `pytest -m "e2e and not slow"` knows ours, down to the wording of mistakes:
//!
//! ```text
//! expression: expr? EOF
//! expr:       and_expr ('or' and_expr)*
//! and_expr:   not_expr ('and' not_expr)*
//! not_expr:   'not' not_expr | '(' expr ')' | ident
//! ident:      (\w|:|\+|-|\.|\[|\]|\\|/)+
//! ```
//!
//! Precedence is `not` > `and` > `or`. An empty expression matches nothing (pytest's rule;
//! callers treat an empty *flag* as "no filter", as pytest's option handling does). Columns
//! in errors are 1-based and count characters, not bytes.
//!
//! This module is pure: it parses and evaluates against a caller-supplied matcher, and knows
//! nothing about markers or test names.

use std::fmt;

/// A parsed selection expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// The empty expression: matches nothing.
    Empty,
    /// An identifier, matched by the caller's matcher.
    Ident(String),
    /// Logical negation.
    Not(Box<Expr>),
    /// Both sides match.
    And(Box<Expr>, Box<Expr>),
    /// Either side matches.
    Or(Box<Expr>, Box<Expr>),
}

/// A syntax error: where (1-based character column) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct ParseError {
    /// 1-based column, counted in characters.
    pub column: usize,
    /// pytest's wording, e.g. `expected not OR left parenthesis OR identifier; got end of input`.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    LParen,
    RParen,
    Or,
    And,
    Not,
    Ident,
    Eof,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::LParen => "left parenthesis",
            Kind::RParen => "right parenthesis",
            Kind::Or => "or",
            Kind::And => "and",
            Kind::Not => "not",
            Kind::Ident => "identifier",
            Kind::Eof => "end of input",
        })
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    /// 0-based character position.
    pos: usize,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | ':' | '+' | '-' | '.' | '[' | ']' | '\\' | '/')
}

fn tokenize(input: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let c = chars[pos];
        if c.is_whitespace() {
            pos += 1;
        } else if c == '(' || c == ')' {
            let kind = if c == '(' { Kind::LParen } else { Kind::RParen };
            tokens.push(Token { kind, text: c.to_string(), pos });
            pos += 1;
        } else if is_ident_char(c) {
            let start = pos;
            while pos < chars.len() && is_ident_char(chars[pos]) {
                pos += 1;
            }
            let text: String = chars[start..pos].iter().collect();
            let kind = match text.as_str() {
                "or" => Kind::Or,
                "and" => Kind::And,
                "not" => Kind::Not,
                _ => Kind::Ident,
            };
            tokens.push(Token { kind, text, pos: start });
        } else {
            return Err(ParseError { column: pos + 1, message: format!("unexpected character \"{c}\"") });
        }
    }
    tokens.push(Token { kind: Kind::Eof, text: String::new(), pos: chars.len() });
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
}

impl Parser {
    fn current(&self) -> &Token {
        // The token list always ends with Eof and we never advance past it.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn accept(&mut self, kind: Kind) -> Option<Token> {
        let token = self.current().clone();
        if token.kind == kind {
            if kind != Kind::Eof {
                self.next += 1;
            }
            Some(token)
        } else {
            None
        }
    }

    fn reject(&self, expected: &[Kind]) -> ParseError {
        let current = self.current();
        let expected: Vec<String> = expected.iter().map(Kind::to_string).collect();
        ParseError {
            column: current.pos + 1,
            message: format!("expected {}; got {}", expected.join(" OR "), current.kind),
        }
    }

    fn expect(&mut self, kind: Kind) -> Result<Token, ParseError> {
        self.accept(kind).ok_or_else(|| self.reject(&[kind]))
    }

    fn expression(&mut self) -> Result<Expr, ParseError> {
        if self.accept(Kind::Eof).is_some() {
            return Ok(Expr::Empty);
        }
        let expr = self.or_expr()?;
        self.expect(Kind::Eof)?;
        Ok(expr)
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        while self.accept(Kind::Or).is_some() {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not_expr()?;
        while self.accept(Kind::And).is_some() {
            let right = self.not_expr()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        if self.accept(Kind::Not).is_some() {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        if self.accept(Kind::LParen).is_some() {
            let inner = self.or_expr()?;
            self.expect(Kind::RParen)?;
            return Ok(inner);
        }
        if let Some(ident) = self.accept(Kind::Ident) {
            return Ok(Expr::Ident(ident.text));
        }
        Err(self.reject(&[Kind::Not, Kind::LParen, Kind::Ident]))
    }
}

impl Expr {
    /// Parses `input` with pytest's grammar.
    pub fn parse(input: &str) -> Result<Expr, ParseError> {
        let tokens = tokenize(input)?;
        Parser { tokens, next: 0 }.expression()
    }

    /// Evaluates the expression, asking `matches` about each identifier.
    pub fn eval(&self, matches: &mut impl FnMut(&str) -> bool) -> bool {
        match self {
            Expr::Empty => false,
            Expr::Ident(name) => matches(name),
            Expr::Not(inner) => !inner.eval(matches),
            Expr::And(a, b) => a.eval(matches) && b.eval(matches),
            Expr::Or(a, b) => a.eval(matches) || b.eval(matches),
        }
    }

    /// Every identifier in the expression, in order of appearance (with repeats).
    pub fn idents(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_idents(&mut out);
        out
    }

    fn collect_idents<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Empty => {}
            Expr::Ident(name) => out.push(name),
            Expr::Not(inner) => inner.collect_idents(out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect_idents(out);
                b.collect_idents(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(input: &str, truthy: &[&str]) -> bool {
        Expr::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
            .eval(&mut |id| truthy.contains(&id))
    }

    fn error(input: &str) -> (usize, String) {
        let err = Expr::parse(input).expect_err(input);
        (err.column, err.message)
    }

    /// pytest's `test_basic` table, with `true`/`false` as identifiers.
    #[test]
    fn evaluates_like_pytest() {
        let cases: &[(&str, bool)] = &[
            ("true", true),
            ("false", false),
            ("not true", false),
            ("not false", true),
            ("not not true", true),
            ("not not not true", false),
            ("true and true", true),
            ("true and false", false),
            ("false and true", false),
            ("true and true and true", true),
            ("true and true and false", false),
            ("true and not true", false),
            ("false or false", false),
            ("false or true", true),
            ("true or true", true),
            ("true or true or false", true),
            ("true and true or false", true),
            ("not true or true", true),
            ("(not true) or true", true),
            ("not (true or true)", false),
            ("true and true or false and false", true),
            ("true and (true or false) and false", false),
            ("true and (true or (not (not false))) and false", false),
        ];
        for (input, expected) in cases {
            assert_eq!(eval(input, &["true"]), *expected, "{input}");
        }
    }

    #[test]
    fn not_binds_tighter_than_and_tighter_than_or() {
        assert_eq!(
            Expr::parse("a or b and not c").unwrap(),
            Expr::Or(
                Box::new(Expr::Ident("a".into())),
                Box::new(Expr::And(
                    Box::new(Expr::Ident("b".into())),
                    Box::new(Expr::Not(Box::new(Expr::Ident("c".into())))),
                )),
            )
        );
        // (e2e or chaos) and not slow
        assert!(eval("(e2e or chaos) and not slow", &["chaos"]));
        assert!(!eval("(e2e or chaos) and not slow", &["chaos", "slow"]));
        assert!(eval("e2e or chaos and not slow", &["e2e", "slow"]));
    }

    #[test]
    fn nested_parentheses_and_whitespace_oddities() {
        assert!(eval("((((e2e))))", &["e2e"]));
        assert!(eval("  \t e2e\n and\t(  not  slow )  ", &["e2e"]));
        assert!(eval("(e2e)and(not(slow))", &["e2e"]));
        assert!(!eval("((e2e) and ((slow)))", &["e2e"]));
    }

    #[test]
    fn empty_expression_matches_nothing() {
        assert_eq!(Expr::parse("").unwrap(), Expr::Empty);
        assert_eq!(Expr::parse("   ").unwrap(), Expr::Empty);
        assert!(!eval("", &["anything"]));
    }

    /// pytest's `test_syntax_errors` table: column and message.
    #[test]
    fn syntax_errors_name_column_and_expectation() {
        let any = "expected not OR left parenthesis OR identifier";
        let cases: &[(&str, usize, String)] = &[
            ("(", 2, format!("{any}; got end of input")),
            (" (", 3, format!("{any}; got end of input")),
            (")", 1, format!("{any}; got right parenthesis")),
            (") ", 1, format!("{any}; got right parenthesis")),
            ("not", 4, format!("{any}; got end of input")),
            ("not not", 8, format!("{any}; got end of input")),
            ("(not)", 5, format!("{any}; got right parenthesis")),
            ("and", 1, format!("{any}; got and")),
            ("ident and", 10, format!("{any}; got end of input")),
            ("ident and or", 11, format!("{any}; got or")),
            ("ident ident", 7, "expected end of input; got identifier".to_string()),
            ("(ident", 7, "expected right parenthesis; got end of input".to_string()),
            ("a or (b", 8, "expected right parenthesis; got end of input".to_string()),
        ];
        for (input, column, message) in cases {
            assert_eq!(error(input), (*column, message.clone()), "{input:?}");
        }
    }

    #[test]
    fn unexpected_characters_name_their_column() {
        for bad in ["^", "*", "=", "&", "%", "$", "#", "@", "!", "~", "{", "}", "\"", "'", "|", ";", "←"] {
            let (column, message) = error(&format!("ab {bad}"));
            assert_eq!(column, 4, "{bad}");
            assert_eq!(message, format!("unexpected character \"{bad}\""));
        }
        // Columns count characters, not bytes.
        assert_eq!(error("אבג !").0, 5);
    }

    /// pytest's `test_valid_idents`: all of these are single identifiers.
    #[test]
    fn identifiers_are_what_pytest_accepts() {
        let idents = [
            ".",
            "...",
            ":::",
            "a:::c",
            "a+-b",
            "אבגד",
            "aaאבגדcc",
            "a[bcd]",
            "1234",
            "1234abcd",
            "1234and",
            "notandor",
            "not_and_or",
            "not[and]or",
            "1234+5678",
            "123.232",
            "True",
            "False",
            "None",
            "if",
            "else",
            "while",
            "a/b",
            "a\\b",
        ];
        for ident in idents {
            assert_eq!(Expr::parse(ident).unwrap(), Expr::Ident(ident.to_string()), "{ident}");
            assert!(eval(ident, &[ident]));
        }
    }

    #[test]
    fn idents_lists_every_identifier() {
        let expr = Expr::parse("a and (b or not c) or a").unwrap();
        assert_eq!(expr.idents(), ["a", "b", "c", "a"]);
    }
}
