//! Scans of JSON text that serde_json accepts but PostgreSQL's `jsonb` (or serde_json's own
//! depth limit, which `RawValue` skips) would not: nesting deeper than `JSON_DEPTH_MAX`, a
//! `\u0000` escape, unpaired surrogate escapes, and exponents beyond `METADATA_EXPONENT_MAX`.
//!
//! Pure byte scans that never panic on malformed input; `payload` maps their findings to its
//! rules.

use crate::limits::{JSON_DEPTH_MAX, METADATA_EXPONENT_MAX};

/// What `scan_metadata` found first, in text order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// More top-level keys than allowed.
    TooManyKeys,
    /// A top-level key longer than allowed, in bytes as sent.
    KeyTooLong,
    /// A `\u0000` escape, which `jsonb` cannot hold.
    NulEscape,
    /// A surrogate escape without its partner.
    LoneSurrogate,
    /// A number whose written exponent is over `METADATA_EXPONENT_MAX`.
    ExponentTooLarge,
}

/// The offset of the first `[` or `{` nested deeper than `JSON_DEPTH_MAX` (the top-level
/// object is depth 1), outside strings.
///
/// The bytes need not be valid JSON: serde_json judges that afterwards. Quotes, backslashes and
/// brackets are ASCII, which never occurs inside a multi-byte UTF-8 character.
pub fn too_deep(body: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in body.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > JSON_DEPTH_MAX {
                    return Some(offset);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// One pass over metadata text that serde_json has accepted: counts and measures top-level
/// keys, and finds what `jsonb` rejects (`\u0000`, unpaired surrogates, huge exponents).
///
/// Reports the first problem in text order. Malformed input cannot occur here, but would only
/// end the scan early, never panic.
pub fn scan_metadata(text: &[u8], keys_max: usize, key_len_max: usize) -> Result<(), Problem> {
    let mut depth = 0usize;
    let mut keys = 0usize;
    let mut expect_key = false;
    let mut index = 0;
    while let Some(&byte) = text.get(index) {
        index += 1;
        match byte {
            b'{' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            b'"' => {
                let length = scan_string(text, &mut index)?;
                if depth == 1 && expect_key {
                    expect_key = false;
                    keys += 1;
                    top_level_key(keys, length, keys_max, key_len_max)?;
                }
            }
            b'-' | b'0'..=b'9' => scan_number(text, &mut index)?,
            // Whitespace, `:`, `,` below the top level and the letters of true/false/null.
            _ => {}
        }
    }
    Ok(())
}

fn top_level_key(
    count: usize,
    length: usize,
    keys_max: usize,
    key_len_max: usize,
) -> Result<(), Problem> {
    if count > keys_max {
        return Err(Problem::TooManyKeys);
    }
    if length > key_len_max {
        return Err(Problem::KeyTooLong);
    }
    Ok(())
}

/// Skips a string whose opening quote is before `index`; returns its raw length in bytes.
fn scan_string(text: &[u8], index: &mut usize) -> Result<usize, Problem> {
    let start = *index;
    while let Some(&byte) = text.get(*index) {
        *index += 1;
        match byte {
            b'"' => return Ok(*index - 1 - start),
            b'\\' => scan_escape(text, index)?,
            _ => {}
        }
    }
    Ok(*index - start)
}

/// Skips an escape whose backslash is before `index`, checking `\u` escapes as PostgreSQL does.
fn scan_escape(text: &[u8], index: &mut usize) -> Result<(), Problem> {
    let Some(&kind) = text.get(*index) else {
        return Ok(());
    };
    *index += 1;
    if kind != b'u' {
        return Ok(());
    }
    let unit = hex4(text, *index);
    *index += 4;
    match unit {
        Some(0) => Err(Problem::NulEscape),
        Some(0xD800..=0xDBFF) => {
            // A high surrogate counts only when a low one follows as the very next escape.
            let next = text.get(*index..*index + 2) == Some(b"\\u".as_slice());
            match hex4(text, *index + 2) {
                Some(0xDC00..=0xDFFF) if next => {
                    *index += 6;
                    Ok(())
                }
                _ => Err(Problem::LoneSurrogate),
            }
        }
        Some(0xDC00..=0xDFFF) => Err(Problem::LoneSurrogate),
        _ => Ok(()),
    }
}

/// The four hex digits at `index` as a UTF-16 code unit.
fn hex4(text: &[u8], index: usize) -> Option<u16> {
    let digits = text.get(index..index.checked_add(4)?)?;
    digits.iter().try_fold(0u16, |unit, &digit| {
        let value = char::from(digit).to_digit(16)?;
        Some(unit << 4 | value as u16)
    })
}

/// Skips a number whose first byte is before `index`, checking its written exponent.
///
/// PostgreSQL parses `jsonb` numbers as `numeric`; an exponent within ±`METADATA_EXPONENT_MAX`
/// keeps every number that fits in 8 KiB storable.
fn scan_number(text: &[u8], index: &mut usize) -> Result<(), Problem> {
    while let Some(b'0'..=b'9' | b'.') = text.get(*index) {
        *index += 1;
    }
    if !matches!(text.get(*index), Some(b'e' | b'E')) {
        return Ok(());
    }
    *index += 1;
    if let Some(b'+' | b'-') = text.get(*index) {
        *index += 1;
    }
    // Saturating, so a thousand-digit exponent is still just "too large".
    let mut exponent: i64 = 0;
    while let Some(&digit @ b'0'..=b'9') = text.get(*index) {
        *index += 1;
        exponent = exponent
            .saturating_mul(10)
            .saturating_add(i64::from(digit - b'0'));
    }
    if exponent > METADATA_EXPONENT_MAX {
        return Err(Problem::ExponentTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Result<(), Problem>) {
        assert_eq!(scan_metadata(text.as_bytes(), 2, 3), expected, "{text}");
    }

    #[test]
    fn metadata_scans() {
        check(r#"{"a":1,"abc":[1,{"x":2,"y":3,"z":4}]}"#, Ok(()));
        check(r#"{"a":1,"b":2,"c":3}"#, Err(Problem::TooManyKeys));
        check(r#"{"abcd":1}"#, Err(Problem::KeyTooLong));
        check(r#"{"a":"\u0000"}"#, Err(Problem::NulEscape));
        check(r#"{"a":"\u0001"}"#, Ok(()));
        check(r#"{"a":"\ud83d\ude00"}"#, Ok(()));
        check(r#"{"a":"\ud83d"}"#, Err(Problem::LoneSurrogate));
        check(r#"{"a":"\ude00"}"#, Err(Problem::LoneSurrogate));
        check(r#"{"a":"\ud83d\n\ude00"}"#, Err(Problem::LoneSurrogate));
        check(r#"{"a":1e1000}"#, Ok(()));
        check(r#"{"a":1E+1001}"#, Err(Problem::ExponentTooLarge));
        check(r#"{"a":1e-1001}"#, Err(Problem::ExponentTooLarge));
        check(r#"{"a":"\"#, Ok(()));
    }

    #[test]
    fn depth() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(nested(JSON_DEPTH_MAX).as_bytes()), None);
        assert_eq!(
            too_deep(nested(JSON_DEPTH_MAX + 1).as_bytes()),
            Some(JSON_DEPTH_MAX)
        );
        assert_eq!(
            too_deep(format!("\"{}\"", "[".repeat(200)).as_bytes()),
            None
        );
    }
}
