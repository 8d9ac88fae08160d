//! What the store can keep and read back, stated once for every way in. The hub
//! checks what it is given against these rules at its door (JSON, CBOR, REST, MQTT
//! alike), so nothing is acknowledged that a later read, or the next start, would
//! choke on:
//!
//! - JSON values nest at most [`MAX_JSON_DEPTH`] levels. serde_json reads stored
//!   text back with a recursion limit of 128; a `/hub` message over CBOR could
//!   carry 256, and a command stored that deep once kept the server from starting.
//! - Text stored in a column of its own (device ids, keys, command names, errors)
//!   holds no NUL: PostgreSQL's TEXT refuses it, where SQLite would keep it. Inside
//!   a JSON value a NUL is written as the escape `\u0000`, which both keep.

use serde_json::Value;

/// How deep a stored JSON value may nest (an object or array inside another
/// counts one level; a scalar at the top is level 0). Well under serde_json's
/// read limit (128), so a stored value always reads back, with room to spare for
/// the message around it on the wire.
pub const MAX_JSON_DEPTH: usize = 64;

/// Why a value cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unstorable {
    #[error("{field} nests deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep { field: &'static str },
    #[error("{field} holds a NUL character (U+0000), which the store cannot keep")]
    Nul { field: &'static str },
}

impl Unstorable {
    /// What kind of failure this is: the caller sent a value the store cannot keep.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Unstorable::TooDeep { .. } | Unstorable::Nul { .. } => crate::error::ErrorKind::InvalidInput,
        }
    }
}

/// Checks a JSON value the store will keep in a JSON column.
pub fn check_json(field: &'static str, value: &Value) -> Result<(), Unstorable> {
    // Iterative, with the depth beside each value: the limit is checked before
    // descending, so a hostile value never costs recursion.
    let mut todo = vec![(value, 0usize)];
    while let Some((v, depth)) = todo.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth >= MAX_JSON_DEPTH {
            return Err(Unstorable::TooDeep { field });
        }
        todo.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// About the memory a JSON value holds, in bytes (its nodes and their text).
pub fn json_weight(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    NODE + match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(json_weight).sum(),
        Value::Object(fields) => fields.iter().map(|(k, v)| k.len() + NODE + json_weight(v)).sum(),
        _ => 0,
    }
}

/// Checks text the store will keep in a text column of its own.
pub fn check_text(field: &'static str, text: &str) -> Result<(), Unstorable> {
    match text.contains('\0') {
        true => Err(Unstorable::Nul { field }),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn depth_is_counted_in_containers() {
        assert_eq!(check_json("v", &json!(1)), Ok(()));
        assert_eq!(check_json("v", &nested(MAX_JSON_DEPTH)), Ok(()));
        assert_eq!(
            check_json("params", &nested(MAX_JSON_DEPTH + 1)),
            Err(Unstorable::TooDeep { field: "params" })
        );
        // An empty container at the limit still counts as a level.
        let empty_deepest = (0..MAX_JSON_DEPTH).fold(json!({}), |inner, _| json!({"a": inner}));
        assert!(check_json("v", &empty_deepest).is_err());
    }

    #[test]
    fn what_passes_reads_back() {
        let v = nested(MAX_JSON_DEPTH);
        let back: Value = serde_json::from_str(&v.to_string()).expect("reads back");
        assert_eq!(back, v);
    }

    #[test]
    fn nul_is_refused_in_text_columns_only() {
        assert_eq!(check_text("key", "temp"), Ok(()));
        assert_eq!(check_text("key", "a\0b"), Err(Unstorable::Nul { field: "key" }));
        // In JSON it is an escape, which every store keeps.
        assert_eq!(check_json("value", &json!("a\0b")), Ok(()));
        assert!(json!("a\0b").to_string().contains("\\u0000"));
    }
}
