//! Names of uploaded files: taking the client's name apart and making it safe.

use crate::storage::paths::{check_name, PathError, MAX_NAME_BYTES};

/// The last component of a client-sent file name (browsers may send `C:\fakepath\x.jpg`).
pub fn client_basename(raw: &str) -> &str {
    raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim()
}

/// Splits at the last dot: `("archive.tar", "gz")`; a name without a dot has no extension.
pub fn split_name(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    }
}

/// `My Photo.JPG` → `my-photo.jpg`: lowercase letters and digits, runs of anything else as one
/// `-`. Letters outside ASCII are kept, so names stay readable in every language.
pub fn slugify(name: &str) -> String {
    let (stem, ext) = split_name(name);
    let mut slug = String::with_capacity(stem.len());
    for c in stem.chars() {
        if c.is_alphanumeric() || c == '_' {
            slug.extend(c.to_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "file" } else { slug };
    let ext: String = ext
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if ext.is_empty() {
        slug.to_string()
    } else {
        format!("{slug}.{ext}")
    }
}

/// The name an upload is stored under.
pub fn upload_name(raw: &str, safe: bool) -> Result<String, PathError> {
    let base = client_basename(raw);
    let name = if safe {
        slugify(base)
    } else {
        base.to_string()
    };
    check_name(&name)?;
    Ok(name)
}

/// `cover.jpg` → `cover-3.jpg`. The stem is shortened (at a character boundary) when the
/// number would make the name too long; an extension too long to leave room for a stem is
/// numbered as part of the stem.
pub fn numbered(name: &str, n: u32) -> String {
    let (stem, ext) = split_name(name);
    let (stem, suffix) = match format!("-{n}.{ext}") {
        // No dot at all; a name ending in a dot keeps it after the number.
        _ if stem.len() == name.len() => (stem, format!("-{n}")),
        suffix if suffix.len() < MAX_NAME_BYTES => (stem, suffix),
        _ => (name, format!("-{n}")),
    };
    let mut keep = MAX_NAME_BYTES.saturating_sub(suffix.len()).min(stem.len());
    while !stem.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &stem[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Photo.JPG"), "my-photo.jpg");
        assert_eq!(slugify("  Été à Paris!!.png"), "été-à-paris.png");
        assert_eq!(slugify("archive.tar.gz"), "archive-tar.gz");
        assert_eq!(slugify("...png"), "file.png");
        assert_eq!(slugify("a\"quote\".txt"), "a-quote.txt");
    }

    #[test]
    fn client_paths_are_stripped() {
        assert_eq!(upload_name("C:\\fakepath\\x.jpg", false).unwrap(), "x.jpg");
        assert_eq!(
            upload_name("../../etc/passwd.txt", false).unwrap(),
            "passwd.txt"
        );
        assert!(upload_name(".htaccess", false).is_err());
        assert!(upload_name("a\nb.txt", false).is_err());
        assert_eq!(upload_name("a\nb.txt", true).unwrap(), "a-b.txt");
    }

    #[test]
    fn numbering_a_name_of_the_longest_length_keeps_it_valid() {
        for name in [
            format!("{}.jpg", "n".repeat(MAX_NAME_BYTES - 4)),
            "é".repeat(MAX_NAME_BYTES / 2),
            format!("x.{}", "e".repeat(MAX_NAME_BYTES - 2)),
        ] {
            check_name(&name).unwrap();
            for n in [1, 10, u32::MAX] {
                let other = numbered(&name, n);
                assert_eq!(check_name(&other), Ok(()), "{other}");
                assert!(other.contains(&format!("-{n}")));
            }
        }
        let jpg = format!("{}.jpg", "n".repeat(MAX_NAME_BYTES - 4));
        assert!(numbered(&jpg, 7).ends_with("n-7.jpg"));
    }

    #[test]
    fn numbering_a_name_ending_in_a_dot_keeps_the_dot_last() {
        assert_eq!(numbered("photo.", 2), "photo-2.");
        assert_eq!(numbered("x..TMP.", 1), "x..TMP-1.");
        assert_eq!(split_name(&numbered("x..TMP.", 1)).1, "");
    }

    #[test]
    fn numbering_and_split() {
        assert_eq!(numbered("cover.jpg", 1), "cover-1.jpg");
        assert_eq!(numbered("README", 2), "README-2");
        assert_eq!(split_name("a.b.c"), ("a.b", "c"));
        assert_eq!(split_name(".x"), (".x", ""));
    }
}
