//! Arbitrary bytes read as YAML by `config::parse` (the fast reader for
//! decK's subset, falling back to serde-saphyr) and by the full parser alone
//! (`parse_yaml_reference`, the reader before the fast path existed).
//!
//! Invariant: both give the same value, or both fail with the same error
//! (message, line and column compared exactly: the fast reader never words an
//! error itself, it hands anything it does not accept to the full parser).
//! Neither panics. And where the entry-at-a-time read (`yaml_fast::outline`,
//! what `config::read_member` streams YAML with) accepts the input, it gives
//! the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgmerge::config::Format;
use rgmerge::config::parse::yaml_fast::parse_by_entries;
use rgmerge::config::parse::{parse_yaml_fast_only, parse_yaml_reference};

fuzz_target!(|data: &[u8]| {
    let fast = rgmerge::config::parse(data, Format::Yaml);
    let reference = parse_yaml_reference(data);
    assert_eq!(
        fast,
        reference,
        "fast path and full parser disagree on {:?}",
        String::from_utf8_lossy(data)
    );
    // Where the fast reader alone accepts the input, the full parser must too.
    if let Some(v) = parse_yaml_fast_only(data) {
        assert_eq!(
            Ok(&v),
            reference.as_ref(),
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }
    // The entry-at-a-time read sees the document the full parser sees.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(v) = parse_by_entries(text.strip_prefix('\u{feff}').unwrap_or(text))
    {
        assert_eq!(
            Ok(&v),
            reference.as_ref(),
            "entries: {:?}",
            String::from_utf8_lossy(data)
        );
    }
});
