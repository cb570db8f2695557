//! The server's signing key and the two credentials it makes: signed URLs, which open one
//! protected path (or one content hash) until an expiry, and short-lived file tokens, which
//! open every protected file until theirs.
//!
//! The key is 32 random bytes kept as hex in `project/tokens/signing.key` (mode 0600, created
//! on first start). It is re-read when the file changes, so replacing it (`flextype token
//! rotate-key`) revokes every signed URL and file token at once, without a restart. Both
//! credentials are keyed BLAKE3 over a domain-separated message and are compared in constant
//! time; nothing here logs them. Knows nothing of HTTP or of which files are protected.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;

use crate::storage::atomic;

/// The key file's name in the tokens folder.
pub const KEY_FILE: &str = "signing.key";

/// What a signed URL opens.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A media path, relative to `uploads/`.
    Path(&'a str),
    /// A content hash, 64 lowercase hex.
    Hash(&'a str),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("The signature does not match this URL")]
    BadSignature,
    #[error("The signed URL has expired")]
    SignatureExpired,
    #[error("The file token is not valid")]
    BadFileToken,
    #[error("The file token has expired")]
    FileTokenExpired,
}

impl CredentialError {
    pub fn code(&self) -> &'static str {
        match self {
            CredentialError::BadSignature => "signature-invalid",
            CredentialError::SignatureExpired => "signature-expired",
            CredentialError::BadFileToken => "file-token-invalid",
            CredentialError::FileTokenExpired => "file-token-expired",
        }
    }
}

/// Identity of the key file's version, to notice a rotation with one `stat`.
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let md = fs::metadata(p).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&md);
    #[cfg(not(unix))]
    let ino = 0;
    Some((ino, md.modified().ok()?, md.len()))
}

pub struct Signer {
    path: PathBuf,
    key: RwLock<(Stamp, [u8; 32])>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signer {
    /// Opens the key in `tokens_dir`, creating it when missing.
    pub fn open(tokens_dir: &Path) -> io::Result<Signer> {
        let path = tokens_dir.join(KEY_FILE);
        if !path.exists() {
            write_new_key(&path)?;
            tracing::info!(file = %path.display(), "created the URL signing key");
        }
        let key = read_key(&path)?;
        Ok(Signer {
            key: RwLock::new((stamp(&path), key)),
            path,
        })
    }

    /// Replaces the key in `tokens_dir`: every signed URL and file token made so far stops
    /// working, in a running server too.
    pub fn rotate(tokens_dir: &Path) -> io::Result<()> {
        write_new_key(&tokens_dir.join(KEY_FILE))
    }

    /// The current key, re-read when the file changed. A key file that became unreadable or
    /// malformed keeps the last good key and is logged.
    fn key(&self) -> [u8; 32] {
        let now = stamp(&self.path);
        {
            let held = self.key.read().unwrap_or_else(|e| e.into_inner());
            if held.0 == now {
                return held.1;
            }
        }
        let mut held = self.key.write().unwrap_or_else(|e| e.into_inner());
        match read_key(&self.path) {
            Ok(key) => *held = (now, key),
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "cannot read the signing key; keeping the previous one");
            }
        }
        held.1
    }

    fn mac(&self, domain: &str, parts: &[&[u8]]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key());
        h.update(domain.as_bytes());
        for p in parts {
            // Length-prefixed, so no two different inputs make the same message.
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize()
    }

    fn url_mac(&self, target: Target<'_>, expires: u64) -> blake3::Hash {
        let (domain, value) = match target {
            Target::Path(p) => ("flextype signed path v1", p),
            Target::Hash(h) => ("flextype signed hash v1", h),
        };
        self.mac(domain, &[value.as_bytes(), &expires.to_le_bytes()])
    }

    /// The `sig` of a URL that opens `target` until `expires` (Unix seconds).
    pub fn sign(&self, target: Target<'_>, expires: u64) -> String {
        self.url_mac(target, expires).to_hex().to_string()
    }

    /// Checks a signed URL's `expires` and `sig` against `target` at time `now`.
    pub fn verify(
        &self,
        target: Target<'_>,
        expires: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), CredentialError> {
        let presented =
            blake3::Hash::from_hex(sig.as_bytes()).map_err(|_| CredentialError::BadSignature)?;
        // blake3::Hash compares in constant time.
        if presented != self.url_mac(target, expires) {
            return Err(CredentialError::BadSignature);
        }
        if expires < now {
            return Err(CredentialError::SignatureExpired);
        }
        Ok(())
    }

    /// A file token valid until `expires`, issued for the API token `issuer` refers to:
    /// `<expires>.<nonce>.<issuer>.<mac>`, safe in a URL.
    pub fn file_token(&self, expires: u64, issuer: &str) -> String {
        let mut nonce = [0u8; 8];
        rand::rng().fill_bytes(&mut nonce);
        let nonce = hex(&nonce);
        let mac = self.token_mac(expires, &nonce, issuer);
        format!("{expires}.{nonce}.{issuer}.{}", mac.to_hex())
    }

    fn token_mac(&self, expires: u64, nonce: &str, issuer: &str) -> blake3::Hash {
        self.mac(
            "flextype file token v2",
            &[&expires.to_le_bytes(), nonce.as_bytes(), issuer.as_bytes()],
        )
    }

    /// Whether `token` looks like a file token at all (as opposed to an API token).
    pub fn is_file_token(token: &str) -> bool {
        token.split('.').count() == 4
    }

    /// Checks a file token at time `now`; gives the reference of the API token it was issued
    /// for, whose state and limits still apply.
    pub fn check_file_token<'t>(
        &self,
        token: &'t str,
        now: u64,
    ) -> Result<&'t str, CredentialError> {
        let mut parts = token.split('.');
        let (Some(expires), Some(nonce), Some(issuer), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CredentialError::BadFileToken);
        };
        let expires: u64 = expires.parse().map_err(|_| CredentialError::BadFileToken)?;
        let presented =
            blake3::Hash::from_hex(mac.as_bytes()).map_err(|_| CredentialError::BadFileToken)?;
        if presented != self.token_mac(expires, nonce, issuer) {
            return Err(CredentialError::BadFileToken);
        }
        if expires < now {
            return Err(CredentialError::FileTokenExpired);
        }
        Ok(issuer)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_new_key(path: &Path) -> io::Result<()> {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    // The temp file is created with mode 0600 and keeps it through the rename.
    atomic::write(path, format!("{}\n", hex(&key)).as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn read_key(path: &Path) -> io::Result<[u8; 32]> {
    let text = fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))?;
    let hash = blake3::Hash::from_hex(text.trim()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} must hold 64 hex characters", path.display()),
        )
    })?;
    Ok(*hash.as_bytes())
}

/// Unix seconds as an RFC 3339 UTC time with milliseconds, as Fibery's `expiresAt`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> (tempfile::TempDir, Signer) {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn a_signature_opens_only_its_path_until_its_expiry() {
        let (_d, s) = signer();
        let sig = s.sign(Target::Path("a/b.jpg"), 1000);
        assert_eq!(s.verify(Target::Path("a/b.jpg"), 1000, &sig, 999), Ok(()));
        assert_eq!(s.verify(Target::Path("a/b.jpg"), 1000, &sig, 1000), Ok(()));
        assert_eq!(
            s.verify(Target::Path("a/b.jpg"), 1000, &sig, 1001),
            Err(CredentialError::SignatureExpired)
        );
        assert_eq!(
            s.verify(Target::Path("a/c.jpg"), 1000, &sig, 0),
            Err(CredentialError::BadSignature)
        );
        assert_eq!(
            s.verify(Target::Path("a/b.jpg"), 1001, &sig, 0),
            Err(CredentialError::BadSignature)
        );
        assert_eq!(
            s.verify(Target::Hash("a/b.jpg"), 1000, &sig, 0),
            Err(CredentialError::BadSignature)
        );
        assert_eq!(
            s.verify(Target::Path("a/b.jpg"), 1000, "zz", 0),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn file_tokens_expire_and_resist_tampering() {
        let (_d, s) = signer();
        let t = s.file_token(500, "abc");
        assert!(Signer::is_file_token(&t));
        assert_eq!(s.check_file_token(&t, 400), Ok("abc"));
        let other_issuer = t.replacen(".abc.", ".abd.", 1);
        assert_eq!(
            s.check_file_token(&other_issuer, 0),
            Err(CredentialError::BadFileToken)
        );
        assert_eq!(
            s.check_file_token(&t, 501),
            Err(CredentialError::FileTokenExpired)
        );
        let forged = t.replacen("500", "900", 1);
        assert_eq!(
            s.check_file_token(&forged, 0),
            Err(CredentialError::BadFileToken)
        );
        assert_eq!(
            s.check_file_token("1.2", 0),
            Err(CredentialError::BadFileToken)
        );
    }

    #[test]
    fn rotating_the_key_revokes_what_was_signed() {
        let (dir, s) = signer();
        let sig = s.sign(Target::Hash("ab"), 100);
        let token = s.file_token(100, "abc");
        Signer::rotate(dir.path()).unwrap();
        assert_eq!(
            s.verify(Target::Hash("ab"), 100, &sig, 0),
            Err(CredentialError::BadSignature)
        );
        assert_eq!(
            s.check_file_token(&token, 0),
            Err(CredentialError::BadFileToken)
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _s) = signer();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn rfc3339_formats_unix_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_768_337_317), "2026-01-13T20:48:37.000Z");
    }
}
