//! The frames and messages of Kong's v1 hybrid protocol (`/v1/outlet`), as
//! `kong/clustering/control_plane.lua` and `data_plane.lua` (Kong 3.10) speak
//! it: the data plane's `basic_info` (its first frame), and the control
//! plane's `reconfigure`, gzip'd JSON.

use std::io::Write;

use serde_json::{Map, Value};

/// The most bytes an incoming frame may have. A data plane sends only its
/// `basic_info` (plugins, labels and its whole `process_conf`: tens of KB)
/// and pings; anything larger is refused before it is buffered.
pub const MAX_INCOMING_FRAME: usize = 1024 * 1024;

/// Kong's `cluster_max_payload` default (`kong/templates/kong_defaults.lua`):
/// what a data plane accepts when its `process_conf` does not say.
pub const DEFAULT_MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// A data plane's first frame, kept whole on its node record.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicInfo {
    /// `(name, version)` of each plugin the data plane has.
    pub plugins: Vec<(String, String)>,
    pub labels: Map<String, Value>,
    /// Its configuration, sensitive values removed by Kong.
    pub process_conf: Value,
    /// Wasm filters; Kong sends `{}` when there are none.
    pub filters: Value,
}

/// Why an incoming frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("basic_info is not JSON: {0}")]
    NotJson(String),
    #[error("the first frame must be basic_info, got type {0:?}")]
    NotBasicInfo(String),
    #[error("basic_info field `{field}`: {why}")]
    Field { field: &'static str, why: String },
}

impl BasicInfo {
    /// Parses a `basic_info` frame (binary in Kong 3.10, text before).
    pub fn parse(bytes: &[u8]) -> Result<BasicInfo, WireError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| WireError::NotJson(e.to_string()))?;
        let Value::Object(mut m) = v else {
            return Err(WireError::NotJson("not an object".into()));
        };
        match m.get("type") {
            Some(Value::String(t)) if t == "basic_info" => {}
            Some(other) => return Err(WireError::NotBasicInfo(short(other))),
            None => return Err(WireError::NotBasicInfo("none".into())),
        }
        let plugins = match m.remove("plugins") {
            // cjson writes an empty Lua table as `{}`.
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(o)) if o.is_empty() => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, p)| plugin(i, p))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(WireError::Field {
                    field: "plugins",
                    why: format!("expected an array, got {}", short(&other)),
                });
            }
        };
        let labels = match m.remove("labels") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o,
            Some(Value::Array(a)) if a.is_empty() => Map::new(),
            Some(other) => {
                return Err(WireError::Field {
                    field: "labels",
                    why: format!("expected an object, got {}", short(&other)),
                });
            }
        };
        Ok(BasicInfo {
            plugins,
            labels,
            process_conf: m.remove("process_conf").unwrap_or(Value::Null),
            filters: m.remove("filters").unwrap_or(Value::Null),
        })
    }

    /// The data plane's `cluster_max_payload`, from its `process_conf`.
    pub fn max_payload(&self) -> usize {
        self.process_conf
            .get("cluster_max_payload")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_PAYLOAD)
    }
}

fn plugin(i: usize, p: Value) -> Result<(String, String), WireError> {
    let name = p.get("name").and_then(Value::as_str);
    let Some(name) = name.filter(|n| !n.is_empty() && n.len() <= 256) else {
        return Err(WireError::Field {
            field: "plugins",
            why: format!("item {i} has no `name` string"),
        });
    };
    // A plugin without a version (a custom one may have none) compares as unknown.
    let version = p.get("version").and_then(Value::as_str).unwrap_or("");
    Ok((name.to_string(), version.chars().take(64).collect()))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        // `str::floor_char_boundary` is newer than the crate's MSRV (1.90).
        let end = (0..=40).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..end])
    } else {
        s
    }
}

/// A `reconfigure` frame: gzip of `{type, timestamp, config_table,
/// config_hash, hashes}`. `config_table` is spliced in as the bytes it is,
/// already JSON, so a large snapshot is never serialized again.
pub fn reconfigure(
    timestamp_ms: u64,
    config_table: &[u8],
    config_hash: &str,
    hashes: &Value,
) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(config_table.len() / 6 + 256),
        flate2::Compression::fast(),
    );
    // `ngx.now()`: seconds with milliseconds.
    write!(
        gz,
        r#"{{"type":"reconfigure","timestamp":{}.{:03},"config_table":"#,
        timestamp_ms / 1000,
        timestamp_ms % 1000
    )?;
    gz.write_all(config_table)?;
    write!(
        gz,
        r#","config_hash":{},"hashes":{}}}"#,
        Value::String(config_hash.to_string()),
        hashes
    )?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn basic_info_as_kong_3_10_sends_it() {
        let frame = br#"{"type":"basic_info","plugins":[{"name":"key-auth","version":"3.10.0"},{"name":"acl","version":"3.10.0"}],"labels":{"region":"eu"},"process_conf":{"cluster_max_payload":4194304,"role":"data_plane"},"filters":{}}"#;
        let info = BasicInfo::parse(frame).unwrap();
        assert_eq!(info.plugins[0], ("key-auth".into(), "3.10.0".into()));
        assert_eq!(info.labels["region"], "eu");
        assert_eq!(info.max_payload(), 4194304);
        assert_eq!(info.filters, serde_json::json!({}));
    }

    #[test]
    fn refusals_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "not JSON"),
            (br#"{"type":"ping"}"#, "must be basic_info"),
            (
                br#"{"type":"basic_info","plugins":[{"version":"1"}]}"#,
                "plugins",
            ),
            (br#"{"type":"basic_info","labels":"x"}"#, "labels"),
        ];
        for (frame, want) in cases {
            let e = BasicInfo::parse(frame).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should say {want}");
        }
        let empty = BasicInfo::parse(br#"{"type":"basic_info","plugins":{},"labels":{}}"#).unwrap();
        assert!(empty.plugins.is_empty());
        assert_eq!(empty.max_payload(), DEFAULT_MAX_PAYLOAD);
    }

    #[test]
    fn reconfigure_is_gzip_of_the_message() {
        let hashes = serde_json::json!({"config": "a"});
        let gz = reconfigure(
            1_700_000_000_123,
            br#"{"_format_version":"3.0"}"#,
            "a",
            &hashes,
        )
        .unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "reconfigure");
        assert_eq!(v["timestamp"].as_f64(), Some(1_700_000_000.123));
        assert_eq!(v["config_table"]["_format_version"], "3.0");
        assert_eq!(v["config_hash"], "a");
        assert_eq!(v["hashes"], hashes);
    }
}
