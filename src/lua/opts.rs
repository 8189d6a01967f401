//! Options tables: every function that takes `{ key = value }` checks the
//! keys it knows and the type of each value, and says which option of which
//! function is wrong.
//!
//! Numbers from Lua become durations and counts here, and only here:
//! [`seconds`] and [`whole`] are the one checked conversion every entry
//! point uses (options, callback answers, arguments). A float cast with
//! `as` saturates silently and `Duration::from_secs_f64` panics on a huge
//! value, so neither is used on script input anywhere else.

use std::fmt;
use std::time::Duration;

use mlua::{Function, Table, Value};

/// The longest wait a script may ask for, anywhere: one day. More is a
/// mistake (or hostile input) and is refused, not cut.
pub(crate) const MAX_WAIT_SECS: u64 = 86_400;

/// What a number from Lua had to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A number (not a string) of seconds from 0 to [`MAX_WAIT_SECS`].
    Seconds,
    /// A whole number within `min..=max`.
    Whole { min: i64, max: i64 },
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Seconds => write!(f, "a number of seconds from 0 to {MAX_WAIT_SECS}"),
            Want::Whole { min, max } => write!(f, "a whole number from {min} to {max}"),
        }
    }
}

/// A value refused by [`seconds`] or [`whole`]; the caller names whose
/// value it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be {want}, got {got}")]
pub(crate) struct Refused {
    want: Want,
    /// The value as an error message shows it ([`got`]).
    pub(crate) got: String,
}

/// Seconds as a duration: an integer or a float from 0 to a day. NaN,
/// infinities, negatives, more than a day and strings are refused (Lua's
/// string-to-number coercion does not apply).
pub(crate) fn seconds(v: &Value) -> Result<Duration, Refused> {
    let refused = || Refused {
        want: Want::Seconds,
        got: got(v),
    };
    match v {
        Value::Integer(i) => u64::try_from(*i)
            .ok()
            .filter(|s| *s <= MAX_WAIT_SECS)
            .map(Duration::from_secs)
            .ok_or_else(refused),
        // The range test is false for NaN too.
        Value::Number(f) if (0.0..=MAX_WAIT_SECS as f64).contains(f) => {
            Ok(Duration::from_secs_f64(*f))
        }
        _ => Err(refused()),
    }
}

/// A whole number within `min..=max`: an integer, or a float with no
/// fraction that is exactly within range (no saturating cast).
fn whole(v: &Value, min: i64, max: i64) -> Result<i64, Refused> {
    // 2^63: the first float past i64::MAX (i64::MAX as f64 rounds up to it).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let n = match v {
        Value::Integer(i) => Some(*i),
        Value::Number(f) if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(f) => Some(*f as i64),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n))
        .ok_or_else(|| Refused {
            want: Want::Whole { min, max },
            got: got(v),
        })
}

/// A value as "got ..." shows it: a number as Lua prints it (`1e+300`),
/// anything else as its type and, when it says more, its value
/// (`string ("5")`).
pub(crate) fn got(v: &Value) -> String {
    match v {
        Value::Integer(_) | Value::Number(_) => display(v),
        other => {
            let shown = display(other);
            if shown == other.type_name() {
                shown
            } else {
                format!("{} ({shown})", other.type_name())
            }
        }
    }
}

pub(crate) struct Opts {
    func: String,
    /// For a nested table (`backoff = {...}`): its key, so its options are
    /// named `backoff.base`.
    prefix: Option<String>,
    table: Option<Table>,
}

impl Opts {
    /// `value` must be nil or a table whose keys are all in `known`.
    pub(crate) fn new(func: &str, value: Option<Value>, known: &[&str]) -> mlua::Result<Opts> {
        Opts::build(func, None, value, known)
    }

    /// The table under option `prefix` of `func`: its options are named
    /// `prefix.key` in messages.
    pub(crate) fn nested(
        func: &str,
        prefix: &str,
        value: Value,
        known: &[&str],
    ) -> mlua::Result<Opts> {
        Opts::build(func, Some(prefix), Some(value), known)
    }

    fn build(
        func: &str,
        prefix: Option<&str>,
        value: Option<Value>,
        known: &[&str],
    ) -> mlua::Result<Opts> {
        let mut opts = Opts {
            func: func.to_string(),
            prefix: prefix.map(String::from),
            table: None,
        };
        opts.table = match value {
            None | Some(Value::Nil) => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                return Err(mlua::Error::runtime(match prefix {
                    None => format!("{func}: options must be a table, got {}", other.type_name()),
                    Some(p) => format!("{func}: option '{p}' must be a table, got {}", got(&other)),
                }))
            }
        };
        if let Some(t) = &opts.table {
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                let name = match &k {
                    Value::String(s) => s.to_string_lossy(),
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "{func}: option names must be strings, got {} ({})",
                            other.type_name(),
                            display(other)
                        )))
                    }
                };
                if !known.contains(&name.as_str()) {
                    return Err(mlua::Error::runtime(format!(
                        "{func}: unknown option '{}' (valid: {})",
                        opts.name(&name),
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(opts)
    }

    /// The option's name as messages give it.
    fn name(&self, key: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}.{key}"),
            None => key.to_string(),
        }
    }

    pub(crate) fn error(&self, key: &str, want: &str, got_value: &Value) -> mlua::Error {
        mlua::Error::runtime(format!(
            "{}: option '{}' must be {want}, got {}",
            self.func,
            self.name(key),
            got(got_value)
        ))
    }

    fn refused(&self, key: &str, r: Refused) -> mlua::Error {
        mlua::Error::runtime(format!("{}: option '{}' {r}", self.func, self.name(key)))
    }

    pub(crate) fn raw(&self, key: &str) -> mlua::Result<Value> {
        match &self.table {
            Some(t) => t.raw_get(key),
            None => Ok(Value::Nil),
        }
    }

    pub(crate) fn string(&self, key: &str) -> mlua::Result<Option<String>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::String(s) => Ok(Some(s.to_str()?.to_string())),
            other => Err(self.error(key, "a string", &other)),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> mlua::Result<Option<bool>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::Boolean(b) => Ok(Some(b)),
            other => Err(self.error(key, "true or false", &other)),
        }
    }

    /// A whole number within `min..=max`.
    pub(crate) fn integer(&self, key: &str, min: i64, max: i64) -> mlua::Result<Option<i64>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            v => whole(&v, min, max)
                .map(Some)
                .map_err(|r| self.refused(key, r)),
        }
    }

    pub(crate) fn function(&self, key: &str) -> mlua::Result<Option<Function>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::Function(f) => Ok(Some(f)),
            other => Err(self.error(key, "a function", &other)),
        }
    }

    /// An array of strings.
    pub(crate) fn strings(&self, key: &str) -> mlua::Result<Option<Vec<String>>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::Table(t) => {
                let mut out = Vec::new();
                for v in t.sequence_values::<Value>() {
                    match v? {
                        Value::String(s) => out.push(s.to_str()?.to_string()),
                        other => return Err(self.error(key, "a list of strings", &other)),
                    }
                }
                Ok(Some(out))
            }
            other => Err(self.error(key, "a list of strings", &other)),
        }
    }

    /// A duration up to a day: seconds as a number, or a string like
    /// "250ms", "1s", "2m".
    pub(crate) fn duration(&self, key: &str) -> mlua::Result<Option<Duration>> {
        let v = self.raw(key)?;
        let want = format!(
            "{} or a string like \"250ms\", \"1s\", \"2m\"",
            Want::Seconds
        );
        match &v {
            Value::Nil => Ok(None),
            Value::String(s) => {
                let d = crate::duration::parse_duration(&s.to_str()?).map_err(|e| {
                    mlua::Error::runtime(format!("{}: option '{}': {e}", self.func, self.name(key)))
                })?;
                if d > Duration::from_secs(MAX_WAIT_SECS) {
                    return Err(self.error(key, &want, &v));
                }
                Ok(Some(d))
            }
            Value::Integer(_) | Value::Number(_) => seconds(&v)
                .map(Some)
                .map_err(|_| self.error(key, &want, &v)),
            _ => Err(self.error(key, &want, &v)),
        }
    }
}

/// A short printable form of a value, for error messages.
pub(crate) fn display(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let s = s.to_string_lossy();
            if s.chars().count() > 40 {
                format!("{:?}…", s.chars().take(40).collect::<String>())
            } else {
                format!("{s:?}")
            }
        }
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => lua_number(*n),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => "nil".into(),
        other => other.type_name().to_string(),
    }
}

/// A value quoted for an error message, cut if long.
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("'{}…'", s.chars().take(40).collect::<String>())
    } else {
        format!("'{s}'")
    }
}

/// A float as Lua's `tostring` gives it (`%.14g`, with `.0` on a whole
/// number): `1e+300`, `0.5`, `3.0`, `nan`. Rust's own formatting writes
/// 1e300 as 301 digits.
fn lua_number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.into();
    }
    // 14 significant digits, then C's %g choice of notation.
    let sci = format!("{n:.13e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    let text = if !(-4..14).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{n:.*}", (13 - exp) as usize))
    };
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        format!("{text}.0")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_lua_prints_them() {
        for (n, want) in [
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (0.5, "0.5"),
            (1.5, "1.5"),
            (3.0, "3.0"),
            (-0.0, "-0.0"),
            (1e15, "1e+15"),
            (1e14, "1e+14"),
            (123456789.0, "123456789.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2f64.powi(63), "9.2233720368548e+18"),
            (0.1 + 0.2, "0.3"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(lua_number(n), want, "{n:e}");
        }
        assert_eq!(lua_number(f64::NAN).trim_start_matches('-'), "nan");
    }

    #[test]
    fn seconds_are_checked() {
        let ok = |v: Value| seconds(&v).unwrap();
        assert_eq!(ok(Value::Integer(0)), Duration::ZERO);
        assert_eq!(ok(Value::Integer(86_400)), Duration::from_secs(86_400));
        assert_eq!(ok(Value::Number(0.25)), Duration::from_millis(250));
        for bad in [
            Value::Integer(-1),
            Value::Integer(86_401),
            Value::Integer(i64::MAX),
            Value::Integer(i64::MIN),
            Value::Number(1e300),
            Value::Number(-1e-9),
            Value::Number(86_400.001),
            Value::Number(f64::NAN),
            Value::Number(f64::INFINITY),
            Value::Nil,
            Value::Boolean(true),
        ] {
            let e = seconds(&bad).unwrap_err();
            assert_eq!(e.want, Want::Seconds);
        }
        assert_eq!(
            seconds(&Value::Number(1e300)).unwrap_err().to_string(),
            "must be a number of seconds from 0 to 86400, got 1e+300"
        );
    }

    #[test]
    fn whole_numbers_are_checked_without_saturating() {
        let w = |v: Value| whole(&v, 0, i64::MAX);
        assert_eq!(w(Value::Integer(5)), Ok(5));
        assert_eq!(w(Value::Number(5.0)), Ok(5));
        assert_eq!(w(Value::Integer(i64::MAX)), Ok(i64::MAX));
        // 2^63 is past i64::MAX: refused, not saturated to it.
        assert!(w(Value::Number(2f64.powi(63))).is_err());
        assert!(w(Value::Number(1e300)).is_err());
        assert!(w(Value::Number(1.5)).is_err());
        assert!(w(Value::Number(f64::NAN)).is_err());
        assert!(w(Value::Number(f64::INFINITY)).is_err());
        assert!(w(Value::Integer(-1)).is_err());
        assert!(whole(&Value::Number(-1e300), 1, 500).is_err());
        assert_eq!(whole(&Value::Number(-2.0), -3, 0), Ok(-2));
        assert_eq!(
            whole(&Value::Number(1e300), 0, 10).unwrap_err().to_string(),
            "must be a whole number from 0 to 10, got 1e+300"
        );
    }
}
