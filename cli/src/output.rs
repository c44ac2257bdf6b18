//! Showing keys and values to people and to programs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

/// Bytes as text a person can read and copy back: valid UTF-8 as is, with control characters,
/// backslashes and invalid bytes escaped (`\n`, `\\`, `\xff`).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Adds `bytes` to a JSON object as `name` when it is UTF-8, else as `name_b64`: the format
/// `import` reads.
pub fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(name.to_owned(), Value::String(text.to_owned())),
        Err(_) => object.insert(format!("{name}_b64"), Value::String(BASE64.encode(bytes))),
    };
}

/// Reads `name` or `name_b64` back from a JSON object.
pub fn get_bytes(object: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, String> {
    match (object.get(name), object.get(&format!("{name}_b64"))) {
        (Some(_), Some(_)) => Err(format!("has both \"{name}\" and \"{name}_b64\"")),
        (Some(Value::String(text)), None) => Ok(Some(text.as_bytes().to_vec())),
        (Some(_), None) => Err(format!("\"{name}\" is not a string")),
        (None, Some(Value::String(encoded))) => BASE64
            .decode(encoded)
            .map(Some)
            .map_err(|e| format!("\"{name}_b64\" is not base64: {e}")),
        (None, Some(_)) => Err(format!("\"{name}_b64\" is not a string")),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_what_is_unreadable() {
        assert_eq!(escape(b"notes/2026"), "notes/2026");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape(b"a\nb\\c\xff\x00"), "a\\nb\\\\c\\xff\\u{0}");
    }

    #[test]
    fn json_bytes_round_trip_as_text_or_base64() {
        for bytes in [&b"plain"[..], &b"\xff\xfe binary"[..], b""] {
            let mut object = Map::new();
            put_bytes(&mut object, "key", bytes);
            assert_eq!(get_bytes(&object, "key"), Ok(Some(bytes.to_vec())));
        }
        let both: Map<String, Value> =
            serde_json::from_str(r#"{"key":"a","key_b64":"YQ=="}"#).expect("json");
        assert!(get_bytes(&both, "key").is_err());
        let number: Map<String, Value> = serde_json::from_str(r#"{"key":1}"#).expect("json");
        assert!(get_bytes(&number, "key").is_err());
    }
}
