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
///
/// Runs over the whole body before serde, so it jumps from one byte that can matter to the
/// next eight bytes at a time (`find`): outside strings a quote or bracket, inside them a quote
/// or backslash; an escape skips the byte after its backslash.
pub fn too_deep(body: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut index = 0;
    loop {
        index = find(body, index, structural)?;
        match body.get(index) {
            Some(b'"') => index = string_end(body, index + 1)?,
            Some(b'[' | b'{') => {
                depth += 1;
                if depth > JSON_DEPTH_MAX {
                    return Some(index);
                }
            }
            Some(b']' | b'}') => depth = depth.saturating_sub(1),
            // One of the few other bytes `structural` lets through (see there).
            _ => {}
        }
        index += 1;
    }
}

/// The offset of the quote closing a string whose contents start at `index`, if any.
fn string_end(body: &[u8], mut index: usize) -> Option<usize> {
    loop {
        index = find(body, index, |word| equal(word, b'"') | equal(word, b'\\'))?;
        if body.get(index) == Some(&b'"') {
            return Some(index);
        }
        index += 2;
    }
}

/// The offset, from `start` on, of the first byte `marks` marks, if any.
///
/// `marks` maps eight bytes (first byte in the low lane) to a word whose lowest set bit is the
/// high bit of the first lane holding a byte it looks for. The last word is padded with zero
/// bytes, which no `marks` here looks for.
fn find(body: &[u8], start: usize, marks: impl Fn(u64) -> u64) -> Option<usize> {
    let rest = body.get(start..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = start;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let found = marks(u64::from_le_bytes(word));
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    let mut word = [0; 8];
    let tail = chunks.remainder();
    word.get_mut(..tail.len())?.copy_from_slice(tail);
    let found = marks(u64::from_le_bytes(word));
    (found != 0).then(|| offset + found.trailing_zeros() as usize / 8)
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of each lane of `word` equal to `byte`, and perhaps of lanes above the first
/// such: `x - 1` borrows into the high bit of a lane where `x` is zero, or of one that got a
/// borrow from below, and `!x` keeps only lanes whose own high bit is clear. Lanes below the
/// first zero lane never borrow, so the lowest mark is exact, also of an OR of such words;
/// `find` uses only that one.
fn equal(word: u64, byte: u8) -> u64 {
    let x = word ^ u64::from_ne_bytes([byte; 8]);
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Marks quotes and brackets. `[ ] { }` (0x5b 0x5d 0x7b 0x7d) are the bytes whose bits
/// outside 0x26 read 0x59; that also marks `Y _ y` and DEL, which JSON allows only inside
/// strings, so they cost a wasted stop in malformed bodies, never a wrong answer.
fn structural(word: u64) -> u64 {
    equal(word & u64::from_ne_bytes([!0x26; 8]), 0x59) | equal(word, b'"')
}

/// The byte-at-a-time scan `too_deep` replaced, kept as the reference it must match.
#[cfg(test)]
pub(crate) fn too_deep_bytewise(body: &[u8]) -> Option<usize> {
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

    /// At and just over the limit, with the deepest bracket at every offset within a word and
    /// strings (escapes, brackets, multi-byte UTF-8) before it; `fuzz` compares at random.
    #[test]
    fn depth_at_the_limit_matches_the_bytewise_scan() {
        let prefixes = [
            "",
            " ",
            "\"\"",
            "\"a\\\"[\"",
            "\"\\\\\"",
            "\"é{\"",
            "Y_y\u{7f}",
            "\"\\",
        ];
        for prefix in prefixes {
            for pad in 0..9 {
                for depth in [JSON_DEPTH_MAX - 1, JSON_DEPTH_MAX, JSON_DEPTH_MAX + 1] {
                    let mut body = format!("{prefix}{}", " ".repeat(pad));
                    let mut expected = None;
                    for level in 1..=depth {
                        if level > JSON_DEPTH_MAX {
                            expected = Some(body.len());
                        }
                        body.push_str(if level % 2 == 1 { "{\"k\":" } else { "[" });
                    }
                    for level in (1..=depth).rev() {
                        body.push(if level % 2 == 1 { '}' } else { ']' });
                    }
                    // An unterminated string in the prefix hides every bracket after it.
                    if prefix == "\"\\" {
                        expected = None;
                    }
                    let what = format!("{depth} deep after {prefix:?} and {pad} spaces");
                    assert_eq!(too_deep(body.as_bytes()), expected, "{what}");
                    assert_eq!(too_deep_bytewise(body.as_bytes()), expected, "{what}");
                }
            }
        }
    }

    #[test]
    fn depth_scan_table() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"", None),
            (b"\"", None),
            (b"\"\\", None),
            (b"\"\\\"[", None),
            (b"\"\\\\\"[", None),
            (b"]]]][", None),
            (b"\"abcdefgh\\\"ijklmnop\"", None),
            (b"Y_y\x7f[", None),
        ];
        for &(body, expected) in cases {
            assert_eq!(
                too_deep(body),
                expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(too_deep_bytewise(body), expected);
        }
    }
}
