//! Route regexes as Kong 3.10's default router compiles them. Under
//! `router_flavor = traditional_compatible` (the default, and what Konnect's
//! data planes run) `kong/db/schema/entities/routes.lua` adds the entity
//! check `validate_route`: it turns the route into an ATC expression
//! (`kong/router/transform.lua`, `amending_expression` → `get_expression`)
//! and hands it to the ATC router (`resty.router.router`'s `validate` →
//! `Router::add_matcher`), whose parser (Kong/atc-router 1.7.1,
//! `src/parser.rs`, `parse_predicate`) compiles every `~` operand with the
//! Rust `regex` crate's `Regex::new` — default size and nesting limits, no
//! flags; Kong 3.10 pins regex 1.11 (`crate_locks/atc_router.Cargo.lock`),
//! rgmerge uses the same major version. So a regex PCRE2 takes but `regex`
//! refuses (look-around, backreferences, `\Q…\E`, `\K`, `\Z`, `\h`, branch
//! reset, recursion, verbs, …; possessive quantifiers parse, as stacked
//! repetitions) is refused with
//! `Router Expression failed validation: <the parser's error>`.
//!
//! How the operand is made (`transform.lua`): a `~` path becomes
//! `"^" .. p:sub(2):gsub("?<", "?P<")` (`path_val_transform`); a `~*` header
//! value becomes `value:sub(3):lower()` (ASCII lower case, `get_expression`).
//! `escape_str` quotes it so that the parser gets the text back unchanged.
//!
//! Verdicts are cached (bounded) in [`super::pcre`]'s [`Verdicts`].

use serde_json::{Map, Value};

use super::pcre::Verdicts;

/// The fields `validate_route`'s entity check reads (`field_sources`):
/// Kong skips the check when any of them failed its own validation.
pub const ENTITY_CHECK_FIELDS: &[&str] = &[
    "id",
    "protocols",
    "snis",
    "sources",
    "destinations",
    "methods",
    "hosts",
    "paths",
    "headers",
    "expression",
    "regex_priority",
    "priority",
];

/// The ATC operand of a `~` route path (`path_val_transform`).
pub fn path_regex(path: &str) -> Option<String> {
    let re = path.strip_prefix('~')?;
    Some(format!("^{}", re.replace("?<", "?P<")))
}

/// The ATC operand of a `~*` header value (`get_expression`): Lua's
/// `string.lower`, ASCII only.
pub fn header_regex(value: &str) -> Option<String> {
    value.strip_prefix("~*").map(str::to_ascii_lowercase)
}

/// Whether the ATC router compiles this operand; the error is the `regex`
/// crate's, on one line: `regex parse error: <what> in '<regex>'`.
pub fn compile(re: &str) -> Result<(), String> {
    static VERDICTS: Verdicts = Verdicts::new();
    VERDICTS.get_or(re, || {
        regex::Regex::new(re).map(drop).map_err(|e| words(re, &e))
    })
}

/// The crate's message without the multi-line drawing of the pattern
/// (`regex parse error:\n    <pattern>\n    ^^^\nerror: <what>`), which a
/// finding cannot show; the pattern is quoted instead.
fn words(re: &str, e: &regex::Error) -> String {
    let shown = e.to_string();
    let what: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .map(|l| l.trim_start_matches("error: ").trim())
        .filter(|l| !l.is_empty())
        .collect();
    if what.is_empty() {
        // Not a syntax error (the compiled size limit): one line already.
        return format!("{} in '{re}'", shown.trim());
    }
    format!("regex parse error: {} in '{re}'", what.join("; "))
}

/// The first of a route's path and header regexes the ATC router refuses,
/// in the order `get_expression` writes them (paths, then headers), as
/// `(field, why)`: Kong's `validate_route` stops at the first. Only for
/// HTTP-family routes without an `expression` (stream routes have no paths
/// or headers in theirs); the caller skips routes whose matching fields
/// already failed, since Kong runs no entity check on invalid fields.
pub fn check_route(obj: &Map<String, Value>) -> Option<(String, String)> {
    if obj.get("expression").is_some_and(|v| !v.is_null()) {
        return None;
    }
    if let Some(Value::Array(protocols)) = obj.get("protocols")
        && protocols
            .iter()
            .any(|p| matches!(p.as_str(), Some("tcp" | "tls" | "udp" | "tls_passthrough")))
    {
        return None;
    }
    if let Some(Value::Array(paths)) = obj.get("paths") {
        for (i, p) in paths.iter().enumerate() {
            let Some(re) = p.as_str().and_then(path_regex) else {
                continue;
            };
            if let Err(e) = compile(&re) {
                return Some((format!("paths[{i}]"), failed(&e)));
            }
        }
    }
    if let Some(Value::Object(headers)) = obj.get("headers") {
        for (name, values) in headers {
            let values: Vec<&str> = match values {
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                Value::String(s) => vec![s.as_str()],
                _ => continue,
            };
            for re in values.into_iter().filter_map(header_regex) {
                if let Err(e) = compile(&re) {
                    return Some((format!("headers.{name}"), failed(&e)));
                }
            }
        }
    }
    None
}

/// `validate_route`'s words around the router's error, and why Kong
/// refuses what PCRE2 took.
fn failed(e: &str) -> String {
    format!(
        "Router Expression failed validation: {e} (Kong's default router_flavor \
         `traditional_compatible` compiles route regexes with Rust's `regex` crate)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atc_path(p: &str) -> Result<(), String> {
        compile(&path_regex(p).expect("a ~ path"))
    }

    /// Regexes PCRE2 takes (see `pcre.rs`'s tests) and the ATC router refuses.
    #[test]
    fn pcre2_takes_atc_refuses() {
        for bad in [
            r"~/foo\Kbar",
            r"~/(?|(a)|(b))",
            r"~/\Q.*+?\E",
            r"~/a(?C1)b",
            r"~/(?<n>a)\k{n}",
            r"~/(a)\1",
            r"~/(?(?=a)ab|cd)",
            r"~/(a(?R)?b)",
            r"~/(?<y>\d{4})(?&y)?",
            r"~/a(*SKIP)(*FAIL)|b",
            r"~/(?=a)b",
            r"~/(?<=ab)c",
            r"~/(?<!ab)c",
            r"~/a{,3}",
            r"~/\h\R\X",
            r"~/\Z",
            r"~/(?J)a",
        ] {
            assert!(atc_path(bad).is_err(), "{bad}");
        }
        for ok in [
            // Possessive quantifiers parse as stacked repetitions: taken,
            // with another meaning (`(?:a+)+`).
            r"~/a++b",
            r"~/x*+y?+z{1,2}+",
            r"~/api/v\d+/users/(?<id>[^/]+)$",
            r"~/orders/(?P<id>\d+)",
            r"~/\p{Greek}+",
            r"~/(?x) a b # comment",
            r"~/[[:alpha:]]+",
            r"~/é+",
            r"~/files/[^/]+\.json$",
        ] {
            assert_eq!(atc_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn operands_are_transform_lua_s() {
        assert_eq!(path_regex("~/(?<id>x)").as_deref(), Some("^/(?P<id>x)"));
        // Lookbehind is rewritten too, and then refused as a group name.
        assert_eq!(path_regex("~/(?<=a)b").as_deref(), Some("^/(?P<=a)b"));
        assert_eq!(path_regex("/plain"), None);
        assert_eq!(header_regex("~*V\\D+").as_deref(), Some("v\\d+"));
        assert_eq!(header_regex("V1"), None);
        // Lower case turns `\Q` into `\q`, an unknown escape, and `\D` into `\d`.
        assert!(compile(&header_regex(r"~*\Qa\E").unwrap_or_default()).is_err());
        assert_eq!(compile(&header_regex(r"~*\D+").unwrap_or_default()), Ok(()));
    }

    #[test]
    fn errors_are_one_line_and_quote_the_regex() {
        let e = atc_path("~/a(?=b)").expect_err("look-around");
        assert_eq!(
            e,
            "regex parse error: look-around, including look-ahead and look-behind, \
             is not supported in '^/a(?=b)'"
        );
        assert!(!e.contains('\n'));
        let big = compile(r"\w{1000}\w{1000}\w{1000}").expect_err("too big");
        assert!(big.contains("size limit"), "{big}");
        assert!(big.ends_with(r"in '\w{1000}\w{1000}\w{1000}'"), "{big}");
        // Cached verdicts are the same verdicts.
        assert_eq!(atc_path("~/a(?=b)"), atc_path("~/a(?=b)"));
    }

    #[test]
    fn first_refused_regex_of_a_route() {
        let route = |v: Value| v.as_object().cloned().unwrap_or_default();
        let r = route(serde_json::json!({
            "paths": ["/plain", "~/ok\\d+", "~/a\\K", "~/(?=x)"],
            "headers": {"x-a": ["~*(?=y)"]}
        }));
        let (field, why) = check_route(&r).expect("refused");
        assert_eq!(field, "paths[2]");
        assert!(why.starts_with("Router Expression failed validation: regex parse error: "));
        assert!(why.contains("in '^/a\\K'"), "{why}");
        let h = route(serde_json::json!({"headers": {"x-a": ["exact", "~*a(?!b)"]}}));
        assert_eq!(
            check_route(&h).map(|(f, _)| f).as_deref(),
            Some("headers.x-a")
        );
        let ok = route(
            serde_json::json!({"paths": ["~/v\\d+/(?<id>\\w+)$"], "headers": {"x": "~*^v\\d$"}}),
        );
        assert_eq!(check_route(&ok), None);
        let stream = route(serde_json::json!({"protocols": ["tcp"], "paths": ["~/(?=a)"]}));
        assert_eq!(check_route(&stream), None);
        let expr =
            route(serde_json::json!({"expression": "http.path == \"/\"", "paths": ["~/(?=a)"]}));
        assert_eq!(check_route(&expr), None);
    }
}
