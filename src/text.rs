//! Text that lives in a connection buffer when it can: a span of the request bytes, or owned
//! text when the request does not hold it verbatim (a decoded JSON escape, a default).
//!
//! Rows (`store::Pending`) and answers (`answer::Answer`) travel apart from the buffer they
//! point into, so they keep spans instead of borrows and resolve them against the buffer later.

use std::ops::Range;

/// A string as a span of its buffer, or owned when the buffer does not hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Span(Range<usize>),
    Owned(Box<str>),
}

/// Where `value` sits in `buffer`, or an owned copy when it is not inside it.
pub fn locate(value: &str, buffer: &[u8]) -> Text {
    let start = (value.as_ptr() as usize).wrapping_sub(buffer.as_ptr() as usize);
    let end = start.wrapping_add(value.len());
    if start <= buffer.len() && end <= buffer.len() && start <= end {
        Text::Span(start..end)
    } else {
        Text::Owned(value.into())
    }
}

/// The text `locate` recorded. A span that does not resolve means the buffer changed after
/// `locate`, a programmer error that would commit a wrong row or answer: it panics.
pub fn resolve<'a>(text: &'a Text, buffer: &'a [u8]) -> &'a str {
    match text {
        // The span was taken from a `&str` into this very buffer, so it is valid UTF-8.
        Text::Span(span) => {
            let text = buffer
                .get(span.clone())
                .and_then(|bytes| std::str::from_utf8(bytes).ok());
            assert!(text.is_some(), "span {span:?} is not text of its buffer");
            text.unwrap_or_default()
        }
        Text::Owned(text) => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_inside_the_buffer_owned_outside() {
        let buffer = b"evt_1 pi_2".to_vec();
        let inside = std::str::from_utf8(&buffer[6..]).unwrap();
        let located = locate(inside, &buffer);
        assert_eq!(located, Text::Span(6..10));
        assert_eq!(resolve(&located, &buffer), "pi_2");
        let outside = locate("{}", &buffer);
        assert_eq!(outside, Text::Owned("{}".into()));
        assert_eq!(resolve(&outside, &buffer), "{}");
        let empty = locate(&inside[4..], &buffer);
        assert_eq!(resolve(&empty, &buffer), "");
    }
}
