//! Which files are protected: the `media.protected` globs over media paths, and
//! `protected: true` in a file's own meta.
//!
//! A glob protects the paths it matches and everything below a folder it matches, so both
//! `private` and `private/**` protect the folder's whole subtree. `*` stays within one path
//! component; `**` crosses them. Matching ignores case. Knows nothing of credentials:
//! callers decide what a request may see.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde_yaml::{Mapping, Value};

use crate::storage::paths::MediaPath;

#[derive(Debug, Clone)]
pub struct Protection {
    globs: GlobSet,
    /// Protects every path: what an unusable glob list falls back to.
    all: bool,
    /// Identifies the glob list, so derived data that baked it in can tell it changed.
    fingerprint: String,
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    // Case-insensitive: on a file system that folds case, `PRIVATE/x` opens `private/x`;
    // matching it too is the safe side everywhere.
    GlobBuilder::new(pattern.trim_matches('/'))
        .literal_separator(true)
        .case_insensitive(true)
        .build()
}

impl Protection {
    pub fn new(patterns: &[String]) -> Result<Protection, globset::Error> {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            set.add(glob(p)?);
        }
        let fingerprint = if patterns.is_empty() {
            String::new()
        } else {
            blake3::hash(patterns.join("\n").as_bytes()).to_hex()[..16].to_string()
        };
        Ok(Protection {
            globs: set.build()?,
            all: false,
            fingerprint,
        })
    }

    /// The globs of the config; should they not compile (the config check refuses that at
    /// start), every path is protected rather than none.
    pub fn from_config(patterns: &[String]) -> Protection {
        Protection::new(patterns).unwrap_or_else(|e| {
            tracing::error!(error = %e, "media.protected is not usable; protecting every file");
            Protection {
                globs: GlobSet::empty(),
                all: true,
                fingerprint: "all".into(),
            }
        })
    }

    /// Checks that each pattern is a valid glob; the error names the first bad one.
    pub fn check(patterns: &[String]) -> Result<(), String> {
        for p in patterns {
            glob(p).map_err(|e| format!("'{p}' is not a valid glob: {}", e.kind()))?;
        }
        Ok(())
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the globs protect this path (or a folder above it). Needs no disk access, so
    /// it is answered before anything is looked up: a protected path that does not exist
    /// looks the same as one that does.
    pub fn path_protected(&self, p: &MediaPath) -> bool {
        if p.is_root() {
            return false;
        }
        if self.all {
            return true;
        }
        if self.globs.is_empty() {
            return false;
        }
        let s = p.as_str();
        if self.globs.is_match(s) {
            return true;
        }
        s.match_indices('/')
            .any(|(i, _)| self.globs.is_match(&s[..i]))
    }

    /// Whether a file's meta marks it protected: `protected: true`. Hand-written meta may
    /// spell it `'true'`, `yes`, `on` or `1`; those protect too, since reading a meant
    /// protection as "public" would be the worse mistake.
    pub fn meta_protected(meta: &Mapping) -> bool {
        match meta.get("protected") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_u64() == Some(1),
            Some(Value::String(s)) => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "on" | "1"
            ),
            _ => false,
        }
    }

    pub fn is_protected(&self, p: &MediaPath, meta: &Mapping) -> bool {
        Self::meta_protected(meta) || self.path_protected(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protection(globs: &[&str]) -> Protection {
        Protection::new(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn path(s: &str) -> MediaPath {
        MediaPath::parse(s).unwrap()
    }

    #[test]
    fn a_folder_glob_protects_its_whole_subtree() {
        for globs in [&["private/**"][..], &["private"], &["/private/"]] {
            let p = protection(globs);
            assert!(p.path_protected(&path("private/a.jpg")), "{globs:?}");
            assert!(p.path_protected(&path("private/x/y/a.jpg")), "{globs:?}");
            assert!(p.path_protected(&path("PRIVATE/a.jpg")), "{globs:?}");
            assert!(!p.path_protected(&path("public/a.jpg")), "{globs:?}");
            assert!(!p.path_protected(&path("private-not/a.jpg")), "{globs:?}");
            assert!(!p.path_protected(&path("a/private/a.jpg")), "{globs:?}");
        }
    }

    #[test]
    fn a_star_stays_within_one_component() {
        let p = protection(&["*/secret-*.pdf", "**/*.key"]);
        assert!(p.path_protected(&path("docs/secret-1.pdf")));
        assert!(!p.path_protected(&path("docs/a/secret-1.pdf")));
        assert!(p.path_protected(&path("a/b/c/x.key")));
        assert!(p.path_protected(&path("x.key")));
        assert!(!p.path_protected(&path("")));
    }

    #[test]
    fn a_true_protected_field_in_meta_protects() {
        let meta = |yaml: &str| serde_yaml::from_str::<Mapping>(yaml).unwrap();
        for yes in ["true", "'true'", "yes", "On", "1"] {
            assert!(Protection::meta_protected(&meta(&format!(
                "protected: {yes}"
            ))));
        }
        for no in ["false", "'no'", "0", "[]", "null"] {
            assert!(!Protection::meta_protected(&meta(&format!(
                "protected: {no}"
            ))));
        }
        assert!(!Protection::meta_protected(&meta("title: x")));
        let p = protection(&[]);
        assert!(p.is_protected(&path("a.jpg"), &meta("protected: true")));
        assert!(!p.is_protected(&path("a.jpg"), &meta("title: x")));
    }

    #[test]
    fn bad_globs_are_named() {
        let err = Protection::check(&["ok/**".into(), "bad[".into()]).unwrap_err();
        assert!(err.contains("bad["), "{err}");
    }
}
