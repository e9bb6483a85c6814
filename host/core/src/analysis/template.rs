//! `{{args.<name>}}` substitution in metrics, as Argo's `ResolveMetricArgs` and
//! `ResolveQuotedArgs` (`utils/analysis/factory.go`, `utils/template/template.go`) do it.
//!
//! Argo serializes the whole metric to JSON, replaces every `{{tag}}` in that text (tags are
//! trimmed; `args.<name>` is the only tag known), and parses the result back. Each value is first
//! escaped with Go's `strconv.Quote` minus the surrounding quotes, so that it can sit inside a JSON
//! string: `"` becomes `\"`, `\` becomes `\\`, a newline `\n`, a tab `\t`. Every string of the
//! metric is therefore substituted (query, url, headers, conditions, `count` and the limits
//! written as strings, `jsonBody`, plugin configuration, Job spec, ...), map keys included.
//!
//! Two consequences of this design are kept on purpose, because they are what Argo does:
//!
//! - a value holding a control character that JSON has no short escape for (`\x01`, `\a`, `\v`)
//!   is quoted with a Go-only escape, so the substituted document is not JSON and the metric fails
//!   to resolve;
//! - substitution is one pass: a value that itself contains `{{args.y}}` is not expanded again.
//!
//! `valueFrom.secretKeyRef` arguments are resolved by the controller when it measures; until then
//! ([`SecretValues::Placeholder`]) they stand for the text `temp-for-secret`, as in Argo's
//! `getResolvedMetricsWithoutSecrets`.

use std::collections::BTreeMap;

use sluice_api::analysis::{Argument, Measurement, Metric, SecretKeyRef};

/// The value a secret argument takes while its Secret has not been read (Argo's placeholder).
pub const SECRET_PLACEHOLDER: &str = "temp-for-secret";

/// What replaces a redacted secret value in measurement messages.
pub const REDACTED: &str = "*****";

/// Why a metric's arguments could not be substituted. The `Display` texts are Argo's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An argument has neither a value nor a secret reference.
    #[error("argument \"{0}\" was not supplied")]
    NotSupplied(String),
    /// A secret argument whose value the controller did not provide.
    #[error("argument \"{argument}\": value of secret '{secret}' key '{key}' was not provided")]
    SecretNotProvided {
        /// The argument.
        argument: String,
        /// The Secret's name.
        secret: String,
        /// The key within the Secret.
        key: String,
    },
    /// A `{{tag}}` names no argument, e.g. `{{args.undeclared}}`; the tag is quoted as written.
    #[error("failed to resolve {{{{{0}}}}}")]
    Unresolved(String),
    /// A `{{` without a closing `}}`.
    #[error("cannot find end tag \"}}}}\" in the template starting from {0:?}")]
    UnclosedTag(String),
    /// The substituted metric is not a valid metric any more (e.g. a value with a control
    /// character that has no JSON escape).
    #[error("substituted metric is not valid JSON: {0}")]
    InvalidResult(String),
}

/// Values of `valueFrom.secretKeyRef` arguments.
#[derive(Debug, Clone, Copy)]
pub enum SecretValues<'a> {
    /// Secrets are not read yet: every secret argument is `temp-for-secret`. Used to schedule,
    /// validate and assess without reading Secrets.
    Placeholder,
    /// Secret values by argument name, read by the controller in the run's namespace.
    Resolved(&'a BTreeMap<String, String>),
}

/// A secret the controller must read before measuring: `valueFrom.secretKeyRef` of an argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretArgument<'a> {
    /// The argument's name.
    pub argument: &'a str,
    /// The Secret and key to read.
    pub secret: &'a SecretKeyRef,
}

/// The arguments whose value comes from a Secret, in declaration order.
pub fn secret_arguments(args: &[Argument]) -> Vec<SecretArgument<'_>> {
    args.iter()
        .filter_map(|argument| {
            let secret = argument.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some(SecretArgument {
                argument: &argument.name,
                secret,
            })
        })
        .collect()
}

/// Substitutes `{{args.*}}` in one metric. A secret reference takes precedence over a `value`
/// (as in Argo's `resolveArgs`); any other argument without a value is an error even if no
/// placeholder uses it (Argo's `ResolveArgs`).
pub fn resolve_metric(
    metric: &Metric,
    args: &[Argument],
    secrets: SecretValues<'_>,
) -> Result<Metric, TemplateError> {
    let values = argument_values(args, secrets)?;
    let text = serde_json::to_string(metric)
        .map_err(|error| TemplateError::InvalidResult(error.to_string()))?;
    let substituted = substitute(&text, &values)?;
    serde_json::from_str(&substituted)
        .map_err(|error| TemplateError::InvalidResult(error.to_string()))
}

/// Substitutes `{{args.*}}` in every metric, in order.
pub fn resolve_metrics(
    metrics: &[Metric],
    args: &[Argument],
    secrets: SecretValues<'_>,
) -> Result<Vec<Metric>, TemplateError> {
    metrics
        .iter()
        .map(|metric| resolve_metric(metric, args, secrets))
        .collect()
}

/// Replaces every secret value in a measurement's message with `*****` (Argo redacts secrets
/// from measurement messages and logs). Empty secrets are ignored.
pub fn redact_secrets<'a>(
    measurement: &mut Measurement,
    secret_values: impl IntoIterator<Item = &'a str>,
) {
    let Some(message) = measurement.message.as_mut() else {
        return;
    };
    for secret in secret_values {
        if !secret.is_empty() {
            *message = message.replace(secret, REDACTED);
        }
    }
}

/// The quoted value of every argument, keyed by its tag `args.<name>`.
fn argument_values(
    args: &[Argument],
    secrets: SecretValues<'_>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut values = BTreeMap::new();
    for argument in args {
        let secret = argument
            .value_from
            .as_ref()
            .and_then(|from| from.secret_key_ref.as_ref());
        let value = match (secret, secrets) {
            (Some(_), SecretValues::Placeholder) => SECRET_PLACEHOLDER.to_string(),
            (Some(reference), SecretValues::Resolved(known)) => known
                .get(&argument.name)
                .cloned()
                .ok_or_else(|| TemplateError::SecretNotProvided {
                    argument: argument.name.clone(),
                    secret: reference.name.clone(),
                    key: reference.key.clone(),
                })?,
            (None, _) => argument
                .value
                .clone()
                .ok_or_else(|| TemplateError::NotSupplied(argument.name.clone()))?,
        };
        values.insert(format!("args.{}", argument.name), go_quote_inner(&value));
    }
    Ok(values)
}

/// fasttemplate's `ExecuteFuncString` with Argo's tag function: one pass over `{{tag}}`s; an
/// unknown tag is replaced by nothing and reported (the last one wins, as in Argo).
fn substitute(template: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    let mut unresolved = None;
    while let Some(start) = rest.find("{{") {
        output.push_str(&rest[..start]);
        let after_open = &rest[start + 2..];
        let Some(end) = after_open.find("}}") else {
            return Err(TemplateError::UnclosedTag(after_open.to_string()));
        };
        let tag = &after_open[..end];
        match values.get(tag.trim()) {
            Some(value) => output.push_str(value),
            None => unresolved = Some(tag.to_string()),
        }
        rest = &after_open[end + 2..];
    }
    output.push_str(rest);
    match unresolved {
        Some(tag) => Err(TemplateError::Unresolved(tag)),
        None => Ok(output),
    }
}

/// Go's `strconv.Quote(value)` without the surrounding quotes.
///
/// `"` and `\` are escaped; printable characters are kept; `\a \b \f \n \r \t \v` use their short
/// escapes; other ASCII controls `\xNN`; other non-printable characters `\uNNNN` or `\UNNNNNNNN`.
/// "Printable" follows Go's `strconv.IsPrint` for every character Sluice can meet in practice
/// (controls, separators other than the ASCII space, format characters, private use).
pub fn go_quote_inner(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    for character in value.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{07}' => quoted.push_str("\\a"),
            '\u{08}' => quoted.push_str("\\b"),
            '\u{0C}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{0B}' => quoted.push_str("\\v"),
            control if (control as u32) < 0x20 || control == '\u{7F}' => {
                quoted.push_str(&format!("\\x{:02x}", control as u32));
            }
            printable if go_is_print(printable) => quoted.push(printable),
            other if (other as u32) < 0x10000 => {
                quoted.push_str(&format!("\\u{:04x}", other as u32));
            }
            other => quoted.push_str(&format!("\\U{:08x}", other as u32)),
        }
    }
    quoted
}

/// Go's `strconv.IsPrint`, for the classes that matter: controls, separators other than the
/// ASCII space, format characters (Cf) and private-use characters are not printable.
fn go_is_print(character: char) -> bool {
    let code = character as u32;
    let control = character.is_control();
    let separator = character != ' ' && character.is_whitespace() && !control;
    let format = matches!(
        code,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let private_use = matches!(code, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    !(control || separator || format || private_use)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_strconv_quote() {
        let cases = [
            ("plain", "plain"),
            ("say \"hi\"", "say \\\"hi\\\""),
            ("C:\\path", "C:\\\\path"),
            ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
            ("bell\u{07}", "bell\\a"),
            ("nul\u{0}", "nul\\x00"),
            ("del\u{7F}", "del\\x7f"),
            ("nbsp\u{A0}", "nbsp\\u00a0"),
            ("zwsp\u{200B}", "zwsp\\u200b"),
            ("héllo ✓ 日本", "héllo ✓ 日本"),
            ("private\u{F0000}", "private\\U000f0000"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_quote_inner(value), expected, "{value:?}");
        }
    }

    #[test]
    fn substitution_is_single_pass_and_trims_tags() {
        let values = BTreeMap::from([
            ("args.a".to_string(), "{{args.b}}".to_string()),
            ("args.b".to_string(), "B".to_string()),
        ]);
        assert_eq!(
            substitute("x={{ args.a }} y={{args.b}}", &values),
            Ok("x={{args.b}} y=B".to_string())
        );
    }

    #[test]
    fn unclosed_tag_is_an_error() {
        assert_eq!(
            substitute("x={{args.a", &BTreeMap::new()),
            Err(TemplateError::UnclosedTag("args.a".to_string()))
        );
    }
}
