//! What Kong Gateway itself refuses (README: What rgmerge checks): the data planes a member
//! config is for ([`KongTarget`]: edition and enabled plugins), the field
//! rules of Kong's entity schemas ([`rules`]), string formats
//! ([`formats`]), regexes as Kong's PCRE2 compiles them ([`pcre`]) and,
//! for route paths and headers, as the default router's ATC expressions
//! compile them ([`atc`]), and the bundled plugins with their scopes,
//! protocols and config schemas ([`plugins`]).
//!
//! Everything here is a table of data or a cheap check; the walker
//! (`config::walk`) calls it per entity and turns every problem into a
//! `schema_error` with a path.

pub mod atc;
pub mod formats;
pub mod pcre;
pub mod plugins;
pub mod rules;
pub mod schemas;

/// The Kong Gateway version the rule tables follow.
pub const KONG_VERSION: &str = "3.10";

/// Which Kong Gateway the data planes run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Edition {
    /// Kong Gateway Enterprise: what Konnect runs, the default.
    #[default]
    Enterprise,
    /// Kong Gateway OSS: no consumer groups, partials, Enterprise plugins, …
    Oss,
}

impl Edition {
    /// `enterprise` or `oss`, as `--kong-edition` spells it.
    pub fn parse(s: &str) -> Result<Edition, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "enterprise" | "ee" => Ok(Edition::Enterprise),
            "oss" | "ce" | "community" => Ok(Edition::Oss),
            other => Err(format!(
                "unknown Kong edition `{other}`: expected `enterprise` or `oss`"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Edition::Enterprise => "enterprise",
            Edition::Oss => "oss",
        }
    }
}

/// The plugins the data planes run: Kong's `plugins` setting
/// (`bundled,my-plugin`; `off` for none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginSet {
    pub bundled: bool,
    /// Custom plugin names, sorted and deduplicated.
    pub custom: Vec<String>,
}

impl Default for PluginSet {
    fn default() -> PluginSet {
        PluginSet {
            bundled: true,
            custom: Vec::new(),
        }
    }
}

impl PluginSet {
    /// Reads Kong's `plugins` setting: comma-separated names, where
    /// `bundled` stands for Kong's bundled plugins and `off` for none.
    pub fn parse(spec: &str) -> Result<PluginSet, String> {
        let mut set = PluginSet {
            bundled: false,
            custom: Vec::new(),
        };
        let names: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names == ["off"] {
            return Ok(set);
        }
        for n in names {
            match n {
                "bundled" => set.bundled = true,
                "off" => return Err("`off` cannot be combined with other plugin names".into()),
                n if n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    set.custom.push(n.to_string())
                }
                n => return Err(format!("`{n}` is not a plugin name")),
            }
        }
        set.custom.sort();
        set.custom.dedup();
        Ok(set)
    }
}

/// The data planes a member config is checked for. `Default`: Kong
/// Gateway Enterprise with its bundled plugins, as Konnect runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KongTarget {
    pub edition: Edition,
    pub plugins: PluginSet,
}

impl KongTarget {
    /// The target from the CLI's and daemon's flags: `--kong-edition
    /// enterprise|oss` and `--plugins bundled,my-plugin` (Kong's own
    /// `plugins` setting); `None` keeps the default.
    pub fn from_flags(edition: Option<&str>, plugins: Option<&str>) -> Result<KongTarget, String> {
        Ok(KongTarget {
            edition: edition.map(Edition::parse).transpose()?.unwrap_or_default(),
            plugins: plugins
                .map(PluginSet::parse)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    pub fn is_oss(&self) -> bool {
        self.edition == Edition::Oss
    }

    /// Whether the data planes run a plugin of this name, and if not, why.
    pub fn plugin_status(&self, name: &str) -> PluginStatus {
        if self.plugins.custom.iter().any(|c| c == name) {
            return PluginStatus::Custom;
        }
        match plugins::bundled(name) {
            Some(p) if !self.plugins.bundled => PluginStatus::NotEnabled(p),
            Some(p) if p.enterprise && self.is_oss() => PluginStatus::EnterpriseOnly(p),
            Some(p) => PluginStatus::Bundled(p),
            None => PluginStatus::Unknown,
        }
    }
}

pub enum PluginStatus {
    Bundled(&'static plugins::Plugin),
    Custom,
    EnterpriseOnly(&'static plugins::Plugin),
    /// Bundled, but `bundled` is not in the target's plugin set.
    NotEnabled(&'static plugins::Plugin),
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let t = KongTarget::from_flags(Some("oss"), Some("bundled, my-plugin")).unwrap();
        assert!(t.is_oss());
        assert!(t.plugins.bundled);
        assert_eq!(t.plugins.custom, vec!["my-plugin".to_string()]);
        assert!(matches!(t.plugin_status("my-plugin"), PluginStatus::Custom));
        assert!(matches!(
            t.plugin_status("rate-limiting-advanced"),
            PluginStatus::EnterpriseOnly(_)
        ));
        let off = KongTarget::from_flags(None, Some("off")).unwrap();
        assert!(matches!(
            off.plugin_status("key-auth"),
            PluginStatus::NotEnabled(_)
        ));
        assert_eq!(
            KongTarget::from_flags(None, None).unwrap(),
            KongTarget::default()
        );
        assert!(KongTarget::from_flags(Some("free"), None).is_err());
        assert!(KongTarget::from_flags(None, Some("bundled,off")).is_err());
    }
}
