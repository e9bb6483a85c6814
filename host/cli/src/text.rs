//! Text helpers shared by the renderers: aligned columns that ignore colour codes, ANSI colours,
//! kubectl's human-readable ages, and edit distance for "did you mean" suggestions.

/// ANSI colours used by the renderers (the same as Argo's CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// Failures and warnings.
    Red,
    /// Healthy, successful, stable.
    Green,
    /// Waiting, canary, inconclusive.
    Yellow,
    /// Progressing, preview, running.
    BrightBlue,
}

impl Color {
    fn code(self) -> u8 {
        match self {
            Self::Red => 31,
            Self::Green => 32,
            Self::Yellow => 33,
            Self::BrightBlue => 94,
        }
    }
}

/// Whether output is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Plain text (not a terminal, `--no-color`, `NO_COLOR`).
    Plain,
    /// ANSI colours.
    Colored,
}

impl Style {
    /// `text` in `color`, or unchanged in plain style or without a colour.
    pub fn paint(self, text: &str, color: Option<Color>) -> String {
        match (self, color) {
            (Self::Colored, Some(color)) if !text.is_empty() => {
                format!("\x1b[{}m{text}\x1b[0m", color.code())
            }
            _ => text.to_owned(),
        }
    }
}

/// The number of terminal columns `text` takes, ignoring ANSI escape sequences (every character
/// the renderers print is one column wide).
pub fn display_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// Lays out rows of cells in columns separated by `gap` spaces (like Go's tabwriter as Argo's CLI
/// uses it); the last cell of a row is not padded and trailing spaces are trimmed.
pub fn align_columns(rows: &[Vec<String>], gap: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[index] = widths[index].max(display_width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if index + 1 < row.len() {
                let padding = widths[index] - display_width(cell) + gap;
                line.extend(std::iter::repeat_n(' ', padding));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration as kubectl prints ages (`HumanDuration` of `k8s.io/apimachinery`): `45s`,
/// `3m20s`, `12m`, `5h3m`, `20h`, `3d4h`, `30d`, `2y40d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let rest = seconds % 60;
        return if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let rest = hours % 24;
        return if rest == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{rest}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The Levenshtein distance between two names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a plausible typo
/// (at most a third of the name's length, and at least one edit allowed).
pub fn closest_name<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, candidate)| candidate.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 180, "5h3m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400 + 40 * 86400, "2y40d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}s");
        }
    }

    #[test]
    fn columns_ignore_colour_codes() {
        let rows = vec![
            vec![
                "a".to_owned(),
                Style::Colored.paint("xx", Some(Color::Red)),
                "z".to_owned(),
            ],
            vec!["bbb".to_owned(), "y".to_owned(), String::new()],
        ];
        assert_eq!(
            align_columns(&rows, 2),
            "a    \u{1b}[31mxx\u{1b}[0m  z\nbbb  y\n"
        );
    }

    #[test]
    fn suggestions_pick_the_closest_plausible_name() {
        let names = ["food".to_owned(), "bar".to_owned(), "guestbook".to_owned()];
        assert_eq!(closest_name("foo", &names), Some("food"));
        assert_eq!(closest_name("guestbok", &names), Some("guestbook"));
        assert_eq!(closest_name("something-else", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
