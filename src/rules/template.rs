//! Message templates of custom rules: text with `{placeholder}`s, checked at
//! config load so a typo in a placeholder is a config error, not a broken
//! message at 2 a.m.
//!
//! Placeholders: `{record}` (label with name and id), `{id}`, `{name}`,
//! `{object}`, `{stage}`, `{owner}`, `{amount}`, `{days_in_stage}`,
//! `{field.NAME}` (a canonical field). `{{` and `}}` are literal braces.

use crate::journey::JourneyRecord;
use crate::rules::DAYS_IN_STAGE;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Record,
    Id,
    Name,
    Object,
    Stage,
    Owner,
    Amount,
    DaysInStage,
    Field(String),
}

/// A parsed message template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// Byte offset of the problem within the template.
    pub offset: usize,
}

impl MessageTemplate {
    pub fn parse(source: &str) -> Result<MessageTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source.char_indices().peekable();
        while let Some((at, c)) = rest.next() {
            match c {
                '{' if rest.peek().map(|(_, c)| *c) == Some('{') => {
                    rest.next();
                    text.push('{');
                }
                '}' if rest.peek().map(|(_, c)| *c) == Some('}') => {
                    rest.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in rest.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateError {
                            message: "unclosed `{` in message".into(),
                            offset: at,
                        });
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(placeholder(&name).ok_or_else(|| TemplateError {
                        message: format!(
                            "unknown placeholder `{{{name}}}` (use record, id, name, object, stage, owner, amount, days_in_stage or field.NAME)"
                        ),
                        offset: at,
                    })?);
                }
                '}' => {
                    return Err(TemplateError {
                        message: "unmatched `}` in message (write `}}` for a brace)".into(),
                        offset: at,
                    });
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(MessageTemplate { parts })
    }

    /// The message for `record`; `{days_in_stage}` is left as the
    /// [`DAYS_IN_STAGE`] mark, counted when the message is shown.
    pub fn render(&self, record: &JourneyRecord) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Record => out.push_str(&record.label()),
                Part::Id => out.push_str(record.id.as_str()),
                Part::Name => out.push_str(record.name.as_deref().unwrap_or("(no name)")),
                Part::Object => out.push_str(record.object.as_str()),
                Part::Stage => match record.stage.mapped() {
                    Some((id, _)) => out.push_str(id.as_str()),
                    None => out.push_str("(no stage)"),
                },
                Part::Owner => match &record.owner {
                    Some(owner) => out.push_str(owner.name.as_deref().unwrap_or(owner.id.as_str())),
                    None => out.push_str("(no owner)"),
                },
                Part::Amount => match record.amount {
                    Some(amount) => {
                        out.push_str(&format!("{amount:.2}"));
                        if let Some(currency) = &record.currency {
                            out.push(' ');
                            out.push_str(currency);
                        }
                    }
                    None => out.push_str("(no amount)"),
                },
                // Counted when shown: see `DAYS_IN_STAGE`.
                Part::DaysInStage => out.push_str(DAYS_IN_STAGE),
                Part::Field(name) => match record.fields.get(name) {
                    Some(serde_json::Value::String(s)) => out.push_str(s),
                    Some(serde_json::Value::Null) | None => out.push_str("(not set)"),
                    Some(other) => out.push_str(&other.to_string()),
                },
            }
        }
        out
    }
}

fn placeholder(name: &str) -> Option<Part> {
    Some(match name.trim() {
        "record" => Part::Record,
        "id" => Part::Id,
        "name" => Part::Name,
        "object" => Part::Object,
        "stage" => Part::Stage,
        "owner" => Part::Owner,
        "amount" => Part::Amount,
        "days_in_stage" => Part::DaysInStage,
        other => {
            let field = other.strip_prefix("field.")?;
            if field.is_empty() {
                return None;
            }
            Part::Field(field.to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_placeholders_are_refused_with_their_offset() {
        let error = MessageTemplate::parse("deal {nme} stalled").unwrap_err();
        assert_eq!(error.offset, 5);
        assert!(error.message.contains("`{nme}`"));
    }

    #[test]
    fn doubled_braces_are_literal() {
        let template = MessageTemplate::parse("{{x}}").unwrap();
        assert_eq!(template.parts, vec![Part::Text("{x}".into())]);
    }

    #[test]
    fn an_unclosed_brace_is_refused() {
        assert!(MessageTemplate::parse("oops {record").is_err());
    }
}
