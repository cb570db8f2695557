//! The one typed configuration of the server.
//!
//! Owns the layering: embedded defaults, then `flextype.yaml` (or the file named by `--config`),
//! then `FLEXTYPE__SECTION__KEY` environment variables. Unknown keys and bad values fail at start
//! with a message naming the key. Nothing else in the crate reads the environment or the config
//! file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Public base URL for `full_url`/`hash_url`; empty means "from the request".
    pub url: String,
    pub server: ServerConfig,
    /// The project folder (uploads, tokens, cache), relative to the working directory.
    pub project: PathBuf,
    pub media: MediaConfig,
    pub tokens: TokensConfig,
    pub watch: WatchConfig,
    pub cors: CorsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub address: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Bytes of small files kept in memory with ready-made headers for fast serving.
    pub hot_cache_bytes: u64,
    /// Files up to this size are eligible for the in-memory cache.
    pub hot_file_max_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    pub accept_file_types: Vec<String>,
    pub max_file_size: u64,
    pub safe_names: bool,
    pub protected: Vec<String>,
    pub thumbs: ThumbsConfig,
    pub from_url: FromUrlConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbsConfig {
    /// The only sizes that are made (PocketBase's grammar); other sizes get the original.
    pub sizes: Vec<String>,
    /// Sources whose header declares more pixels than this are never decoded.
    pub max_source_pixels: u64,
    /// Bytes of thumbnails kept under `project/cache/thumbs`; least recently used go first.
    pub cache_max_bytes: u64,
    /// Thumbnails made at once; 0 means one per core.
    pub workers: usize,
    /// How long a request waits for a free worker before it is answered 503, in milliseconds.
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FromUrlConfig {
    pub enabled: bool,
    pub allow_private: bool,
    /// Addresses or CIDR ranges that may be fetched although the guard refuses their kind.
    pub allowed_addresses: Vec<crate::remote::AddressRange>,
    pub timeout_s: u64,
    pub max_redirects: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    pub legacy_plaintext: bool,
    pub file_token_ttl_s: u64,
    pub max_signed_url_ttl_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    pub enabled: bool,
    /// How long a path must be quiet before its events are acted on, in milliseconds.
    pub quiet_ms: u64,
    /// How long orphaned meta waits for its file to reappear elsewhere, in seconds.
    pub orphan_grace_s: u64,
    /// Seconds between full reconcile scans that catch anything missed; 0 turns them off.
    pub reconcile_interval_s: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            enabled: true,
            quiet_ms: 500,
            orphan_grace_s: 10,
            reconcile_interval_s: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    pub enabled: bool,
    pub origin: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            server: ServerConfig::default(),
            project: PathBuf::from("project"),
            media: MediaConfig::default(),
            tokens: TokensConfig::default(),
            watch: WatchConfig::default(),
            cors: CorsConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1:8080".into(),
            workers: 0,
            hot_cache_bytes: 64 * 1024 * 1024,
            hot_file_max_bytes: 256 * 1024,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        let types = "gif jpg jpeg png webp avif ico svg zip tgz txt md doc docx pdf epub xls xlsx \
                     ppt pptx mp3 ogg wav m4a mp4 m4v ogv wmv avi webm";
        MediaConfig {
            accept_file_types: types.split_whitespace().map(String::from).collect(),
            max_file_size: 268_435_456,
            safe_names: true,
            protected: Vec::new(),
            thumbs: ThumbsConfig::default(),
            from_url: FromUrlConfig::default(),
        }
    }
}

impl Default for ThumbsConfig {
    fn default() -> Self {
        ThumbsConfig {
            sizes: ["100x100", "300x0", "0x300", "600x600f"]
                .map(String::from)
                .to_vec(),
            max_source_pixels: 100_000_000,
            cache_max_bytes: 1 << 30,
            workers: 0,
            max_wait_ms: 10_000,
        }
    }
}

impl Default for FromUrlConfig {
    fn default() -> Self {
        FromUrlConfig {
            enabled: true,
            allow_private: false,
            allowed_addresses: Vec::new(),
            timeout_s: 30,
            max_redirects: 3,
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            legacy_plaintext: false,
            file_token_ttl_s: 120,
            max_signed_url_ttl_s: 604_800,
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            enabled: true,
            origin: "*".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Layers defaults, the config file and the environment.
    ///
    /// `path` is the file named by `--config`; it must exist. Without it, `flextype.yaml` in the
    /// working directory is read when present.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) if !p.is_file() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("flextype.yaml")).filter(|p| p.is_file()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Yaml::file_exact(file));
        }
        let figment = figment.merge(Env::prefixed("FLEXTYPE__").split("__"));
        let config: Config = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values serde cannot: addresses, sizes and lists.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("`{key}`: {why}")));
        if self.server.address.parse::<SocketAddr>().is_err() {
            return bad(
                "server.address",
                "expected host:port with an IP address, e.g. 127.0.0.1:8080",
            );
        }
        let url_ok = self.url.is_empty()
            || self.url.starts_with("http://")
            || self.url.starts_with("https://");
        if !url_ok {
            return bad("url", "expected '' or an http(s):// URL");
        }
        if self.media.max_file_size == 0 {
            return bad("media.max_file_size", "must be greater than 0");
        }
        if let Some(t) = self.media.accept_file_types.iter().find(|t| {
            t.is_empty()
                || t.starts_with('.')
                || t.contains(['/', '\\', ' '])
                || *t != &t.to_lowercase()
        }) {
            return bad(
                "media.accept_file_types",
                &format!("'{t}' must be a lowercase extension without the dot"),
            );
        }
        if let Err(why) = crate::library::Protection::check(&self.media.protected) {
            return bad("media.protected", &why);
        }
        const YEAR: u64 = 365 * 24 * 3600;
        if !(1..=YEAR).contains(&self.tokens.file_token_ttl_s) {
            return bad(
                "tokens.file_token_ttl_s",
                "must be between 1 and 31536000 (a year)",
            );
        }
        if !(1..=10 * YEAR).contains(&self.tokens.max_signed_url_ttl_s) {
            return bad(
                "tokens.max_signed_url_ttl_s",
                "must be between 1 and 315360000 (ten years)",
            );
        }
        if !(1..=3600).contains(&self.media.from_url.timeout_s) {
            return bad("media.from_url.timeout_s", "must be between 1 and 3600");
        }
        self.validate_thumbs()?;
        if !(50..=60_000).contains(&self.watch.quiet_ms) {
            return bad("watch.quiet_ms", "must be between 50 and 60000");
        }
        if self.project.as_os_str().is_empty() {
            return bad("project", "must name a folder");
        }
        Ok(())
    }

    fn validate_thumbs(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| {
            Err(ConfigError::Invalid(format!("`media.thumbs.{key}`: {why}")))
        };
        let t = &self.media.thumbs;
        for size in &t.sizes {
            if let Err(e) = size.parse::<crate::thumbs::ThumbSpec>() {
                return bad("sizes", &format!("'{size}': {e}"));
            }
        }
        if t.max_source_pixels == 0 {
            return bad("max_source_pixels", "must be greater than 0");
        }
        if t.cache_max_bytes < 1 << 20 {
            return bad("cache_max_bytes", "must be at least 1048576 (1 MiB)");
        }
        if t.workers > 256 {
            return bad("workers", "must be between 0 (one per core) and 256");
        }
        if t.max_wait_ms > 600_000 {
            return bad("max_wait_ms", "must be at most 600000 (10 minutes)");
        }
        Ok(())
    }

    /// The socket address to bind (validated at load).
    pub fn bind_address(&self) -> SocketAddr {
        self.server
            .address
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// Whether an extension (lowercase, no dot) is on the allow-list: an exact match.
    pub fn accepts_extension(&self, ext: &str) -> bool {
        self.media.accept_file_types.iter().any(|t| t == ext)
    }
}

/// Turns figment's error into one line that names the key and the problem.
fn describe(err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("`{key}`: {}{source}", e.kind)
            }
        })
        .collect();
    ConfigError::Invalid(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_annotated_example_config_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flextype.yaml");
        let loaded = Config::load(Some(&path)).unwrap();
        let defaults = Config::default();
        assert_eq!(
            serde_json::to_value(&loaded).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }

    #[test]
    fn bad_thumbnail_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        for (yaml, key) in [
            ("sizes: [100x100, abc]", "abc"),
            ("sizes: [5000x100]", "sizes"),
            ("cache_max_bytes: 1000", "cache_max_bytes"),
            ("max_source_pixels: 0", "max_source_pixels"),
            ("workers: 1000", "workers"),
        ] {
            std::fs::write(&p, format!("media:\n  thumbs:\n    {yaml}\n")).unwrap();
            let err = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "media:\n  max_file_sise: 3\n").unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("max_file_sise"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "server:\n  workers: many\n").unwrap();
        let err = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("server.workers"), "{err}");
    }
}
