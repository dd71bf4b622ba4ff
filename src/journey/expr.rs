//! CEL expressions over a journey record.
//!
//! Every expression is compiled once, when the config is loaded; evaluation
//! binds `record` (see [`crate::journey::record`] for its shape) and `now`.
//! An expression that errors at evaluation (a missing key, mismatched types)
//! counts as not holding, and the error is kept for the message: bad data in
//! one record is data, not a failure of the audit.
//!
//! A [`Scope`] notes whether an expression read the clock (`now`, or the
//! record's `days_in_stage`): what it found may then change with time
//! alone, and the audit judges the record again the next time it runs.
//!
//! [`RecordKeys`] says which keys of `record` (and of `record.fields`) an
//! expression can read, found in its syntax tree when it compiles: the
//! audit builds only those for each record, since building the whole map
//! for every record cost more than evaluating the expressions.

use cel::common::ast::{EntryExpr, Expr as Node, IdedExpr};
use cel::common::value::CowVal;
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use thiserror::Error;

/// The variables an expression may name.
pub const VARIABLES: [&str; 2] = ["record", "now"];

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression and its source text.
pub struct Expr {
    source: String,
    program: Program,
    /// Whether it names the record's `days_in_stage`, which counts to
    /// today: evaluating it reads the clock.
    counts_days: bool,
    /// The keys of `record` it can read.
    record_keys: RecordKeys,
}

/// The keys of the `record` variable that expressions can read. An
/// expression that uses `record` (or `record.fields`) other than by naming
/// one of its keys, say `size(record)` or `record.fields[name]`, can read
/// any key, and so wants all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordKeys {
    all: bool,
    keys: BTreeSet<String>,
    all_fields: bool,
    fields: BTreeSet<String>,
}

impl RecordKeys {
    /// Every key of the record and of its fields.
    pub fn all() -> RecordKeys {
        RecordKeys {
            all: true,
            all_fields: true,
            ..RecordKeys::default()
        }
    }

    /// The keys any of `exprs` can read.
    pub fn of<'e>(exprs: impl IntoIterator<Item = &'e Expr>) -> RecordKeys {
        let mut keys = RecordKeys::default();
        for expr in exprs {
            keys.add(&expr.record_keys);
        }
        keys
    }

    fn add(&mut self, other: &RecordKeys) {
        self.all |= other.all;
        self.all_fields |= other.all_fields;
        self.keys.extend(other.keys.iter().cloned());
        self.fields.extend(other.fields.iter().cloned());
    }

    /// Whether an expression can read `record.<key>`.
    pub fn wants(&self, key: &str) -> bool {
        self.all || self.keys.contains(key)
    }

    /// Whether an expression can read `record.fields.<key>`.
    pub fn wants_field(&self, key: &str) -> bool {
        self.all || self.all_fields || self.fields.contains(key)
    }

    /// Whether an expression names `record.<key>` itself. Reading the whole
    /// record names no key in particular.
    pub fn names(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// Whether an expression names `record.fields.<key>` itself.
    pub fn names_field(&self, key: &str) -> bool {
        self.fields.contains(key)
    }

    fn visit(&mut self, node: &IdedExpr) {
        match &node.expr {
            Node::Ident(name) if name == "record" => self.all = true,
            Node::Select(select) => match &select.operand.expr {
                Node::Ident(name) if name == "record" => {
                    self.keys.insert(select.field.clone());
                    if select.field == "fields" {
                        self.all_fields = true;
                    }
                }
                Node::Select(inner)
                    if inner.field == "fields"
                        && matches!(&inner.operand.expr, Node::Ident(name) if name == "record") =>
                {
                    self.keys.insert(inner.field.clone());
                    self.fields.insert(select.field.clone());
                }
                _ => self.visit(&select.operand),
            },
            Node::Call(call) => {
                if let Some(target) = &call.target {
                    self.visit(target);
                }
                call.args.iter().for_each(|arg| self.visit(arg));
            }
            Node::Comprehension(comprehension) => {
                for part in [
                    &comprehension.iter_range,
                    &comprehension.accu_init,
                    &comprehension.loop_cond,
                    &comprehension.loop_step,
                    &comprehension.result,
                ] {
                    self.visit(part);
                }
            }
            Node::List(list) => list.elements.iter().for_each(|e| self.visit(e)),
            Node::Map(map) => map.entries.iter().for_each(|e| self.visit_entry(&e.expr)),
            Node::Struct(object) => object
                .entries
                .iter()
                .for_each(|e| self.visit_entry(&e.expr)),
            Node::Ident(_) | Node::Literal(_) | Node::Unspecified => {}
        }
    }

    fn visit_entry(&mut self, entry: &EntryExpr) {
        match entry {
            EntryExpr::StructField(field) => self.visit(&field.value),
            EntryExpr::MapEntry(entry) => {
                self.visit(&entry.key);
                self.visit(&entry.value);
            }
        }
    }
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
        let mut record_keys = RecordKeys::default();
        record_keys.visit(program.expression());
        Ok(Expr {
            source: source.to_owned(),
            program,
            counts_days: source.contains("days_in_stage"),
            record_keys,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The keys of `record` it can read.
    pub fn record_keys(&self) -> &RecordKeys {
        &self.record_keys
    }

    /// Evaluates the expression in a scope built by [`Scope::new`].
    pub fn eval(&self, scope: &Scope) -> Outcome {
        if self.counts_days {
            scope.clock_read.store(true, Ordering::Relaxed);
        }
        // `now` is resolved on use, so that an expression whose other
        // terms decided it first (`has(x) && x <= now` without `x`) did
        // not read the clock.
        let clock = Clock {
            now: &scope.now,
            read: &scope.clock_read,
        };
        let root: &Context<'_, '_> = &scope.context;
        let mut context = root.new_inner_scope();
        context.set_variable_resolver(&clock);
        match self.program.execute(&context) {
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
    now: Value,
    clock_read: AtomicBool,
}

impl Scope {
    pub fn new(record: Value, now: Value) -> Scope {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("record", record);
        Scope {
            context,
            now,
            clock_read: AtomicBool::new(false),
        }
    }

    /// Whether an expression evaluated in this scope read the clock.
    pub fn clock_read(&self) -> bool {
        self.clock_read.load(Ordering::Relaxed)
    }
}

/// Resolves `now`, noting that it was read.
struct Clock<'s> {
    now: &'s Value,
    read: &'s AtomicBool,
}

impl VariableResolver for Clock<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if variable != "now" {
            return None;
        }
        self.read.store(true, Ordering::Relaxed);
        self.now.clone().try_into().ok().map(CowVal::Owned)
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

    fn scope_at(record: HashMap<String, Value>, now: i64) -> Scope {
        let now = chrono::DateTime::from_timestamp(now, 0).unwrap();
        Scope::new(record.into(), crate::journey::record::cel_now(now))
    }

    #[test]
    fn an_expression_that_reads_now_notes_that_it_read_the_clock() {
        let expr = Expr::compile("has(record.start) && record.start <= now").unwrap();
        let mut record = HashMap::new();
        record.insert(
            "start".to_owned(),
            crate::journey::record::cel_now(chrono::DateTime::from_timestamp(50, 0).unwrap()),
        );
        let scope = scope_at(record, 100);
        assert_eq!(expr.eval(&scope), Outcome::True);
        assert!(scope.clock_read());
    }

    #[test]
    fn an_expression_decided_before_it_reaches_now_did_not_read_the_clock() {
        let expr = Expr::compile("has(record.start) && record.start <= now").unwrap();
        let scope = scope_at(HashMap::new(), 100);
        assert_eq!(expr.eval(&scope), Outcome::False);
        assert!(!scope.clock_read());
    }

    #[test]
    fn an_expression_counting_days_in_stage_reads_the_clock() {
        let expr = Expr::compile("has(record.days_in_stage) && record.days_in_stage > 3").unwrap();
        let scope = scope_at(HashMap::new(), 100);
        assert_eq!(expr.eval(&scope), Outcome::False);
        assert!(scope.clock_read());
    }

    #[test]
    fn an_expression_without_the_clock_leaves_it_unread() {
        let expr = Expr::compile("record.amount > 10.0").unwrap();
        let s = scope(11.0);
        assert_eq!(expr.eval(&s), Outcome::True);
        assert!(!s.clock_read());
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

    fn keys_of(source: &str) -> RecordKeys {
        RecordKeys::of([&Expr::compile(source).unwrap()])
    }

    #[test]
    fn an_expression_wants_the_record_keys_it_names() {
        let keys = keys_of("has(record.amount) && record.amount > 0.0 && record.stage == 'won'");
        assert!(keys.wants("amount") && keys.wants("stage"));
        assert!(!keys.wants("email") && !keys.wants("fields"));
    }

    #[test]
    fn an_expression_wants_the_fields_it_names_and_no_others() {
        let keys = keys_of("has(record.fields.champion) || record.fields.score > 3");
        assert!(keys.wants("fields"));
        assert!(keys.wants_field("champion") && keys.wants_field("score"));
        assert!(!keys.wants_field("budget"));
    }

    #[test]
    fn an_expression_using_the_whole_record_wants_every_key() {
        for source in [
            "size(record) > 3",
            "'email' in record",
            "record['email'] == 'a'",
        ] {
            let keys = keys_of(source);
            assert!(keys.wants("email") && keys.wants_field("any"), "{source}");
        }
    }

    #[test]
    fn an_expression_using_the_whole_fields_map_wants_every_field() {
        let keys = keys_of("size(record.fields) > 0 && record.amount > 1.0");
        assert!(keys.wants_field("anything") && keys.wants("amount"));
        assert!(!keys.wants("email"));
    }

    #[test]
    fn keys_named_in_any_operand_are_wanted() {
        let keys = keys_of("!has(record.fields.champion) && record.email in record.contacts");
        assert!(keys.wants("contacts") && keys.wants("email") && keys.wants_field("champion"));
        assert!(!keys.wants("domain"));
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
