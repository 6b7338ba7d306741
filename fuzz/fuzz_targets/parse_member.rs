//! Arbitrary bytes as a member config, read as JSON and as YAML.
//!
//! Invariants:
//! - `Member::build` never panics, whatever the bytes;
//! - every `parse_error` carries a line (and a column), so a person can find it;
//! - every finding names its member;
//! - a member's snapshot is valid JSON in both forms, the Kong form without
//!   decK-only keys, and a valid member's snapshot read
//!   back as a member config is valid and has the same hash (a snapshot is a
//!   fixed point: what instances receive can be fed back in unchanged);
//! - a valid member frozen for the store and thawed is the same member.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgmerge::compose::Body;
use rgmerge::config::Format;
use rgmerge::intern::Interner;
use rgmerge::member::{Member, MemberInfo};
use rgmerge::report::ErrorKind;

fn info(is_default: bool) -> MemberInfo {
    MemberInfo::new("fuzz", "fuzz", is_default)
}

fuzz_target!(|data: &[u8]| {
    let interner = Interner::new();
    for (format, is_default) in [(Format::Json, true), (Format::Yaml, false)] {
        let m = Member::build(info(is_default), data, format, &interner);
        for e in &m.errors {
            assert_eq!(e.member, "fuzz", "{e:?}");
            if e.kind == ErrorKind::ParseError {
                assert!(
                    e.line.is_some() && e.column.is_some(),
                    "{format:?} parse_error without a line/column: {e:?}"
                );
                assert!(!e.message.is_empty(), "{e:?}");
            }
        }
        let body = Body::assemble(std::iter::once(&m));
        let bytes = body.to_vec();
        assert_eq!(bytes.len(), body.len());
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{format:?} snapshot is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(doc["_format_version"], "3.0");
        // Kong's declarative form (what data planes load): JSON, and nothing
        // only decK reads.
        let kong = Body::assemble_kong(std::iter::once(&m)).to_vec();
        let kong_doc: serde_json::Value = serde_json::from_slice(&kong).unwrap_or_else(|e| {
            panic!(
                "{format:?} Kong-form snapshot is not JSON ({e}): {}",
                String::from_utf8_lossy(&kong)
            )
        });
        for key in ["_plugin_configs", "custom_entities"] {
            assert!(
                kong_doc.get(key).is_none(),
                "{format:?} Kong form has `{key}`"
            );
        }
        for c in kong_doc["consumers"].as_array().into_iter().flatten() {
            assert!(
                c.get("groups").is_none(),
                "{format:?} Kong form has consumer groups"
            );
        }
        if m.is_valid() {
            let row = m.freeze(&interner, "fuzz", "blob").expect("a valid member freezes");
            let thawed = Member::thaw(m.info.clone(), row, &interner, "fuzz", "blob")
                .unwrap_or_else(|e| panic!("{format:?} a frozen member does not thaw: {e:?}"));
            assert_eq!(
                format!("{thawed:?}"),
                format!("{m:?}"),
                "{format:?} thawed member differs"
            );
            let again = Member::build(info(true), &bytes, Format::Json, &interner);
            assert!(
                again.errors.is_empty(),
                "{format:?} snapshot of a valid member is invalid: {:?}\n{}",
                again.errors,
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(again.entities, m.entities, "entity count changed");
            let body2 = Body::assemble(std::iter::once(&again));
            assert_eq!(
                body2.hash(),
                body.hash(),
                "{format:?} snapshot is not a fixed point:\n{}\n{}",
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&body2.to_vec())
            );
        }
    }
});
