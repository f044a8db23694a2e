//! Errors of loading a config, each pointing at `file:line:column` with a hint.
//!
//! Owns [`ConfigError`] (what `Config::load` returns), [`ConfigProblem`] (what the semantic
//! checks find, before a file and position are attached) and the translation of serde-saphyr's
//! parse errors into messages a user can act on (the valid keys of a section, the closest one
//! by edit distance, the allowed values of an enum). Does not decide what is valid.

use std::fmt;
use std::path::PathBuf;

use super::Config;
use super::tree::KeyTree;

/// A 1-based line and column in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column (in characters), from 1.
    pub column: u64,
}

impl Position {
    /// The position of a serde-saphyr location; `None` when it is unknown.
    pub(crate) fn of(location: &serde_saphyr::Location) -> Option<Self> {
        (location.line() > 0).then(|| Self {
            line: location.line(),
            column: location.column(),
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A value that parsed but is not allowed, found by [`Config::validate`](super::Config::validate).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}{}", hint_suffix(.hint))]
pub struct ConfigProblem {
    /// Dotted path of the offending key, e.g. `quantization.activation.symmetric`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub hint: Option<String>,
}

/// Why a config could not be loaded. Displays as `<file>:<line>:<col>: <what> (hint: ...)`;
/// the CLI prefixes `error: `.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the config: {source}", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML or does not fit the schema: syntax, unknown key, wrong type,
    /// duplicate key, missing `model`, unknown enum value.
    #[error("{}{}: {message}{}", file.display(), position_suffix(.position), hint_suffix(.hint))]
    Parse {
        /// The config file.
        file: PathBuf,
        /// Where, when known.
        position: Option<Position>,
        /// What is wrong.
        message: String,
        /// What to change.
        hint: Option<String>,
    },
    /// The config parsed but a value is not allowed.
    #[error("{}{}: {problem}", file.display(), position_suffix(.position))]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// Where the offending key's value is, when the key is in the file.
        position: Option<Position>,
        /// What is wrong and what to change.
        problem: ConfigProblem,
    },
}

fn position_suffix(position: &Option<Position>) -> String {
    position.map(|p| format!(":{p}")).unwrap_or_default()
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|hint| format!(" (hint: {hint})"))
        .unwrap_or_default()
}

/// What part of the document an error's position says it is about.
enum Subject {
    /// The value at the position is itself wrong: `key: ...`.
    Value,
    /// The value of the key at the position (serde-saphyr reports the errors of a value's
    /// own visitor at its key; in block style that is also where the parent mapping starts).
    Key,
    /// Something inside the value at the position: `in `key`: ...` for a mapping or list.
    Inside,
    /// A mapping or list that starts at the position, or holds the key there (a missing key).
    Container,
    /// Nothing to add: the message names the key itself.
    Named,
}

impl ConfigError {
    /// Turns a serde-saphyr error on `text` (read from `file`) into a located, hinted error.
    pub(crate) fn from_yaml(file: PathBuf, text: &str, error: &serde_saphyr::Error) -> Self {
        let error = error.without_snippet();
        let position = error.location().as_ref().and_then(Position::of);
        let tree = position.and_then(|_| KeyTree::parse(text));
        let (message, hint, subject) = describe(error, text, position, tree.as_ref());
        // The key the error is about, and whether the problem is inside its mapping or list.
        let subject_entry = position.zip(tree.as_ref()).and_then(|(p, tree)| {
            let at_value = tree.value_at(p);
            match subject {
                Subject::Inside => at_value
                    .or_else(|| tree.key_at(p))
                    .map(|entry| (entry, entry.value_is_container && entry.value_at == p)),
                Subject::Value => at_value.or_else(|| tree.key_at(p)).map(|e| (e, false)),
                Subject::Key => tree.key_at(p).or(at_value).map(|e| (e, false)),
                Subject::Container => at_value
                    .filter(|entry| entry.value_is_container)
                    .or_else(|| tree.parent(tree.key_at(p)?))
                    .map(|entry| (entry, true)),
                Subject::Named => None,
            }
        });
        let (message, hint) = match subject_entry {
            Some((entry, true)) => (format!("in `{}`: {message}", entry.path.join(".")), hint),
            Some((entry, false)) => (
                format!("{}: {message}", entry.path.join(".")),
                hint.or_else(|| expected_hint(&entry.path)),
            ),
            None => (message, hint),
        };
        Self::Parse {
            file,
            position,
            message,
            hint,
        }
    }
}

/// What the schema holds at `path`, from the defaults: the default value when it is short,
/// else the keys of the section.
fn expected_hint(path: &[String]) -> Option<String> {
    let defaults = serde_json::to_value(Config::default_with_model("model.onnx")).ok()?;
    let value = path
        .iter()
        .try_fold(&defaults, |value, key| value.get(key.as_str()))?;
    let written = flow_yaml(value);
    match value {
        _ if written.len() <= 60 => Some(format!("the default is `{written}`")),
        serde_json::Value::Object(section) => {
            let keys: Vec<String> = section.keys().map(|key| format!("`{key}`")).collect();
            Some(format!("its keys are {}", keys.join(", ")))
        }
        _ => None,
    }
}

/// `value` written as YAML on one line (flow style): `{kind: synthetic, seed: 0}`.
fn flow_yaml(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{key}: {}", flow_yaml(value)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flow_yaml).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(text) if is_plain(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether `text` can be written unquoted in YAML and reads back as the same string.
fn is_plain(text: &str) -> bool {
    let reserved = ["null", "true", "false", "~", "yes", "no", "on", "off"];
    !text.is_empty()
        && !reserved.contains(&text.to_ascii_lowercase().as_str())
        && text.parse::<f64>().is_err()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// The message, hint and subject of a serde-saphyr error.
fn describe(
    error: &serde_saphyr::Error,
    text: &str,
    position: Option<Position>,
    tree: Option<&KeyTree>,
) -> (String, Option<String>, Subject) {
    use serde_saphyr::Error as E;
    match error {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let section = position
                .and_then(|p| tree?.key_at(p))
                .map(|entry| entry.path[..entry.path.len().saturating_sub(1)].join("."))
                .filter(|section| !section.is_empty());
            let message = match &section {
                Some(section) => format!("unknown key `{field}` in `{section}`"),
                None => format!("unknown key `{field}`"),
            };
            (
                message,
                Some(choice_hint("valid keys here", field, expected)),
                Subject::Named,
            )
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            format!("unknown value `{variant}`"),
            Some(choice_hint("allowed values", variant, expected)),
            Subject::Value,
        ),
        E::SerdeMissingField { field, .. } if *field == "model" => (
            "missing key `model`".to_owned(),
            Some("every config names its ONNX model: `model: path/to/model.onnx`".to_owned()),
            Subject::Named,
        ),
        E::SerdeMissingField { field, .. } => (
            format!("missing key `{field}`"),
            Some(format!("add `{field}:` to this mapping")),
            Subject::Container,
        ),
        E::DuplicateMappingKey { key, .. } => (
            match key {
                Some(key) => format!("duplicate key `{key}`"),
                None => "duplicate key".to_owned(),
            },
            Some("each key may appear once in a mapping: keep one".to_owned()),
            Subject::Named,
        ),
        E::InvalidScalar { ty, .. } => {
            let token = position.map(|p| token_at(text, p)).unwrap_or_default();
            let message = format!(
                "wrong type: expected {}, found `{token}`",
                friendly_type(ty)
            );
            (message, None, Subject::Value)
        }
        E::Unexpected { expected, .. } => {
            let message = format!("wrong type: expected {}", friendly_type(expected));
            (message, None, Subject::Value)
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            let message = format!("wrong type: expected {expected}, found {unexpected}");
            (message, None, Subject::Value)
        }
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            let message = format!("invalid value: expected {expected}, found {unexpected}");
            (message, None, Subject::Key)
        }
        E::SerdeInvalidLength { len, expected, .. } => {
            let message = format!("wrong length: expected {expected}, found {len} items");
            (message, None, Subject::Value)
        }
        E::Eof { .. } => (
            "the config is empty".to_owned(),
            Some("a minimal config is `model: path/to/model.onnx`".to_owned()),
            Subject::Named,
        ),
        other => (plain_message(other), None, Subject::Inside),
    }
}

/// serde-saphyr's names of scalar and container kinds, as a user would say them.
fn friendly_type(name: &str) -> String {
    let sized = |prefix: char| {
        name.strip_prefix(prefix).is_some_and(|bits| {
            bits == "size" || (!bits.is_empty() && bits.chars().all(|c| c.is_ascii_digit()))
        })
    };
    match name {
        _ if sized('u') => "a non-negative integer",
        _ if sized('i') => "an integer",
        "f32" | "f64" | "floating point" => "a number",
        "boolean" | "bool" => "true or false",
        "string scalar" | "string" => "a string",
        "mapping start" => "a mapping (`key: value` lines or `{key: value}`)",
        "sequence start" => "a list (`[a, b]` or `- a` lines)",
        other => return format!("`{other}`"),
    }
    .to_owned()
}

/// The scalar written at `position` in `text` (up to a flow delimiter, comment or line end).
fn token_at(text: &str, position: Position) -> String {
    let line = text
        .lines()
        .nth(usize::try_from(position.line.saturating_sub(1)).unwrap_or(usize::MAX));
    let skip = usize::try_from(position.column.saturating_sub(1)).unwrap_or(usize::MAX);
    line.map(|line| {
        line.chars()
            .skip(skip)
            .take_while(|c| !matches!(c, ',' | ']' | '}' | '#'))
            .collect::<String>()
            .trim()
            .to_owned()
    })
    .unwrap_or_default()
}

/// serde-saphyr's own wording of `error`, without its location (our `file:line:col` prefix
/// says where) and with control characters replaced so the message stays one line.
fn plain_message(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter;
    serde_saphyr::UserMessageFormatter
        .format_message(error)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// "did you mean `x`? <what>: a, b, c" — the suggestion only when one choice is close.
fn choice_hint(what: &str, given: &str, choices: &[&str]) -> String {
    let list = choices
        .iter()
        .map(|choice| format!("`{choice}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(given, choices) {
        Some(best) => format!("did you mean `{best}`? {what}: {list}"),
        None => format!("{what}: {list}"),
    }
}

/// The choice nearest to `given` by edit distance, if it is near enough to be a likely typo
/// (at most a third of the longer name's length, and at least 1 edit allowed).
fn closest<'a>(given: &str, choices: &[&'a str]) -> Option<&'a str> {
    choices
        .iter()
        .map(|choice| (edit_distance(given, choice), *choice))
        .filter(|(distance, choice)| *distance <= (given.len().max(choice.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, choice)| choice)
}

/// Levenshtein distance over characters, ASCII case ignored.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("opset", "opset"), 0);
        assert_eq!(edit_distance("opst", "opset"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("Entropy", "entropy"), 0);
    }

    #[test]
    fn flow_yaml_quotes_only_strings_yaml_would_read_differently() {
        use serde_json::json;
        let data = json!({"kind": "synthetic", "seed": 0});
        assert_eq!(flow_yaml(&data), "{kind: synthetic, seed: 0}");
        assert_eq!(flow_yaml(&json!(["markdown", "json"])), "[markdown, json]");
        assert_eq!(flow_yaml(&json!("strongly-typed")), "strongly-typed");
        assert_eq!(flow_yaml(&json!("true")), "\"true\"");
        assert_eq!(flow_yaml(&json!("1.5")), "\"1.5\"");
        assert_eq!(flow_yaml(&json!("a b")), "\"a b\"");
        assert_eq!(flow_yaml(&json!(null)), "null");
    }

    #[test]
    fn closest_suggests_only_near_names() {
        let keys = ["strategy", "activation", "weight", "tie_groups"];
        assert_eq!(closest("activaton", &keys), Some("activation"));
        assert_eq!(closest("tie_group", &keys), Some("tie_groups"));
        assert_eq!(closest("banana", &keys), None);
    }
}
