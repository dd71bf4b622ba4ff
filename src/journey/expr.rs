//! CEL expressions over a journey record.
//!
//! Every expression is compiled once, when the config is loaded; evaluation
//! binds `record` (see [`crate::journey::record`] for its shape) and `now`.
//! An expression that errors at evaluation (a missing key, mismatched types)
//! counts as not holding, and the error is kept for the message: bad data in
//! one record is data, not a failure of the audit.

use cel::{Context, Env, Program, Value};
use std::sync::{Arc, LazyLock};
use thiserror::Error;

/// The variables an expression may name.
pub const VARIABLES: [&str; 2] = ["record", "now"];

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression and its source text.
pub struct Expr {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

/// Why an expression did not compile. `offset` is the byte offset of the
/// problem within the expression's source, where CEL says.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
    pub offset: Option<usize>,
}

/// The result of evaluating an expression against one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    True,
    False,
    /// It evaluated to something that is not a bool, or failed.
    Error(String),
}

impl Expr {
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        let program = ENV.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            ExprError {
                message: first
                    .map(|e| first_line(&e.msg).to_owned())
                    .unwrap_or_else(|| "does not parse".to_owned()),
                offset: first.and_then(|e| offset_of(source, e.pos)),
            }
        })?;
        let unknown: Vec<String> = program
            .references()
            .variables()
            .into_iter()
            .filter(|name| !VARIABLES.contains(name))
            .map(str::to_owned)
            .collect();
        if let Some(name) = unknown.first() {
            return Err(ExprError {
                message: format!(
                    "unknown variable `{name}` (expressions can use `record` and `now`)"
                ),
                offset: source.find(name.as_str()),
            });
        }
        Ok(Expr {
            source: source.to_owned(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression in a scope built by [`Scope::new`].
    pub fn eval(&self, scope: &Scope) -> Outcome {
        match self.program.execute(&scope.context) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(format!("evaluated to {other:?}, not a bool")),
            Err(error) => Outcome::Error(error.to_string()),
        }
    }
}

/// The variables bound for evaluating every expression against one record;
/// built once per record and shared by all of its expressions.
pub struct Scope {
    context: Context<'static, 'static>,
}

impl Scope {
    pub fn new(record: Value, now: Value) -> Scope {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("record", record);
        context.add_variable_from_value("now", now);
        Scope { context }
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// CEL reports (line, column), 1-based; expressions in config are usually one
/// line, but multi-line strings are allowed.
fn offset_of(source: &str, (line, column): (isize, isize)) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = usize::try_from(column).ok()?.saturating_sub(1);
    let start: usize = source.split_inclusive('\n').take(line).map(str::len).sum();
    Some((start + column).min(source.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn scope(amount: f64) -> Scope {
        let mut record: HashMap<String, Value> = HashMap::new();
        record.insert("amount".into(), Value::Float(amount));
        Scope::new(record.into(), Value::Null)
    }

    #[test]
    fn true_and_false_expressions_evaluate_to_their_outcome() {
        let expr = Expr::compile("record.amount > 10.0").unwrap();
        assert_eq!(expr.eval(&scope(11.0)), Outcome::True);
        assert_eq!(expr.eval(&scope(9.0)), Outcome::False);
    }

    #[test]
    fn a_missing_key_is_an_error_outcome_not_a_panic() {
        let expr = Expr::compile("record.budget > 10.0").unwrap();
        assert!(matches!(expr.eval(&scope(1.0)), Outcome::Error(_)));
    }

    #[test]
    fn a_syntax_error_names_its_offset() {
        let error = Expr::compile("record.amount >").unwrap_err();
        assert_eq!(error.offset, Some(15));
        assert!(error.message.contains("Syntax error"), "{}", error.message);
    }

    #[test]
    fn an_unknown_variable_is_refused_at_compile_time() {
        let error = Expr::compile("deal.amount > 1.0").unwrap_err();
        assert_eq!(error.offset, Some(0));
        assert!(error.message.contains("`deal`"), "{}", error.message);
    }
}
