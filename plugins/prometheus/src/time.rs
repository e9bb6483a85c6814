//! The small subset of Argo's time expressions a range query uses: `now()`, optionally plus or
//! minus `duration("5m")`, and Go durations such as `1m`, `1h30m` or `500ms`.

use std::time::Duration;

/// Parses a Go duration (`time.ParseDuration`): a sequence of decimal numbers with units `ns`,
/// `us`/`µs`, `ms`, `s`, `m`, `h`, e.g. `1h30m`, `1.5s`; `0` alone is zero. No sign.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (expected e.g. 30s, 5m, 1h30m)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut seconds = 0.0_f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_end == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        seconds += number * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// Evaluates a range-query time expression against `now` (seconds since the Unix epoch):
/// `now()`, `now() - duration("5m")` or `now() + duration("1m")`.
pub fn evaluate_time_expression(expression: &str, now: f64) -> Result<f64, String> {
    let unsupported = || {
        format!(
            "unsupported time expression {expression:?}: Sluice supports now(), now() - duration(\"5m\") and now() + duration(\"5m\")"
        )
    };
    let rest = expression
        .trim()
        .strip_prefix("now()")
        .ok_or_else(unsupported)?
        .trim_start();
    if rest.is_empty() {
        return Ok(now);
    }
    let (sign, rest) = match rest.split_at(1) {
        ("-", rest) => (-1.0, rest),
        ("+", rest) => (1.0, rest),
        _ => return Err(unsupported()),
    };
    let argument = rest
        .trim()
        .strip_prefix("duration(")
        .and_then(|r| r.strip_suffix(')'))
        .map(str::trim)
        .ok_or_else(unsupported)?;
    let quoted = argument
        .strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .or_else(|| {
            argument
                .strip_prefix('\'')
                .and_then(|a| a.strip_suffix('\''))
        })
        .or_else(|| argument.strip_prefix('`').and_then(|a| a.strip_suffix('`')))
        .ok_or_else(unsupported)?;
    let offset = parse_go_duration(quoted)?;
    Ok(now + sign * offset.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "m", "5x", "-5m", "1d"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_expressions_evaluate_against_now() {
        let now = 1_700_000_000.0;
        assert_eq!(evaluate_time_expression("now()", now), Ok(now));
        assert_eq!(
            evaluate_time_expression(r#"now() - duration("5m")"#, now),
            Ok(now - 300.0)
        );
        assert_eq!(
            evaluate_time_expression("now()-duration('1h')", now),
            Ok(now - 3600.0)
        );
        assert_eq!(
            evaluate_time_expression(r#" now() + duration("30s") "#, now),
            Ok(now + 30.0)
        );
        let err = evaluate_time_expression("now() - 5m", now).unwrap_err();
        assert!(err.contains("unsupported time expression"), "{err}");
        assert!(evaluate_time_expression("2024-01-01T00:00:00Z", now).is_err());
        assert!(evaluate_time_expression(r#"now() - duration("5 minutes")"#, now).is_err());
    }
}
