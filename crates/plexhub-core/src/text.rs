//! Splitting text at an ASCII delimiter, for the gateway's hot path.
//!
//! `str::split_once(char)` and `str::find(char)` go through the general pattern searcher, which
//! costs the proxy route about 140 instructions per call on its short paths and tokens
//! (`bench/callgrind.sh`); a byte scan costs a few per byte. Splitting at an ASCII byte always
//! lands on a character boundary: every byte of a multi-byte UTF-8 character is 0x80 or above.

/// The position of the first `delimiter` in `text`. `delimiter` must be ASCII.
pub fn find_ascii(text: &str, delimiter: u8) -> Option<usize> {
    debug_assert!(
        delimiter.is_ascii(),
        "only an ASCII byte is a character boundary"
    );
    text.bytes().position(|byte| byte == delimiter)
}

/// `text` before and after the first `delimiter`, which is in neither part; `None` when there is
/// none. `delimiter` must be ASCII.
pub fn split_once_ascii(text: &str, delimiter: u8) -> Option<(&str, &str)> {
    let at = find_ascii(text, delimiter)?;
    Some((&text[..at], &text[at + 1..]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The byte split agrees with `str::split_once` on any text, multi-byte characters
        /// included, for every ASCII delimiter the gateway splits at.
        #[test]
        fn agrees_with_the_standard_split(
            text in "(\\PC|[/?. ]){0,40}",
            delimiter in prop::sample::select(vec![b'/', b'?', b'.', b' ']),
        ) {
            prop_assert_eq!(
                split_once_ascii(&text, delimiter),
                text.split_once(char::from(delimiter))
            );
            prop_assert_eq!(find_ascii(&text, delimiter), text.find(char::from(delimiter)));
        }
    }

    #[test]
    fn splits_at_the_first_delimiter_only() {
        assert_eq!(split_once_ascii("a?b?c", b'?'), Some(("a", "b?c")));
        assert_eq!(split_once_ascii("?", b'?'), Some(("", "")));
        assert_eq!(split_once_ascii("é/ü", b'/'), Some(("é", "ü")));
        assert_eq!(split_once_ascii("abc", b'?'), None);
        assert_eq!(find_ascii("crm.contacts/contacts", b'/'), Some(12));
    }
}
