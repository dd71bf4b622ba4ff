//! A hand-written parser and evaluator for the SOQL subset the emulator
//! serves:
//!
//! `SELECT f, ... FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS
//! FIRST|LAST], ...] [LIMIT n]`, with `=, !=, <>, <, <=, >, >=, [NOT] IN
//! (...), LIKE`, `AND`, `OR`, `NOT` and parentheses. As in SOQL, `AND` and
//! `OR` may not be mixed at one level without parentheses. Literals:
//! single-quoted strings with backslash escapes, numbers, `true`, `false`,
//! `null`, unquoted dates (`2026-01-01`) and datetimes
//! (`2026-01-01T00:00:00Z`, `...00.000+0000`). Keywords are
//! case-insensitive; so are field names, object names and text comparisons.

use super::clock;
use super::object::{FieldType, SObject};
use super::store::Record;
use serde_json::Value;
use std::cmp::Ordering;

/// Why a query was refused: the `errorCode` and `message` of the 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub code: &'static str,
    pub message: String,
}

fn malformed(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

/// `\%` and `\_` in a string literal: literal characters in a LIKE pattern.
const ESCAPED_PERCENT: char = '\u{E000}';
const ESCAPED_UNDERSCORE: char = '\u{E001}';

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    /// A number, date or datetime: an unquoted literal starting with a
    /// digit or a minus sign.
    Lit(String),
    Punct(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err(malformed("unterminated string literal"));
                };
                i += 1;
                match c {
                    '\'' => break,
                    '\\' => {
                        let Some(&e) = chars.get(i) else {
                            return Err(malformed("unterminated string literal"));
                        };
                        i += 1;
                        s.push(match e {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            '\'' | '"' | '\\' => e,
                            '%' => ESCAPED_PERCENT,
                            '_' => ESCAPED_UNDERSCORE,
                            'u' => {
                                let hex: String =
                                    chars.get(i..i + 4).unwrap_or(&[]).iter().collect();
                                i += 4;
                                u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or_else(|| malformed("invalid unicode escape"))?
                            }
                            other => {
                                return Err(malformed(format!(
                                    "Invalid string literal: illegal escape sequence \\{other}"
                                )));
                            }
                        });
                    }
                    _ => s.push(c),
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], ':' | '.' | '+' | '-'))
            {
                i += 1;
            }
            tokens.push(Token::Lit(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let punct = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(p) = punct {
                tokens.push(Token::Punct(p));
                i += 2;
                continue;
            }
            let p = match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '=' => "=",
                '<' => "<",
                '>' => ">",
                _ => return Err(malformed(format!("unexpected token: '{c}'"))),
            };
            tokens.push(Token::Punct(p));
            i += 1;
        }
    }
    Ok(tokens)
}

/// A typed literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    Date(i64),
    DateTime(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(Field, Op, Literal),
    In(Field, Vec<Literal>, bool),
    Like(Field, String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Field {
    name: &'static str,
    ty: FieldType,
}

#[derive(Debug, Clone, PartialEq)]
struct Order {
    field: Field,
    descending: bool,
    nulls_first: bool,
}

/// A parsed, checked query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub object: SObject,
    fields: Vec<Field>,
    filter: Option<Cond>,
    order: Vec<Order>,
    limit: Option<usize>,
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    object: SObject,
}

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let hit = is_keyword(self.peek(), keyword);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let hit = matches!(self.peek(), Some(Token::Punct(p)) if *p == punct);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn unexpected(&self) -> QueryError {
        match self.peek() {
            Some(Token::Word(w) | Token::Lit(w)) => malformed(format!("unexpected token: '{w}'")),
            Some(Token::Str(s)) => malformed(format!("unexpected token: '{s}'")),
            Some(Token::Punct(p)) => malformed(format!("unexpected token: '{p}'")),
            None => malformed("unexpected end of query"),
        }
    }

    fn field(&mut self) -> Result<Field, QueryError> {
        match self.next() {
            Some(Token::Word(name)) => resolve(self.object, &name),
            _ => {
                self.at -= 1;
                Err(self.unexpected())
            }
        }
    }

    fn condition(&mut self) -> Result<Cond, QueryError> {
        let first = self.unary()?;
        let mut joined = vec![first];
        let mut joiner: Option<&str> = None;
        loop {
            let word = if self.eat_keyword("AND") {
                "AND"
            } else if self.eat_keyword("OR") {
                "OR"
            } else {
                break;
            };
            if joiner.is_some_and(|j| j != word) {
                return Err(malformed(format!(
                    "unexpected token: '{word}': use parentheses to mix AND and OR"
                )));
            }
            joiner = Some(word);
            joined.push(self.unary()?);
        }
        Ok(match joiner {
            None => joined.pop().expect("one condition"),
            Some("AND") => Cond::And(joined),
            Some(_) => Cond::Or(joined),
        })
    }

    fn unary(&mut self) -> Result<Cond, QueryError> {
        if self.eat_keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.eat_punct("(") {
            let inner = self.condition()?;
            if !self.eat_punct(")") {
                return Err(self.unexpected());
            }
            return Ok(inner);
        }
        let field = self.field()?;
        if self.eat_keyword("LIKE") {
            return match self.next() {
                Some(Token::Str(pattern)) if is_text(field.ty) => Ok(Cond::Like(field, pattern)),
                Some(Token::Str(_)) => Err(filter_error(field, "LIKE applies only to text")),
                _ => {
                    self.at -= 1;
                    Err(self.unexpected())
                }
            };
        }
        let negated =
            if is_keyword(self.peek(), "NOT") && is_keyword(self.tokens.get(self.at + 1), "IN") {
                self.at += 1;
                true
            } else {
                false
            };
        if self.eat_keyword("IN") {
            if !self.eat_punct("(") {
                return Err(self.unexpected());
            }
            let mut values = Vec::new();
            loop {
                values.push(self.literal(field)?);
                if self.eat_punct(")") {
                    break;
                }
                if !self.eat_punct(",") {
                    return Err(self.unexpected());
                }
            }
            return Ok(Cond::In(field, values, negated));
        }
        let op = match self.next() {
            Some(Token::Punct("=")) => Op::Eq,
            Some(Token::Punct("!=")) => Op::Ne,
            Some(Token::Punct("<")) => Op::Lt,
            Some(Token::Punct("<=")) => Op::Le,
            Some(Token::Punct(">")) => Op::Gt,
            Some(Token::Punct(">=")) => Op::Ge,
            _ => {
                self.at -= 1;
                return Err(self.unexpected());
            }
        };
        let value = self.literal(field)?;
        if value == Literal::Null && !matches!(op, Op::Eq | Op::Ne) {
            return Err(filter_error(
                field,
                "null may only be compared with = or !=",
            ));
        }
        Ok(Cond::Cmp(field, op, value))
    }

    /// A literal, checked against the type of the field it is compared to.
    fn literal(&mut self, field: Field) -> Result<Literal, QueryError> {
        let token = self.next();
        let literal = match &token {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Token::Str(s)) => Literal::Text(
                s.replace(ESCAPED_PERCENT, "%")
                    .replace(ESCAPED_UNDERSCORE, "_"),
            ),
            Some(Token::Lit(l)) => {
                if let Ok(n) = l.parse::<f64>() {
                    Literal::Number(n)
                } else if let Some(day) = clock::parse_date(l) {
                    Literal::Date(day)
                } else if l.contains('T')
                    && let Some(at) = clock::parse_datetime(l)
                {
                    Literal::DateTime(at)
                } else {
                    return Err(malformed(format!(
                        "line 1:0 no viable alternative at character '{l}'"
                    )));
                }
            }
            _ => {
                self.at -= 1;
                return Err(self.unexpected());
            }
        };
        let fits = match (&literal, field.ty) {
            (Literal::Null, _) => true,
            (Literal::Text(_), ty) => is_text(ty),
            (Literal::Bool(_), FieldType::Bool) => true,
            (Literal::Number(_), FieldType::Number) => true,
            (Literal::Date(_), FieldType::Date) => true,
            (Literal::DateTime(_), FieldType::DateTime) => true,
            _ => false,
        };
        if !fits {
            let wanted = match field.ty {
                FieldType::Bool => "boolean",
                FieldType::Number => "double",
                FieldType::Date => "date and should not be enclosed in quotes",
                FieldType::DateTime => "dateTime and should not be enclosed in quotes",
                _ => "string and should be enclosed in quotes",
            };
            return Err(filter_error(
                field,
                &format!(
                    "value of filter criterion for field '{}' must be of type {wanted}",
                    field.name
                ),
            ));
        }
        Ok(literal)
    }
}

fn filter_error(field: Field, why: &str) -> QueryError {
    QueryError {
        code: "INVALID_QUERY_FILTER_OPERATOR",
        message: format!("{}: {why}", field.name),
    }
}

fn is_text(ty: FieldType) -> bool {
    matches!(
        ty,
        FieldType::Id | FieldType::Text | FieldType::Reference(_)
    )
}

fn resolve(object: SObject, name: &str) -> Result<Field, QueryError> {
    object
        .field(name)
        .map(|(name, ty)| Field { name, ty })
        .ok_or_else(|| QueryError {
            code: "INVALID_FIELD",
            message: format!(
                "No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name."
            ),
        })
}

/// Parses and checks a query against the org's schema.
pub(crate) fn parse(text: &str) -> Result<Query, QueryError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        object: SObject::Account,
    };
    if !parser.eat_keyword("SELECT") {
        return Err(parser.unexpected());
    }
    let mut names = Vec::new();
    loop {
        match parser.next() {
            Some(Token::Word(w)) if !w.eq_ignore_ascii_case("FROM") => names.push(w),
            _ => {
                parser.at -= 1;
                return Err(parser.unexpected());
            }
        }
        if !parser.eat_punct(",") {
            break;
        }
    }
    if !parser.eat_keyword("FROM") {
        return Err(parser.unexpected());
    }
    let object = match parser.next() {
        Some(Token::Word(name)) => SObject::from_name(&name).ok_or_else(|| QueryError {
            code: "INVALID_TYPE",
            message: format!(
                "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name."
            ),
        })?,
        _ => {
            parser.at -= 1;
            return Err(parser.unexpected());
        }
    };
    parser.object = object;
    let mut fields: Vec<Field> = Vec::new();
    for name in &names {
        let field = resolve(object, name)?;
        if fields.iter().any(|f| f.name == field.name) {
            return Err(QueryError {
                code: "MALFORMED_QUERY",
                message: format!("duplicate field selected: {}", field.name),
            });
        }
        fields.push(field);
    }
    let filter = if parser.eat_keyword("WHERE") {
        Some(parser.condition()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if parser.eat_keyword("ORDER") {
        if !parser.eat_keyword("BY") {
            return Err(parser.unexpected());
        }
        loop {
            let field = parser.field()?;
            let descending = if parser.eat_keyword("DESC") {
                true
            } else {
                parser.eat_keyword("ASC");
                false
            };
            let mut nulls_first = !descending;
            if parser.eat_keyword("NULLS") {
                if parser.eat_keyword("FIRST") {
                    nulls_first = true;
                } else if parser.eat_keyword("LAST") {
                    nulls_first = false;
                } else {
                    return Err(parser.unexpected());
                }
            }
            order.push(Order {
                field,
                descending,
                nulls_first,
            });
            if !parser.eat_punct(",") {
                break;
            }
        }
    }
    let mut limit = None;
    if parser.eat_keyword("LIMIT") {
        match parser.next() {
            Some(Token::Lit(n)) => {
                limit = Some(
                    n.parse::<usize>()
                        .map_err(|_| malformed(format!("invalid LIMIT: {n}")))?,
                );
            }
            _ => {
                parser.at -= 1;
                return Err(parser.unexpected());
            }
        }
    }
    if parser.peek().is_some() {
        return Err(parser.unexpected());
    }
    Ok(Query {
        object,
        fields,
        filter,
        order,
        limit,
    })
}

/// A record's value of `field` as a literal of the field's type.
fn value_of(record: &Record, field: Field) -> Literal {
    let Some(value) = record.get(field.name) else {
        return Literal::Null;
    };
    match (field.ty, value) {
        (_, Value::Bool(b)) => Literal::Bool(*b),
        (_, Value::Number(n)) => Literal::Number(n.as_f64().unwrap_or_default()),
        (FieldType::Date, Value::String(s)) => {
            clock::parse_date(s).map_or(Literal::Null, Literal::Date)
        }
        (FieldType::DateTime, Value::String(s)) => {
            clock::parse_datetime(s).map_or(Literal::Null, Literal::DateTime)
        }
        (_, Value::String(s)) => Literal::Text(s.clone()),
        _ => Literal::Null,
    }
}

/// Orders two non-null values of one type; text case-insensitively.
fn compare(a: &Literal, b: &Literal) -> Option<Ordering> {
    match (a, b) {
        (Literal::Bool(x), Literal::Bool(y)) => Some(x.cmp(y)),
        (Literal::Number(x), Literal::Number(y)) => x.partial_cmp(y),
        (Literal::Date(x), Literal::Date(y)) | (Literal::DateTime(x), Literal::DateTime(y)) => {
            Some(x.cmp(y))
        }
        (Literal::Text(x), Literal::Text(y)) => Some(text_key(x).cmp(&text_key(y))),
        _ => None,
    }
}

fn text_key(text: &str) -> String {
    text.to_lowercase()
}

fn equal(field: Field, value: &Literal, literal: &Literal) -> bool {
    match (value, literal) {
        (Literal::Null, Literal::Null) => true,
        (Literal::Null, _) | (_, Literal::Null) => false,
        // A 15-character id literal matches its 18-character form.
        (Literal::Text(v), Literal::Text(l)) if field.ty != FieldType::Text && l.len() == 15 => {
            v.len() == 18 && v[..15] == l[..]
        }
        _ => compare(value, literal) == Some(Ordering::Equal),
    }
}

/// Whether `text` matches a LIKE pattern (`%` any run, `_` one character),
/// case-insensitively.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last '%'.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('%') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c)
                if c == '_'
                    || c == text[t]
                    || (c == ESCAPED_PERCENT && text[t] == '%')
                    || (c == ESCAPED_UNDERSCORE && text[t] == '_') =>
            {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '%')
}

fn holds(cond: &Cond, record: &Record) -> bool {
    match cond {
        Cond::And(all) => all.iter().all(|c| holds(c, record)),
        Cond::Or(any) => any.iter().any(|c| holds(c, record)),
        Cond::Not(inner) => !holds(inner, record),
        Cond::Cmp(field, op, literal) => {
            let value = value_of(record, *field);
            match op {
                Op::Eq => equal(*field, &value, literal),
                Op::Ne => !equal(*field, &value, literal),
                _ => match compare(&value, literal) {
                    None => false,
                    Some(ordering) => match op {
                        Op::Lt => ordering.is_lt(),
                        Op::Le => ordering.is_le(),
                        Op::Gt => ordering.is_gt(),
                        _ => ordering.is_ge(),
                    },
                },
            }
        }
        Cond::In(field, values, negated) => {
            let value = value_of(record, *field);
            values.iter().any(|l| equal(*field, &value, l)) != *negated
        }
        Cond::Like(field, pattern) => match value_of(record, *field) {
            Literal::Text(text) => like(&text, pattern),
            _ => false,
        },
    }
}

impl Query {
    /// The matching records in the query's order, its LIMIT applied.
    pub(crate) fn run<'a>(&self, records: impl Iterator<Item = &'a Record>) -> Vec<&'a Record> {
        let mut rows: Vec<&Record> = records
            .filter(|r| self.filter.as_ref().is_none_or(|c| holds(c, r)))
            .collect();
        if !self.order.is_empty() {
            rows.sort_by(|a, b| {
                for order in &self.order {
                    let (x, y) = (value_of(a, order.field), value_of(b, order.field));
                    let ordering = match (&x, &y) {
                        (Literal::Null, Literal::Null) => Ordering::Equal,
                        (Literal::Null, _) => {
                            if order.nulls_first {
                                Ordering::Less
                            } else {
                                Ordering::Greater
                            }
                        }
                        (_, Literal::Null) => {
                            if order.nulls_first {
                                Ordering::Greater
                            } else {
                                Ordering::Less
                            }
                        }
                        _ => {
                            let o = compare(&x, &y).unwrap_or(Ordering::Equal);
                            if order.descending { o.reverse() } else { o }
                        }
                    };
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                }
                // Ties in id order, so pages are stable.
                a.id.cmp(&b.id)
            });
        }
        if let Some(limit) = self.limit {
            rows.truncate(limit);
        }
        rows
    }

    /// The selected field names, as Salesforce spells them.
    pub(crate) fn field_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_wildcards_case_insensitively_and_escaped_ones_literally() {
        assert!(like("Onboarding kickoff", "%onboard%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("50% off", &format!("50{ESCAPED_PERCENT}%")));
        assert!(!like("50 off", &format!("50{ESCAPED_PERCENT}%")));
    }

    #[test]
    fn mixing_and_with_or_needs_parentheses() {
        let mixed =
            parse("SELECT Id FROM Task WHERE IsClosed = false AND Subject = 'a' OR Subject = 'b'");
        assert_eq!(mixed.unwrap_err().code, "MALFORMED_QUERY");
        assert!(
            parse(
                "SELECT Id FROM Task WHERE IsClosed = false AND (Subject = 'a' OR Subject = 'b')"
            )
            .is_ok()
        );
    }

    #[test]
    fn string_escapes_decode() {
        let tokens = tokenize(r"'Won\'t \\ Parked\n'").unwrap();
        assert_eq!(tokens, vec![Token::Str("Won't \\ Parked\n".into())]);
        assert_eq!(tokenize(r"'a\q'").unwrap_err().code, "MALFORMED_QUERY");
    }

    #[test]
    fn literals_must_fit_the_field_type() {
        let quoted_date =
            parse("SELECT Id FROM Opportunity WHERE SystemModstamp > '2026-01-01T00:00:00Z'");
        assert_eq!(
            quoted_date.unwrap_err().code,
            "INVALID_QUERY_FILTER_OPERATOR"
        );
        assert!(
            parse(
                "SELECT Id FROM Opportunity WHERE SystemModstamp >= 2026-01-01T00:00:00.000+0000"
            )
            .is_ok()
        );
        assert!(
            parse("SELECT Id FROM Opportunity WHERE CloseDate < 2026-01-01 AND Amount > -5.5")
                .is_ok()
        );
    }
}
