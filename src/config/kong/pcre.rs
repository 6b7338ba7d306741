//! Regexes as Kong compiles them: PCRE2 through OpenResty's `ngx.re`, with
//! the options Kong passes — none that change what compiles (route paths
//! `"aj"`: anchored, JIT; `is_regex` fields none; the traditional router's
//! header patterns `"jo"`), and never `u`, so a pattern is bytes, not UTF-8
//! (`\x{100}` is refused, as Kong refuses it). The same library, so a
//! pattern is taken or refused exactly as Kong's: `(?|…)`, `\Q…\E`,
//! callouts, recursion and verbs compile; `x{2,1}`, `(?<=a+)` do not.
//!
//! Two caches, both bounded: compiled regexes of the data files (matched
//! against config strings), and verdicts on config regexes (only compiled:
//! Kong dry-runs them), since the same routes are built again and again.

use parking_lot::Mutex;
use pcre2::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Entries each cache holds at most; later patterns are compiled each time.
const CACHE_MAX: usize = 4096;

/// Patterns longer than this are not cached (they are rare and large).
const CACHED_LEN_MAX: usize = 512;

/// A data file's regex (`match`, `match_none`), compiled once (with JIT:
/// these are matched) and shared.
pub fn data(pattern: &str) -> Result<Arc<Regex>, String> {
    type Cache = Mutex<HashMap<String, Result<Arc<Regex>, String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().get(pattern) {
        return r.clone();
    }
    let r = RegexBuilder::new()
        .jit_if_available(true)
        .build(pattern)
        .map(Arc::new)
        .map_err(|e| ngx_words(pattern, &e));
    let mut map = cache.lock();
    if map.len() < CACHE_MAX {
        map.insert(pattern.to_string(), r.clone());
    }
    r
}

/// Whether a config's regex compiles as Kong's `ngx.re` compiles it. The
/// error is `ngx.re`'s own: `pcre2_compile() failed: <PCRE2's message> in
/// "<pattern>" at "<the rest from where PCRE2 stopped>"`.
pub fn check(pattern: &str) -> Result<(), String> {
    static VERDICTS: Verdicts = Verdicts::new();
    VERDICTS.get_or(pattern, || {
        // No JIT: a dry run only compiles, and Kong's `j` never refuses a
        // pattern (ngx.re falls back to the interpreter when JIT fails).
        RegexBuilder::new()
            .build(pattern)
            .map(drop)
            .map_err(|e| ngx_words(pattern, &e))
    })
}

/// Verdicts on config regexes (compiled or refused, and why), bounded:
/// the same routes and fields come back with every write of a group. A
/// pattern past [`CACHED_LEN_MAX`], or one arriving when [`CACHE_MAX`] are
/// held, is judged each time. Shared with the ATC router's check.
pub(super) struct Verdicts(OnceLock<Mutex<HashMap<Box<str>, Verdict>>>);

/// Compiled, or refused with Kong's words.
type Verdict = Result<(), String>;

impl Verdicts {
    pub(super) const fn new() -> Verdicts {
        Verdicts(OnceLock::new())
    }

    /// The verdict on `pattern`, from `judge` the first time.
    pub(super) fn get_or(&self, pattern: &str, judge: impl FnOnce() -> Verdict) -> Verdict {
        let cacheable = pattern.len() <= CACHED_LEN_MAX;
        let cache = self.0.get_or_init(Default::default);
        if cacheable && let Some(r) = cache.lock().get(pattern) {
            return r.clone();
        }
        let r = judge();
        if cacheable {
            let mut map = cache.lock();
            if map.len() < CACHE_MAX {
                map.insert(pattern.into(), r.clone());
            }
        }
        r
    }
}

/// `ngx.re`'s message for a pattern PCRE2 refused (nginx's
/// `ngx_regex_compile` words), from the crate's
/// `PCRE2: error compiling pattern at offset N: <message>`.
fn ngx_words(pattern: &str, e: &pcre2::Error) -> String {
    let shown = e.to_string();
    let msg = shown
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_once(": "))
        .map_or(shown.as_str(), |(_, m)| m);
    let bytes = pattern.as_bytes();
    match e.offset() {
        Some(at) if at < bytes.len() => format!(
            "pcre2_compile() failed: {msg} in \"{pattern}\" at \"{}\"",
            String::from_utf8_lossy(&bytes[at..])
        ),
        _ => format!("pcre2_compile() failed: {msg} in \"{pattern}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kong's verdicts, PCRE2's. fancy-regex 0.20, which rgmerge used
    /// before, refused the ones marked `*` and took those marked `+`.
    #[test]
    fn pcre2_verdicts_where_other_engines_differ() {
        for ok in [
            r"/a++b",               // possessive quantifier
            r"/x*+y?+z{1,2}+",      // possessive forms
            r"/foo\Kbar",           // reset match start
            r"/(?|(a)|(b))\1",      // * branch reset
            r"/\Q.*+?\E",           // * quoted literal
            r"/a(?C1)b",            // * callout
            r#"/a(?C"x")b"#,        // * string callout
            r"/\p{Greek}+",         // unicode script property
            r"/\p{Lu}\P{Ll}",       // general category
            r"/(?<n>a)\k{n}\g{-1}", // * backreference forms
            r"/(?(?=a)ab|cd)",      // * conditional on a lookahead
            r"/(a(?R)?b)",          // * recursion
            r"/(?<y>\d{4})(?&y)?",  // * subroutine call by name
            r"(*UCP)\w",            // * start-of-pattern verb
            r"/a(*SKIP)(*FAIL)|b",  // * backtracking verbs
            r"/(?x) a b # comment", // extended mode
            r"/[[:alpha:]]+",       // POSIX class
            r"/(?<=ab|xyz)c",       // lookbehind of different fixed lengths
            r"/é+",                 // non-ASCII bytes, no UTF
            r"/a{,3}",              // {0,3} since PCRE2 10.43
            r"/api/v\d+/users/(?<id>[^/]+)$",
            r"/orders/(?P<id>\d+)",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            r"/(*UCP)\w",       // that verb, not at the start
            r"/x{2,1}",         // + numbers out of order
            r"/\x{100}",        // + too large without UTF
            r"/(?<=a+)b",       // + unbounded lookbehind
            r"/\p{Nope}",       // unknown property
            r"/[z-a]",          // range out of order
            r"/(?P<1a>x)",      // + group name starting with a digit
            r"/(?<n>a)(?<n>b)", // + duplicate name without (?J)
            r"/(unclosed",
            r"/[a-",
            r"*star",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_ngx_re_words() {
        assert_eq!(
            check("/(abc"),
            Err("pcre2_compile() failed: missing closing parenthesis in \"/(abc\"".into())
        );
        assert_eq!(
            check("/x{2,1}/y"),
            Err(
                "pcre2_compile() failed: numbers out of order in {} quantifier \
                 in \"/x{2,1}/y\" at \"}/y\""
                    .into()
            )
        );
        // Cached verdicts are the same verdicts.
        assert_eq!(check("/(abc"), check("/(abc"));
    }

    #[test]
    fn data_regexes_match_as_compiled() {
        let r = data(r"^[a-z]++$").expect("compiles");
        assert!(r.is_match(b"abc").unwrap_or(false));
        assert!(!r.is_match(b"ab1").unwrap_or(true));
        assert!(data("(").is_err());
    }
}
