//! A hand-written parser and evaluator for the SOQL subset the emulator
//! serves:
//!
//! `SELECT f, ... FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS
//! FIRST|LAST], ...] [LIMIT n]`, with `=, !=, <>, <, <=, >, >=, [NOT] IN
//! (...), LIKE`, `AND`, `OR`, `NOT` and parentheses. As in SOQL, `AND` and
//! `OR` may not be mixed at one level without parentheses. A select item
//! may be a parent-to-child sub-query, `(SELECT f, ... FROM Relationship
//! [WHERE] [ORDER BY] [LIMIT])`, one level deep, naming one of the
//! parent's child relationships. Literals:
//! single-quoted strings with backslash escapes, numbers, `true`, `false`,
//! `null`, unquoted dates (`2026-01-01`) and datetimes
//! (`2026-01-01T00:00:00Z`, `...00.000+0000`). Keywords are
//! case-insensitive; so are field names, object names and text comparisons.

use super::clock;
use super::object::{ChildRelationship, FieldType, SObject};
use super::store::Record;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashSet;

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
    In(Field, InList, bool),
    Like(Field, String),
}

/// The values of an `IN (...)`, with its text values ready for a set
/// lookup: an `IN` of 200 ids costs one lookup per row, not 200 compares.
#[derive(Debug, Clone, PartialEq)]
struct InList {
    literals: Vec<Literal>,
    /// Text literals as [`text_key`] makes them, but 15-character ones
    /// compared to an id field.
    texts: HashSet<String>,
    /// 15-character literals compared to an id field: each matches the
    /// 18-character id it begins.
    ids15: HashSet<String>,
}

impl InList {
    fn new(field: Field, literals: Vec<Literal>) -> Self {
        let mut texts = HashSet::new();
        let mut ids15 = HashSet::new();
        for literal in &literals {
            if let Literal::Text(text) = literal {
                if field.ty.is_id() && text.len() == 15 {
                    ids15.insert(text.clone());
                } else {
                    texts.insert(text_key(text));
                }
            }
        }
        Self {
            literals,
            texts,
            ids15,
        }
    }

    /// Whether `value` equals one of the literals, as [`equal`] decides.
    fn contains(&self, field: Field, value: &Literal) -> bool {
        match value {
            Literal::Text(text) => {
                self.texts.contains(&text_key(text))
                    || (text.len() == 18
                        && text.get(..15).is_some_and(|id| self.ids15.contains(id)))
            }
            other => self.literals.iter().any(|l| equal(field, other, l)),
        }
    }
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
    /// Parent-to-child sub-queries, in the order selected.
    pub subqueries: Vec<SubQuery>,
    filter: Option<Cond>,
    order: Vec<Order>,
    limit: Option<usize>,
}

/// `(SELECT ... FROM Relationship ...)` in a select list: `query` runs on
/// the relationship's child object, over one parent's children at a time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubQuery {
    pub relationship: ChildRelationship,
    pub query: Query,
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
            return Ok(Cond::In(field, InList::new(field, values), negated));
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
        FieldType::Id | FieldType::Text | FieldType::LongText | FieldType::Reference(_)
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
    // Sub-queries are read once the parent object is known: their
    // relationship names and fields depend on it.
    let mut subqueries: Vec<Vec<Token>> = Vec::new();
    loop {
        match parser.next() {
            Some(Token::Punct("(")) => {
                let close = parser.closing_paren()?;
                subqueries.push(parser.tokens[parser.at..close].to_vec());
                parser.at = close + 1;
            }
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
    let mut query = parser.rest(object, &names)?;
    for tokens in subqueries {
        let sub = subquery(object, tokens)?;
        if query
            .subqueries
            .iter()
            .any(|known| known.relationship.name == sub.relationship.name)
        {
            return Err(malformed(format!(
                "duplicate relationship selected: {}",
                sub.relationship.name
            )));
        }
        query.subqueries.push(sub);
    }
    Ok(query)
}

/// The tokens inside a sub-query's parentheses, as a query on the child
/// object of the parent's relationship they name.
fn subquery(parent: SObject, tokens: Vec<Token>) -> Result<SubQuery, QueryError> {
    let mut parser = Parser {
        tokens,
        at: 0,
        object: parent,
    };
    if !parser.eat_keyword("SELECT") {
        return Err(parser.unexpected());
    }
    let mut names = Vec::new();
    loop {
        match parser.next() {
            Some(Token::Punct("(")) => {
                return Err(malformed("a sub-query inside a sub-query is not supported"));
            }
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
    let relationship = match parser.next() {
        Some(Token::Word(name)) => {
            // `FROM Opportunity.Tasks` names the same relationship as `FROM Tasks`.
            let bare = name
                .split_once('.')
                .filter(|(object, _)| object.eq_ignore_ascii_case(parent.name()))
                .map_or(name.as_str(), |(_, relationship)| relationship);
            parent
                .child_relationship(bare)
                .ok_or_else(|| QueryError {
                    code: "INVALID_TYPE",
                    message: format!(
                        "Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                    ),
                })?
        }
        _ => {
            parser.at -= 1;
            return Err(parser.unexpected());
        }
    };
    parser.object = relationship.child;
    let query = parser.rest(relationship.child, &names)?;
    Ok(SubQuery {
        relationship,
        query,
    })
}

impl Parser {
    /// Where the `(` just read closes; an error if it never does.
    fn closing_paren(&self) -> Result<usize, QueryError> {
        let mut depth = 1usize;
        for (at, token) in self.tokens.iter().enumerate().skip(self.at) {
            match token {
                Token::Punct("(") => depth += 1,
                Token::Punct(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(at);
                    }
                }
                _ => {}
            }
        }
        Err(malformed("unexpected end of query"))
    }

    /// What follows `FROM Obj`: the selected `names` checked against
    /// `object`, then `WHERE`, `ORDER BY` and `LIMIT`, then nothing.
    fn rest(&mut self, object: SObject, names: &[String]) -> Result<Query, QueryError> {
        let mut fields: Vec<Field> = Vec::new();
        for name in names {
            let field = resolve(object, name)?;
            if fields.iter().any(|f| f.name == field.name) {
                return Err(QueryError {
                    code: "MALFORMED_QUERY",
                    message: format!("duplicate field selected: {}", field.name),
                });
            }
            fields.push(field);
        }
        let filter = if self.eat_keyword("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.eat_keyword("ORDER") {
            if !self.eat_keyword("BY") {
                return Err(self.unexpected());
            }
            loop {
                let field = self.field()?;
                let descending = if self.eat_keyword("DESC") {
                    true
                } else {
                    self.eat_keyword("ASC");
                    false
                };
                let mut nulls_first = !descending;
                if self.eat_keyword("NULLS") {
                    if self.eat_keyword("FIRST") {
                        nulls_first = true;
                    } else if self.eat_keyword("LAST") {
                        nulls_first = false;
                    } else {
                        return Err(self.unexpected());
                    }
                }
                order.push(Order {
                    field,
                    descending,
                    nulls_first,
                });
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        let mut limit = None;
        if self.eat_keyword("LIMIT") {
            match self.next() {
                Some(Token::Lit(n)) => {
                    limit = Some(
                        n.parse::<usize>()
                            .map_err(|_| malformed(format!("invalid LIMIT: {n}")))?,
                    );
                }
                _ => {
                    self.at -= 1;
                    return Err(self.unexpected());
                }
            }
        }
        if self.peek().is_some() {
            return Err(self.unexpected());
        }
        Ok(Query {
            object,
            fields,
            subqueries: Vec::new(),
            filter,
            order,
            limit,
        })
    }
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

/// A value as it sorts: text lowercased once, so keys compare as they are.
fn sort_key(value: Literal) -> Literal {
    match value {
        Literal::Text(text) => Literal::Text(text_key(&text)),
        other => other,
    }
}

/// How two sort keys of one `ORDER BY` item order, nulls placed as asked.
fn ordered(order: &Order, x: &Literal, y: &Literal) -> Ordering {
    match (x, y) {
        (Literal::Null, Literal::Null) => Ordering::Equal,
        (Literal::Null, _) if order.nulls_first => Ordering::Less,
        (Literal::Null, _) => Ordering::Greater,
        (_, Literal::Null) if order.nulls_first => Ordering::Greater,
        (_, Literal::Null) => Ordering::Less,
        (Literal::Text(x), Literal::Text(y)) => {
            let o = x.cmp(y);
            if order.descending { o.reverse() } else { o }
        }
        _ => {
            let o = compare(x, y).unwrap_or(Ordering::Equal);
            if order.descending { o.reverse() } else { o }
        }
    }
}

fn equal(field: Field, value: &Literal, literal: &Literal) -> bool {
    match (value, literal) {
        (Literal::Null, Literal::Null) => true,
        (Literal::Null, _) | (_, Literal::Null) => false,
        // A 15-character id literal matches its 18-character form.
        (Literal::Text(v), Literal::Text(l)) if field.ty.is_id() && l.len() == 15 => {
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
            values.contains(*field, &value_of(record, *field)) != *negated
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
        let rows = records.filter(|r| self.filter.as_ref().is_none_or(|c| holds(c, r)));
        let mut rows: Vec<&Record> = if self.order.is_empty() {
            rows.collect()
        } else {
            // Each row's sort key is read once (datetimes parsed, text
            // lowercased), not once per comparison.
            let mut keyed: Vec<(Vec<Literal>, &Record)> = rows
                .map(|r| {
                    let key = self
                        .order
                        .iter()
                        .map(|order| sort_key(value_of(r, order.field)))
                        .collect();
                    (key, r)
                })
                .collect();
            keyed.sort_by(|(x, a), (y, b)| {
                self.order
                    .iter()
                    .zip(x.iter().zip(y))
                    .map(|(order, (x, y))| ordered(order, x, y))
                    .find(|o| o.is_ne())
                    // Ties in id order, so pages are stable.
                    .unwrap_or_else(|| a.id.cmp(&b.id))
            });
            keyed.into_iter().map(|(_, r)| r).collect()
        };
        if let Some(limit) = self.limit {
            rows.truncate(limit);
        }
        rows
    }

    /// The field and the 18-character ids (at least one) a row must hold
    /// in it to match, when the filter says so at its top level
    /// (`f = 'id'`, `f IN ('id', ...)`, either one `AND` others): an index
    /// on that field then gives every candidate row.
    pub(crate) fn required_ids(&self) -> Option<(&'static str, Vec<&str>)> {
        fn texts(literals: &[Literal]) -> Option<Vec<&str>> {
            literals
                .iter()
                .map(|l| match l {
                    Literal::Text(t) if t.len() == 18 => Some(t.as_str()),
                    _ => None,
                })
                .collect()
        }
        fn ids(cond: &Cond) -> Option<(&'static str, Vec<&str>)> {
            match cond {
                Cond::Cmp(field, Op::Eq, literal) if field.ty.is_id() => {
                    Some((field.name, texts(std::slice::from_ref(literal))?))
                }
                Cond::In(field, list, false) if field.ty.is_id() => {
                    Some((field.name, texts(&list.literals)?))
                }
                Cond::And(all) => all.iter().find_map(ids),
                _ => None,
            }
        }
        self.filter.as_ref().and_then(ids)
    }

    /// The selected field names, as Salesforce spells them.
    pub(crate) fn field_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }

    /// The refusal of a long text area in a `WHERE` or `ORDER BY`, of
    /// this query or one of its sub-queries, if it has one: Salesforce
    /// answers 400 `INVALID_FIELD` (facts 6.10).
    pub(crate) fn long_text_misuse(&self) -> Option<QueryError> {
        fn filtered(cond: &Cond) -> Option<Field> {
            match cond {
                Cond::And(all) | Cond::Or(all) => all.iter().find_map(filtered),
                Cond::Not(inner) => filtered(inner),
                Cond::Cmp(field, ..) | Cond::In(field, ..) | Cond::Like(field, _) => {
                    (field.ty == FieldType::LongText).then_some(*field)
                }
            }
        }
        if let Some(field) = self.filter.as_ref().and_then(filtered) {
            return Some(QueryError {
                code: "INVALID_FIELD",
                message: format!("field '{}' can not be filtered in query call", field.name),
            });
        }
        if let Some(order) = self
            .order
            .iter()
            .find(|o| o.field.ty == FieldType::LongText)
        {
            return Some(QueryError {
                code: "INVALID_FIELD",
                message: format!(
                    "field '{}' can not be sorted in a query call",
                    order.field.name
                ),
            });
        }
        self.subqueries
            .iter()
            .find_map(|sub| sub.query.long_text_misuse())
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
    fn a_long_text_area_is_refused_in_where_and_order_by_but_selectable() {
        let misuse = |soql: &str| parse(soql).unwrap().long_text_misuse();
        let like =
            misuse("SELECT Id FROM Task WHERE Description LIKE '%journeyd-action: k%'").unwrap();
        assert_eq!(like.code, "INVALID_FIELD");
        assert_eq!(
            like.message,
            "field 'Description' can not be filtered in query call"
        );
        assert!(
            misuse("SELECT Id FROM Task WHERE NOT (Subject = 'a' OR Description = 'b')").is_some()
        );
        let sorted = misuse("SELECT Id FROM Lead ORDER BY Description").unwrap();
        assert!(
            sorted.message.contains("can not be sorted"),
            "{}",
            sorted.message
        );
        assert!(
            misuse("SELECT Id, (SELECT Id FROM Tasks WHERE Description != null) FROM Opportunity")
                .is_some()
        );
        assert_eq!(
            misuse(
                "SELECT Id, Description FROM Task WHERE CreatedById = '005Dn000003KxQ1IAK' AND CreatedDate >= 2026-03-01T00:00:00Z ORDER BY CreatedDate, Id"
            ),
            None
        );
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

    fn record(id: &str, fields: Value) -> Record {
        Record {
            id: id.to_owned(),
            fields: fields.as_object().cloned().unwrap_or_default(),
            deleted_ms: None,
            corrupt: false,
        }
    }

    const OPP: &str = "006Dn0000ZZZZP1AAA";

    #[test]
    fn an_in_list_matches_as_equality_does() {
        let tasks = [
            record(
                "00T1",
                serde_json::json!({"WhatId": OPP, "Subject": "006Dn0000ZZZZP1"}),
            ),
            record(
                "00T2",
                serde_json::json!({"WhatId": "006Dn0000ZZZZQ1AAA", "Subject": "x"}),
            ),
        ];
        let ids = |soql: &str| -> Vec<String> {
            parse(soql)
                .unwrap()
                .run(tasks.iter())
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        // An 18-character id compares case-insensitively.
        let lower = OPP.to_lowercase();
        assert_eq!(
            ids(&format!("SELECT Id FROM Task WHERE WhatId IN ('{lower}')")),
            ["00T1"]
        );
        // A 15-character id matches the 18-character id it begins, on an id field only.
        assert_eq!(
            ids("SELECT Id FROM Task WHERE WhatId IN ('006Dn0000ZZZZP1', 'nope')"),
            ["00T1"]
        );
        assert_eq!(
            ids("SELECT Id FROM Task WHERE Subject IN ('006dn0000zzzzp1')"),
            ["00T1"]
        );
        assert_eq!(
            ids(&format!(
                "SELECT Id FROM Task WHERE WhatId NOT IN ('{OPP}')"
            )),
            ["00T2"]
        );
    }

    #[test]
    fn required_ids_name_an_id_lookup_only_when_every_row_must_hold_one() {
        let required = |filter: &str| {
            parse(&format!("SELECT Id FROM Task WHERE {filter}"))
                .unwrap()
                .required_ids()
                .map(|(field, ids)| (field, ids.len()))
        };
        assert_eq!(
            required(&format!(
                "WhatId IN ('{OPP}', '{OPP}') AND IsClosed = false"
            )),
            Some(("WhatId", 2))
        );
        assert_eq!(required(&format!("WhatId = '{OPP}'")), Some(("WhatId", 1)));
        assert_eq!(
            required(&format!("WhatId = '{OPP}' OR IsClosed = false")),
            None
        );
        assert_eq!(required("WhatId IN ('006Dn0000ZZZZP1')"), None);
        assert_eq!(required(&format!("NOT WhatId IN ('{OPP}')")), None);
        assert_eq!(required(&format!("Subject = '{OPP}'")), None);
    }

    #[test]
    fn a_sub_query_is_read_against_the_child_object_of_its_relationship() {
        let query = parse(
            "SELECT Id, (SELECT StageName FROM OpportunityHistories ORDER BY CreatedDate), (SELECT Subject FROM Opportunity.Tasks) FROM Opportunity",
        )
        .unwrap();
        let children: Vec<(&str, SObject)> = query
            .subqueries
            .iter()
            .map(|sub| (sub.relationship.name, sub.query.object))
            .collect();
        assert_eq!(
            children,
            [
                ("OpportunityHistories", SObject::OpportunityHistory),
                ("Tasks", SObject::Task)
            ]
        );
        let nested = parse(
            "SELECT Id, (SELECT Id, (SELECT Id FROM Tasks) FROM OpportunityHistories) FROM Opportunity",
        );
        assert_eq!(nested.unwrap_err().code, "MALFORMED_QUERY");
        let twice =
            parse("SELECT Id, (SELECT Id FROM Tasks), (SELECT Subject FROM tasks) FROM Lead");
        assert_eq!(twice.unwrap_err().code, "MALFORMED_QUERY");
        let not_a_child = parse("SELECT Id, (SELECT Id FROM Tasks) FROM User");
        assert_eq!(not_a_child.unwrap_err().code, "INVALID_TYPE");
    }
}
