//! The cluster endpoint's parsing of what a data plane sends: `basic_info`
//! (any bytes, as a binary or text frame), and Kong's config hash over any
//! JSON it could be sent, never panic. A parsed `basic_info` keeps its
//! limits: plugin names are 1 to 256 bytes, versions at most 64 characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgmerge::cluster::{hash, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = wire::BasicInfo::parse(data) {
        for (name, version) in &info.plugins {
            assert!(!name.is_empty() && name.len() <= 256);
            assert!(version.chars().count() <= 64);
        }
        let _ = info.max_payload();
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let (config, hashes) = hash::config_hash(&v);
        assert_eq!(config.len(), 32);
        assert_eq!(hashes.config, config);
    }
});
