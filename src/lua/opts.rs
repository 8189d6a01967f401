//! Options tables: every function that takes `{ key = value }` checks the
//! keys it knows and the type of each value, and says which option of which
//! function is wrong.

use mlua::{Function, Table, Value};

pub struct Opts {
    func: String,
    table: Option<Table>,
}

fn type_name(v: &Value) -> &'static str {
    v.type_name()
}

impl Opts {
    /// `value` must be nil or a table whose keys are all in `known`.
    pub fn new(func: &str, value: Option<Value>, known: &[&str]) -> mlua::Result<Opts> {
        let table = match value {
            None | Some(Value::Nil) => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                return Err(mlua::Error::runtime(format!(
                    "{func}: options must be a table, got {}",
                    type_name(&other)
                )))
            }
        };
        if let Some(t) = &table {
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                let name = match &k {
                    Value::String(s) => s.to_string_lossy(),
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "{func}: option names must be strings, got {} ({})",
                            type_name(other),
                            display(other)
                        )))
                    }
                };
                if !known.contains(&name.as_str()) {
                    return Err(mlua::Error::runtime(format!(
                        "{func}: unknown option '{name}' (valid: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(Opts {
            func: func.to_string(),
            table,
        })
    }

    pub fn error(&self, key: &str, want: &str, got: &Value) -> mlua::Error {
        mlua::Error::runtime(format!(
            "{}: option '{key}' must be {want}, got {} ({})",
            self.func,
            type_name(got),
            display(got)
        ))
    }

    pub fn raw(&self, key: &str) -> mlua::Result<Value> {
        match &self.table {
            Some(t) => t.raw_get(key),
            None => Ok(Value::Nil),
        }
    }

    pub fn string(&self, key: &str) -> mlua::Result<Option<String>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::String(s) => Ok(Some(s.to_str()?.to_string())),
            other => Err(self.error(key, "a string", &other)),
        }
    }

    pub fn boolean(&self, key: &str) -> mlua::Result<Option<bool>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::Boolean(b) => Ok(Some(b)),
            other => Err(self.error(key, "true or false", &other)),
        }
    }

    /// A whole number within `range`.
    pub fn integer(&self, key: &str, min: i64, max: i64) -> mlua::Result<Option<i64>> {
        let v = self.raw(key)?;
        let n = match &v {
            Value::Nil => return Ok(None),
            Value::Integer(i) => *i,
            Value::Number(f) if f.fract() == 0.0 && f.is_finite() => *f as i64,
            _ => return Err(self.error(key, &format!("a whole number from {min} to {max}"), &v)),
        };
        if n < min || n > max {
            return Err(self.error(key, &format!("a whole number from {min} to {max}"), &v));
        }
        Ok(Some(n))
    }

    pub fn function(&self, key: &str) -> mlua::Result<Option<Function>> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::Function(f) => Ok(Some(f)),
            other => Err(self.error(key, "a function", &other)),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> mlua::Result<Option<Vec<String>>> {
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

    /// A duration: seconds as a number, or a string like "250ms", "1s", "2m".
    pub fn duration(&self, key: &str) -> mlua::Result<Option<std::time::Duration>> {
        let v = self.raw(key)?;
        match &v {
            Value::Nil => Ok(None),
            Value::Integer(i) if *i >= 0 => Ok(Some(std::time::Duration::from_secs(*i as u64))),
            Value::Number(f) if *f >= 0.0 && f.is_finite() => {
                Ok(Some(std::time::Duration::from_secs_f64(*f)))
            }
            Value::String(s) => crate::cli::parse_duration(&s.to_str()?)
                .map(Some)
                .map_err(|e| mlua::Error::runtime(format!("{}: option '{key}': {e}", self.func))),
            _ => Err(self.error(key, "a duration (seconds, or a string like \"1s\")", &v)),
        }
    }
}

/// A short printable form of a value, for error messages.
pub fn display(v: &Value) -> String {
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
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => "nil".into(),
        other => other.type_name().to_string(),
    }
}
