//! The `$filter` subset (brief, facts 2.3): `eq ne gt ge lt le`, `and`,
//! `or`, `not`, parentheses, `contains`/`startswith`/`endswith`; literals
//! `'text'` (`''` for a quote), unquoted GUIDs, numbers, `true`/`false`,
//! `null`, unquoted dates and datetimes. Columns are checked against the
//! table and literals against the column's type; a malformed filter or a
//! literal of the wrong type is a 400.

use super::cell::{Cell, Guid, fold, parse_date, parse_datetime};
use super::reply::ApiError;
use super::store::Row;
use super::table::{Kind, Table};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        column: usize,
        op: Op,
        value: Cell,
    },
    Text {
        column: usize,
        func: Func,
        folded: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Str(String),
    Word(String),
}

fn malformed(detail: &str) -> ApiError {
    ApiError::bad_request(format!("Syntax error in $filter: {detail}"))
}

fn lex(text: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(malformed("unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | ',' | '\'')
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    table: Table,
    alt_key: Option<&'a str>,
}

impl Filter {
    pub(crate) fn parse(
        text: &str,
        table: Table,
        alt_key: Option<&str>,
    ) -> Result<Filter, ApiError> {
        let mut parser = Parser {
            tokens: lex(text)?,
            at: 0,
            table,
            alt_key,
        };
        let filter = parser.or()?;
        if parser.at != parser.tokens.len() {
            return Err(malformed("unexpected text after the expression"));
        }
        Ok(filter)
    }

    /// The GUIDs this filter asks `column` to equal, when it is nothing
    /// but `column eq <guid>` joined by `or`: such a filter is answered
    /// from an index instead of by scanning the table.
    pub(crate) fn guids_of(&self, column: usize) -> Option<Vec<Guid>> {
        match self {
            Filter::Or(a, b) => {
                let mut guids = a.guids_of(column)?;
                guids.extend(b.guids_of(column)?);
                Some(guids)
            }
            Filter::Compare {
                column: c,
                op: Op::Eq,
                value: Cell::Guid(guid) | Cell::Ref(_, guid),
            } if *c == column => Some(vec![*guid]),
            _ => None,
        }
    }

    pub(crate) fn matches(&self, table: Table, key: &Guid, row: &Row) -> bool {
        match self {
            Filter::And(a, b) => a.matches(table, key, row) && b.matches(table, key, row),
            Filter::Or(a, b) => a.matches(table, key, row) || b.matches(table, key, row),
            Filter::Not(a) => !a.matches(table, key, row),
            Filter::Compare { column, op, value } => {
                let cell = value_of(table, key, row, *column);
                compare(&cell, *op, value)
            }
            Filter::Text {
                column,
                func,
                folded,
            } => match value_of(table, key, row, *column) {
                Cell::Text(s) => {
                    let s = fold(&s);
                    match func {
                        Func::Contains => s.contains(folded.as_str()),
                        Func::StartsWith => s.starts_with(folded.as_str()),
                        Func::EndsWith => s.ends_with(folded.as_str()),
                    }
                }
                _ => false,
            },
        }
    }
}

/// A row's value of a column, the key and version included.
pub(crate) fn value_of(table: Table, key: &Guid, row: &Row, column: usize) -> Cell {
    match table.columns().get(column).map(|c| c.kind) {
        Some(Kind::Key) => Cell::Guid(*key),
        Some(Kind::Version) => Cell::Int(i64::try_from(row.version).unwrap_or(i64::MAX)),
        _ => row.cells.get(column).cloned().unwrap_or(Cell::Null),
    }
}

/// OData comparison: `eq null` finds nulls, `ne` keeps them (?), an
/// ordering comparison never holds for null.
fn compare(cell: &Cell, op: Op, value: &Cell) -> bool {
    if cell.is_null() || value.is_null() {
        let both = cell.is_null() && value.is_null();
        return match op {
            Op::Eq => both,
            Op::Ne => !both,
            _ => false,
        };
    }
    let Some(order) = cell.compare(value) else {
        return false;
    };
    match op {
        Op::Eq => order == Ordering::Equal,
        Op::Ne => order != Ordering::Equal,
        Op::Gt => order == Ordering::Greater,
        Op::Ge => order != Ordering::Less,
        Op::Lt => order == Ordering::Less,
        Op::Le => order != Ordering::Greater,
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn or(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ApiError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ApiError> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), ApiError> {
        if self.next() == Some(token) {
            Ok(())
        } else {
            Err(malformed(&format!("expected {what}")))
        }
    }

    fn column(&self, name: &str) -> Result<usize, ApiError> {
        self.table
            .column(name, self.alt_key)
            .ok_or_else(|| ApiError::no_property(self.table.logical_name(), name))
    }

    fn primary(&mut self) -> Result<Filter, ApiError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                let func = match word.as_str() {
                    "contains" => Some(Func::Contains),
                    "startswith" => Some(Func::StartsWith),
                    "endswith" => Some(Func::EndsWith),
                    _ => None,
                };
                if let Some(func) = func
                    && self.peek() == Some(&Token::Open)
                {
                    return self.function(func);
                }
                let column = self.column(&word)?;
                let op = match self.next() {
                    Some(Token::Word(op)) => match op.as_str() {
                        "eq" => Op::Eq,
                        "ne" => Op::Ne,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        other => return Err(malformed(&format!("unknown operator '{other}'"))),
                    },
                    _ => return Err(malformed("expected a comparison operator")),
                };
                let literal = self.next().ok_or_else(|| malformed("expected a literal"))?;
                let value = self.literal(column, &literal)?;
                Ok(Filter::Compare { column, op, value })
            }
            _ => Err(malformed("expected an expression")),
        }
    }

    fn function(&mut self, func: Func) -> Result<Filter, ApiError> {
        self.expect(Token::Open, "'('")?;
        let Some(Token::Word(name)) = self.next() else {
            return Err(malformed("expected a column name"));
        };
        let column = self.column(&name)?;
        self.expect(Token::Comma, "','")?;
        let Some(Token::Str(arg)) = self.next() else {
            return Err(malformed("expected a string literal"));
        };
        self.expect(Token::Close, "')'")?;
        let kind = self.table.columns()[column].kind;
        if !matches!(kind, Kind::Text { .. } | Kind::AltKey) {
            return Err(incompatible("Edm.String", kind));
        }
        Ok(Filter::Text {
            column,
            func,
            folded: fold(&arg),
        })
    }

    fn literal(&self, column: usize, token: &Token) -> Result<Cell, ApiError> {
        let kind = self.table.columns()[column].kind;
        let word = match token {
            Token::Str(s) => {
                return match kind {
                    Kind::Text { .. } | Kind::AltKey => Ok(Cell::Text(s.as_str().into())),
                    _ => Err(incompatible("Edm.String", kind)),
                };
            }
            Token::Word(w) => w.as_str(),
            _ => return Err(malformed("expected a literal")),
        };
        if word == "null" {
            return Ok(Cell::Null);
        }
        let (found, cell) = if word == "true" || word == "false" {
            ("Edm.Boolean", Cell::Bool(word == "true"))
        } else if let Some(g) = Guid::parse(word) {
            ("Edm.Guid", Cell::Guid(g))
        } else if let Some(ms) = parse_datetime(word) {
            ("Edm.DateTimeOffset", Cell::Time(ms))
        } else if let Some(d) = parse_date(word) {
            ("Edm.Date", Cell::Date(d))
        } else if let Ok(n) = word.parse::<i64>() {
            ("Edm.Int32", Cell::Int(n))
        } else if let Ok(x) = word.parse::<f64>() {
            ("Edm.Decimal", Cell::Dec(x))
        } else {
            return Err(malformed(&format!("'{word}' is not a literal")));
        };
        let fits = match kind {
            Kind::Key | Kind::Lookup(_) => found == "Edm.Guid",
            Kind::Bool => found == "Edm.Boolean",
            Kind::Date | Kind::DateTime => matches!(found, "Edm.Date" | "Edm.DateTimeOffset"),
            Kind::Int | Kind::Choice(_) | Kind::State(_) | Kind::Status(_) | Kind::Version => {
                found == "Edm.Int32"
            }
            Kind::Money => matches!(found, "Edm.Int32" | "Edm.Decimal"),
            Kind::Text { .. } | Kind::AltKey => false,
        };
        if fits {
            Ok(cell)
        } else {
            Err(incompatible(found, kind))
        }
    }
}

fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Key | Kind::Lookup(_) => "Edm.Guid",
        Kind::Text { .. } | Kind::AltKey => "Edm.String",
        Kind::Int | Kind::Choice(_) | Kind::State(_) | Kind::Status(_) => "Edm.Int32",
        Kind::Money => "Edm.Decimal",
        Kind::Bool => "Edm.Boolean",
        Kind::Date => "Edm.Date",
        Kind::DateTime => "Edm.DateTimeOffset",
        Kind::Version => "Edm.Int64",
    }
}

/// A literal of the wrong type for its column (wording general knowledge (?)).
fn incompatible(found: &str, kind: Kind) -> ApiError {
    ApiError::bad_request(format!(
        "A binary operator with incompatible types was detected. Found operand types '{}' and '{found}' for operator kind 'Equal'.",
        type_name(kind)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::text;

    fn row(name: &str) -> (Guid, Row) {
        let mut cells = vec![Cell::Null; Table::Opportunity.columns().len()];
        cells[1] = text(name);
        cells[7] = Cell::Int(2);
        (
            Guid([7; 16]),
            Row {
                cells: cells.into_boxed_slice(),
                version: 5,
                corrupt: false,
            },
        )
    }

    fn check(filter: &str, name: &str) -> bool {
        let (key, row) = row(name);
        Filter::parse(filter, Table::Opportunity, None)
            .unwrap()
            .matches(Table::Opportunity, &key, &row)
    }

    #[test]
    fn doubled_quotes_match_a_single_quote() {
        assert!(check("name eq 'Won''t Close'", "Won't Close"));
        assert!(!check("name eq 'Wont Close'", "Won't Close"));
        assert!(check("contains(name,'n''t')", "Won't Close"));
    }

    #[test]
    fn and_or_not_and_parentheses_combine() {
        assert!(check(
            "salesstage eq 2 and (name eq 'x' or startswith(name,'Big'))",
            "Big deal"
        ));
        assert!(check("not (salesstage eq 1)", "a"));
        assert!(!check("salesstage gt 2 or endswith(name,'z')", "a"));
        assert!(check("estimatedvalue eq null and versionnumber ge 5", "a"));
    }

    #[test]
    fn malformed_filters_and_literals_of_the_wrong_type_are_refused() {
        for bad in [
            "name eq 'open",
            "name eq",
            "salesstage eq 'Propose'",
            "name eq 3",
            "(name eq 'a'",
            "nosuch eq 1",
            "_ownerid_value eq 'x'",
            "salesstage equals 2",
        ] {
            let err = Filter::parse(bad, Table::Opportunity, None).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{bad}");
        }
    }
}
