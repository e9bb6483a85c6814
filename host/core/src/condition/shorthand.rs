//! Expands expr's closure member shorthand, `.field`, into `#.field`.
//!
//! Inside a closure expr lets `.value` stand for `#.value` (the current element's field), as in
//! Argo's SkyWalking example `all(result.service_apdex.values.values, {asFloat(.value) >= 9900})`.
//! expr-lang's grammar accepts `.field` only as a whole predicate (`map(xs, .field)`), so the
//! source is rewritten before parsing: a `.` that starts an operand and is followed by a name gets
//! a `#` in front. A `.` after an operand (`result.ok`), in a number (`0.95`, `.5`), in a range
//! (`1..3`), in optional chaining (`result?.ok`), or inside a string or comment is left alone.

/// A rewritten condition and where `#` was inserted, to map syntax errors back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expanded {
    /// The source with every member shorthand written out.
    pub(super) text: String,
    /// The 1-based (line, column) of each inserted `#` in `text`, in order.
    pub(super) insertions: Vec<(usize, usize)>,
}

impl Expanded {
    /// The column in the original source of a 1-based position in the rewritten text.
    pub(super) fn original_column(&self, line: usize, column: usize) -> usize {
        let inserted_before = self
            .insertions
            .iter()
            .filter(|(inserted_line, inserted_column)| {
                *inserted_line == line && *inserted_column < column
            })
            .count();
        column - inserted_before
    }
}

/// Words that are operators or keywords: a `.` after one of them starts an operand.
const OPERATOR_WORDS: [&str; 11] = [
    "and",
    "or",
    "not",
    "in",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "let",
    "if",
    "else",
];

/// What the token before the current position was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Previous {
    /// A value: a name, a literal, or a closing bracket. A `.` after it is member access.
    Operand,
    /// Nothing, an operator, an opening bracket, or a separator. A `.` after it starts an operand.
    Operator,
}

/// Rewrites every closure member shorthand `.field` in `source` into `#.field`.
pub(super) fn expand_member_shorthand(source: &str) -> Expanded {
    let characters: Vec<char> = source.chars().collect();
    let mut text = String::with_capacity(source.len() + 8);
    let mut insertions = Vec::new();
    let mut previous = Previous::Operator;
    let mut position = Position { line: 1, column: 1 };
    let mut index = 0;

    while index < characters.len() {
        let character = characters[index];
        let next = characters.get(index + 1).copied();
        let end = match character {
            '\'' | '"' => {
                previous = Previous::Operand;
                quoted_literal_end(&characters, index)
            }
            '`' => {
                previous = Previous::Operand;
                find_from(&characters, index + 1, &['`']).map_or(characters.len(), |at| at + 1)
            }
            '/' if next == Some('/') => {
                find_from(&characters, index, &['\n']).unwrap_or(characters.len())
            }
            '/' if next == Some('*') => block_comment_end(&characters, index),
            _ if character.is_whitespace() => index + 1,
            _ if is_name_character(character) && !character.is_ascii_digit() => {
                let end = run_end(&characters, index, is_name_character);
                let word: String = characters[index..end].iter().collect();
                let after_dot = index > 0 && characters[index - 1] == '.';
                previous = if !after_dot && OPERATOR_WORDS.contains(&word.as_str()) {
                    Previous::Operator
                } else {
                    Previous::Operand
                };
                end
            }
            _ if character.is_ascii_digit() => {
                previous = Previous::Operand;
                number_end(&characters, index)
            }
            '.' if next == Some('.') => {
                previous = Previous::Operator;
                index + 2
            }
            '.' if next.is_some_and(|next| next.is_ascii_digit()) => {
                previous = Previous::Operand;
                number_end(&characters, index)
            }
            '.' => {
                let starts_name =
                    next.is_some_and(|next| next.is_ascii_alphabetic() || next == '_');
                let optional_chaining = index > 0 && characters[index - 1] == '?';
                if starts_name && previous == Previous::Operator && !optional_chaining {
                    insertions.push((position.line, position.column));
                    text.push('#');
                    position.column += 1;
                }
                previous = Previous::Operator;
                index + 1
            }
            ')' | ']' | '}' => {
                previous = Previous::Operand;
                index + 1
            }
            _ => {
                previous = Previous::Operator;
                index + 1
            }
        };
        for &copied in &characters[index..end] {
            text.push(copied);
            position.advance(copied);
        }
        index = end;
    }
    Expanded { text, insertions }
}

/// A 1-based line and column in the rewritten text.
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    fn advance(&mut self, character: char) {
        if character == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
    }
}

/// Characters of names, including expr's `$env` and the closure variables `#`, `#index`, `#acc`.
fn is_name_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '$' | '#')
}

fn run_end(characters: &[char], start: usize, belongs: impl Fn(char) -> bool) -> usize {
    characters[start..]
        .iter()
        .position(|&character| !belongs(character))
        .map_or(characters.len(), |offset| start + offset)
}

fn find_from(characters: &[char], start: usize, wanted: &[char]) -> Option<usize> {
    characters
        .get(start..)?
        .iter()
        .position(|character| wanted.contains(character))
        .map(|offset| start + offset)
}

/// The end of a number literal (digits, `_`, hex digits, a fraction, an exponent), not eating the
/// first `.` of a range `1..3`.
fn number_end(characters: &[char], start: usize) -> usize {
    let mut index = start;
    while let Some(&character) = characters.get(index) {
        let continues = match character {
            '.' => characters.get(index + 1).is_some_and(char::is_ascii_digit),
            '+' | '-' => index > start && matches!(characters[index - 1], 'e' | 'E'),
            _ => character.is_ascii_alphanumeric() || character == '_',
        };
        if !continues {
            break;
        }
        index += 1;
    }
    index
}

/// The end (exclusive) of a quoted string starting at `start`, honouring backslash escapes; the
/// end of the source if it is unterminated (the parser reports that).
fn quoted_literal_end(characters: &[char], start: usize) -> usize {
    let quote = characters[start];
    let mut index = start + 1;
    while let Some(&character) = characters.get(index) {
        match character {
            '\\' => index += 2,
            _ if character == quote => return index + 1,
            _ => index += 1,
        }
    }
    characters.len()
}

fn block_comment_end(characters: &[char], start: usize) -> usize {
    let mut index = start + 2;
    while index + 1 < characters.len() {
        if characters[index] == '*' && characters[index + 1] == '/' {
            return index + 2;
        }
        index += 1;
    }
    characters.len()
}
