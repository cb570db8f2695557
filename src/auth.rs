//! API tokens: stored hashed as flat files under `project/tokens/{files,access}/<id>/token.yaml`.
//!
//! Owns token creation, lookup, state and call limits. Tokens are read from disk as they are,
//! so a token created, disabled or revoked by hand or by the CLI counts on the next request:
//! each check stats the kind's folder and the token's file and re-reads what changed. Call
//! counters are kept in memory and flushed to disk in the background, never on the request's
//! path. Token values are never logged; lookups compare BLAKE3 hashes in constant time.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rand::RngCore;
use serde_yaml::{Mapping, Value};

use crate::storage::meta;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Files,
    Access,
}

impl TokenKind {
    pub fn dir_name(self) -> &'static str {
        match self {
            TokenKind::Files => "files",
            TokenKind::Access => "access",
        }
    }

    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "files" => Some(TokenKind::Files),
            "access" => Some(TokenKind::Access),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("A valid {} token is required", .0.dir_name())]
    Missing(TokenKind),
    #[error("The {} token is not valid", .0.dir_name())]
    Invalid(TokenKind),
    #[error("The {} token is disabled", .0.dir_name())]
    Disabled(TokenKind),
    #[error("The {} token has reached its call limit", .0.dir_name())]
    LimitReached(TokenKind),
    #[error("Two different {} tokens were sent (a parameter and a header)", .0.dir_name())]
    Conflicting(TokenKind),
    #[error(transparent)]
    FileToken(#[from] crate::signing::CredentialError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "token-required",
            AuthError::Invalid(_) => "token-invalid",
            AuthError::Disabled(_) => "token-disabled",
            AuthError::LimitReached(_) => "token-limit-reached",
            AuthError::Conflicting(_) => "token-conflict",
            AuthError::FileToken(e) => e.code(),
            AuthError::Io(_) => "internal-error",
        }
    }
}

/// Who made a request: the ids of the tokens it presented.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The files token's id; `None` when the request holds only a short-lived file token.
    pub files_token: Option<String>,
    pub access_token: Option<String>,
}

impl Principal {
    /// Whether the caller may see protected files in listings and search results: API
    /// token holders may; file token holders open protected content by URL only.
    pub fn sees_protected(&self) -> bool {
        self.files_token.is_some()
    }
}

/// A token as a client sends it: 32 lowercase hex characters.
pub struct Token(String);

impl Token {
    pub fn parse(s: &str) -> Option<Token> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Token(s.to_string()))
    }

    pub fn generate() -> Token {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> blake3::Hash {
        blake3::hash(self.0.as_bytes())
    }
}

/// Identity of a file's version on disk, to notice changes with one `stat`.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let md = fs::metadata(p).ok()?;
    Some((md.modified().ok()?, md.len()))
}

struct Entry {
    id: String,
    file: PathBuf,
    hash: blake3::Hash,
    stamp: Stamp,
    enabled: bool,
    limit: u64,
    calls_on_disk: u64,
}

#[derive(Default)]
struct KindState {
    dir_stamp: Stamp,
    loaded: bool,
    entries: HashMap<[u8; 32], Entry>,
}

pub struct TokenStore {
    root: PathBuf,
    legacy_plaintext: bool,
    state: Mutex<HashMap<TokenKind, KindState>>,
    /// Calls not yet written to disk, by (kind, id).
    pending: Mutex<HashMap<(TokenKind, String), u64>>,
}

/// A token's record as listed by the CLI.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub kind: TokenKind,
    pub id: String,
    pub title: String,
    pub state: String,
    pub calls: u64,
    pub limit_calls: u64,
    pub legacy: bool,
}

fn read_record(path: &Path) -> Option<Mapping> {
    let bytes = fs::read(path).ok()?;
    meta::parse(&bytes).ok()
}

fn field_u64(m: &Mapping, k: &str) -> u64 {
    match m.get(k) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn field_str<'a>(m: &'a Mapping, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

impl TokenStore {
    pub fn new(root: &Path, legacy_plaintext: bool) -> TokenStore {
        TokenStore {
            root: root.to_path_buf(),
            legacy_plaintext,
            state: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn kind_dir(&self, kind: TokenKind) -> PathBuf {
        self.root.join(kind.dir_name())
    }

    /// The hash a record stands for: its `hash` field, or for a legacy record its folder name.
    fn record_hash(&self, id: &str, record: &Mapping) -> Option<blake3::Hash> {
        match record.get("hash").and_then(Value::as_str) {
            Some(h) => blake3::Hash::from_hex(h).ok(),
            None if self.legacy_plaintext => Token::parse(id).map(|t| t.hash()),
            None => None,
        }
    }

    fn load_entry(&self, id: &str, file: PathBuf) -> Option<Entry> {
        let st = stamp(&file);
        let record = read_record(&file)?;
        Some(Entry {
            id: id.to_string(),
            hash: self.record_hash(id, &record)?,
            enabled: field_str(&record, "state") != "disabled",
            limit: field_u64(&record, "limit_calls"),
            calls_on_disk: field_u64(&record, "calls"),
            stamp: st,
            file,
        })
    }

    fn rescan(&self, kind: TokenKind, ks: &mut KindState) {
        ks.entries.clear();
        let Ok(read) = fs::read_dir(self.kind_dir(kind)) else {
            return;
        };
        for d in read.filter_map(Result::ok) {
            let id = d.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            if let Some(e) = self.load_entry(&id, d.path().join("token.yaml")) {
                ks.entries.insert(*e.hash.as_bytes(), e);
            }
        }
    }

    /// Checks a presented token and counts the call.
    pub fn check(&self, kind: TokenKind, presented: Option<&str>) -> Result<String, AuthError> {
        let presented = presented
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Missing(kind))?;
        let token = Token::parse(presented).ok_or(AuthError::Invalid(kind))?;
        let key = *token.hash().as_bytes();
        self.admit(
            kind,
            |ks| ks.entries.contains_key(&key).then_some(key),
            true,
        )
    }

    /// A reference to a token that can travel in a URL: not the token, nor (for legacy
    /// plaintext tokens, whose id is the token) its id.
    pub fn reference(id: &str) -> String {
        blake3::hash(id.as_bytes()).to_hex()[..16].to_string()
    }

    /// Checks the token a [`reference`](Self::reference) names, which issued a credential
    /// now presented: it must still exist and be enabled; when `count` is set the call also
    /// counts against its limit.
    pub fn check_reference(
        &self,
        kind: TokenKind,
        reference: &str,
        count: bool,
    ) -> Result<String, AuthError> {
        self.admit(
            kind,
            |ks| {
                ks.entries
                    .iter()
                    .find(|(_, e)| Self::reference(&e.id) == reference)
                    .map(|(k, _)| *k)
            },
            count,
        )
    }

    /// Finds a token's entry (re-read when its file changed) and checks its state; when
    /// `count` is set, checks its limit and counts the call.
    fn admit(
        &self,
        kind: TokenKind,
        find: impl Fn(&KindState) -> Option<[u8; 32]>,
        count: bool,
    ) -> Result<String, AuthError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ks = state.entry(kind).or_default();
        let dir_stamp = stamp(&self.kind_dir(kind));
        if !ks.loaded || dir_stamp != ks.dir_stamp {
            self.rescan(kind, ks);
            ks.dir_stamp = dir_stamp;
            ks.loaded = true;
        }
        let key = find(ks).ok_or(AuthError::Invalid(kind))?;
        let current = ks
            .entries
            .get(&key)
            .map(|e| (e.id.clone(), e.file.clone(), e.stamp, e.hash));
        let Some((id, file, old_stamp, hash)) = current else {
            return Err(AuthError::Invalid(kind));
        };
        if stamp(&file) != old_stamp {
            // Edited by hand or by the CLI since we read it.
            match self.load_entry(&id, file) {
                // blake3::Hash compares in constant time.
                Some(e) if e.hash == hash => {
                    ks.entries.insert(key, e);
                }
                _ => {
                    ks.entries.remove(&key);
                    return Err(AuthError::Invalid(kind));
                }
            }
        }
        let entry = ks.entries.get(&key).ok_or(AuthError::Invalid(kind))?;
        if !entry.enabled {
            return Err(AuthError::Disabled(kind));
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let calls = pending.entry((kind, entry.id.clone())).or_insert(0);
        if count {
            if entry.limit > 0 && entry.calls_on_disk + *calls >= entry.limit {
                return Err(AuthError::LimitReached(kind));
            }
            *calls += 1;
        }
        Ok(entry.id.clone())
    }

    /// Writes pending call counts to the token files.
    pub fn flush(&self) -> io::Result<()> {
        let pending: Vec<((TokenKind, String), u64)> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().filter(|(_, n)| *n > 0).collect()
        };
        let mut result = Ok(());
        for ((kind, id), n) in pending {
            let file = self.kind_dir(kind).join(&id).join("token.yaml");
            let Some(mut record) = read_record(&file) else {
                continue; // revoked meanwhile
            };
            let calls = field_u64(&record, "calls") + n;
            record.insert("calls".into(), calls.into());
            if let Err(e) = meta::write(&file, &record) {
                tracing::warn!(token_id = %id, error = %e, "could not write call count");
                result = Err(e);
                continue;
            }
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = state
                .get_mut(&kind)
                .and_then(|ks| ks.entries.values_mut().find(|e| e.id == id))
            {
                e.calls_on_disk = calls;
                e.stamp = stamp(&file);
            }
        }
        result
    }

    /// Creates a token; returns its id and the token, which is shown once and never stored.
    pub fn create(
        &self,
        kind: TokenKind,
        title: &str,
        limit_calls: u64,
    ) -> io::Result<(String, Token)> {
        let token = Token::generate();
        let id = Token::generate().0[..16].to_string();
        let mut record = Mapping::new();
        record.insert("hash".into(), token.hash().to_hex().to_string().into());
        record.insert("title".into(), title.into());
        record.insert("state".into(), "enabled".into());
        record.insert("limit_calls".into(), limit_calls.into());
        record.insert("calls".into(), 0.into());
        record.insert("uuid".into(), uuid::Uuid::now_v7().to_string().into());
        record.insert("created_at".into(), crate::library::now_secs().into());
        meta::write(&self.kind_dir(kind).join(&id).join("token.yaml"), &record)?;
        Ok((id, token))
    }

    pub fn list(&self) -> Vec<TokenInfo> {
        let mut out = Vec::new();
        for kind in [TokenKind::Files, TokenKind::Access] {
            let Ok(read) = fs::read_dir(self.kind_dir(kind)) else {
                continue;
            };
            for d in read.filter_map(Result::ok) {
                let id = d.file_name().to_string_lossy().into_owned();
                let Some(r) = read_record(&d.path().join("token.yaml")) else {
                    continue;
                };
                out.push(TokenInfo {
                    kind,
                    legacy: !r.contains_key("hash"),
                    title: field_str(&r, "title").to_string(),
                    state: match field_str(&r, "state") {
                        "" => "enabled".to_string(),
                        s => s.to_string(),
                    },
                    calls: field_u64(&r, "calls"),
                    limit_calls: field_u64(&r, "limit_calls"),
                    id,
                });
            }
        }
        out.sort_by(|a, b| (a.kind.dir_name(), &a.id).cmp(&(b.kind.dir_name(), &b.id)));
        out
    }

    /// Removes a token of either kind by id; `false` when there is none.
    pub fn revoke(&self, id: &str) -> io::Result<bool> {
        if id.is_empty() || id.contains(['/', '\\', '.']) {
            return Ok(false);
        }
        for kind in [TokenKind::Files, TokenKind::Access] {
            let dir = self.kind_dir(kind).join(id);
            if dir.join("token.yaml").is_file() {
                fs::remove_dir_all(&dir)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Converts legacy plaintext tokens (the folder name is the token) to hashed ones;
    /// the token value stays the same. Returns how many were converted.
    pub fn migrate(&self) -> io::Result<usize> {
        let mut n = 0;
        for kind in [TokenKind::Files, TokenKind::Access] {
            let Ok(read) = fs::read_dir(self.kind_dir(kind)) else {
                continue;
            };
            for d in read.filter_map(Result::ok) {
                let name = d.file_name().to_string_lossy().into_owned();
                let file = d.path().join("token.yaml");
                let Some(mut record) = read_record(&file) else {
                    continue;
                };
                let Some(token) = Token::parse(&name).filter(|_| !record.contains_key("hash"))
                else {
                    continue;
                };
                let id = Token::generate().0[..16].to_string();
                record.insert("hash".into(), token.hash().to_hex().to_string().into());
                meta::write(&self.kind_dir(kind).join(&id).join("token.yaml"), &record)?;
                fs::remove_dir_all(d.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether there is no token of any kind yet.
    pub fn is_empty(&self) -> bool {
        [TokenKind::Files, TokenKind::Access].iter().all(|k| {
            fs::read_dir(self.kind_dir(*k))
                .map(|mut r| r.next().is_none())
                .unwrap_or(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_token_checks_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path(), false);
        let (id, t) = store.create(TokenKind::Files, "t", 2).unwrap();
        assert_eq!(store.check(TokenKind::Files, Some(t.as_str())).unwrap(), id);
        assert!(matches!(
            store.check(TokenKind::Access, Some(t.as_str())),
            Err(AuthError::Invalid(_))
        ));
        store.flush().unwrap();
        store.check(TokenKind::Files, Some(t.as_str())).unwrap();
        assert!(matches!(
            store.check(TokenKind::Files, Some(t.as_str())),
            Err(AuthError::LimitReached(_))
        ));
        store.flush().unwrap();
        let r = read_record(&dir.path().join("files").join(&id).join("token.yaml")).unwrap();
        assert_eq!(field_u64(&r, "calls"), 2);
        let text =
            fs::read_to_string(dir.path().join("files").join(&id).join("token.yaml")).unwrap();
        assert!(
            !text.contains(t.as_str()),
            "the token itself is never stored"
        );
    }

    #[test]
    fn empty_and_malformed_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path(), false);
        assert!(matches!(
            store.check(TokenKind::Files, None),
            Err(AuthError::Missing(_))
        ));
        assert!(matches!(
            store.check(TokenKind::Files, Some("")),
            Err(AuthError::Missing(_))
        ));
        assert!(matches!(
            store.check(TokenKind::Files, Some("zz")),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn legacy_tokens_need_the_flag_and_migrate_keeps_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = "0123456789abcdef0123456789abcdef";
        let mut r = Mapping::new();
        r.insert("title".into(), "old".into());
        r.insert("state".into(), "enabled".into());
        meta::write(
            &dir.path().join("files").join(legacy).join("token.yaml"),
            &r,
        )
        .unwrap();
        assert!(TokenStore::new(dir.path(), false)
            .check(TokenKind::Files, Some(legacy))
            .is_err());
        assert!(TokenStore::new(dir.path(), true)
            .check(TokenKind::Files, Some(legacy))
            .is_ok());
        let store = TokenStore::new(dir.path(), false);
        assert_eq!(store.migrate().unwrap(), 1);
        assert!(store.check(TokenKind::Files, Some(legacy)).is_ok());
        assert!(!dir.path().join("files").join(legacy).exists());
    }
}
