//! Naming a fetched file: from the final URL, from `Content-Disposition`, and an extension
//! from the content or the `Content-Type` when the name has none.
//!
//! Pure functions over strings and the first bytes of the body. The result is a raw name: the
//! library's upload rules (slugify, allow-list, content sniff) are applied to it afterwards.

use percent_encoding::percent_decode_str;
use url::Url;

/// The name used when neither the URL nor the response suggests one.
pub const FALLBACK_NAME: &str = "download";

/// The last path segment of a URL, percent-decoded; `None` when it is empty (`/`, `/dir/`).
pub fn from_url(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    let name = percent_decode_str(last).decode_utf8_lossy();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The file name a `Content-Disposition` header gives: `filename*` (RFC 5987, UTF-8 or
/// ISO-8859-1) before `filename`.
pub fn from_disposition(header: &str) -> Option<String> {
    let params = disposition_params(header);
    let extended = params
        .iter()
        .find(|(k, _)| k == "filename*")
        .and_then(|(_, v)| decode_ext_value(v));
    let name = extended.or_else(|| {
        params
            .iter()
            .find(|(k, _)| k == "filename")
            .map(|(_, v)| v.clone())
    })?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The parameters after the disposition type, keys lowercased, quoted values unescaped.
fn disposition_params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = header.chars().peekable();
    // Skip the disposition type.
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        let key: String = chars
            .by_ref()
            .take_while(|&c| c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            value = chars.by_ref().take_while(|&c| c != ';').collect();
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
}

/// `UTF-8''na%C3%AFve.txt` → `naïve.txt`.
fn decode_ext_value(v: &str) -> Option<String> {
    let mut parts = v.splitn(3, '\'');
    let (charset, _lang, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" => String::from_utf8(bytes).ok(),
        "iso-8859-1" => Some(bytes.into_iter().map(char::from).collect()),
        _ => None,
    }
}

/// An extension for a name that has none: what the content's magic bytes say, else what the
/// `Content-Type` says (a canonical extension for common types, else the first extension of
/// that type that `accepts` takes). `None` when neither tells.
pub fn extension_for(
    head: &[u8],
    content_type: Option<&str>,
    accepts: impl Fn(&str) -> bool,
) -> Option<String> {
    if let Some(t) = infer::get(head) {
        return Some(t.extension().to_string());
    }
    let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    let canonical = match essence.as_str() {
        "text/plain" => Some("txt"),
        "text/markdown" | "text/x-markdown" => Some("md"),
        "text/html" => Some("html"),
        "image/jpeg" | "image/pjpeg" => Some("jpg"),
        "image/svg+xml" => Some("svg"),
        "image/x-icon" | "image/vnd.microsoft.icon" => Some("ico"),
        "audio/mpeg" => Some("mp3"),
        "video/mp4" => Some("mp4"),
        "application/pdf" => Some("pdf"),
        "application/zip" => Some("zip"),
        _ => None,
    };
    if let Some(ext) = canonical {
        return Some(ext.to_string());
    }
    // A type with a wildcard or without a subtype names no extension.
    let (top, sub) = essence.split_once('/')?;
    if top.is_empty() || sub.is_empty() || essence.contains('*') {
        return None;
    }
    let known = mime_guess::get_mime_extensions_str(&essence)?;
    known.iter().find(|e| accepts(e)).map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_last_path_segment_names_the_file() {
        assert_eq!(
            from_url(&url("https://x.org/a/b/cover.jpg?size=2#top")).as_deref(),
            Some("cover.jpg")
        );
        assert_eq!(
            from_url(&url("https://x.org/My%20Photo.JPG")).as_deref(),
            Some("My Photo.JPG")
        );
        assert_eq!(
            from_url(&url("https://x.org/caf%C3%A9.png")).as_deref(),
            Some("café.png")
        );
        assert_eq!(from_url(&url("https://x.org/dir/")), None);
        assert_eq!(from_url(&url("https://x.org")), None);
    }

    #[test]
    fn content_disposition_gives_a_name() {
        let cases = [
            ("attachment; filename=\"report.pdf\"", Some("report.pdf")),
            ("attachment; filename=report.pdf", Some("report.pdf")),
            ("inline;filename=\"a \\\"q\\\".txt\"", Some("a \"q\".txt")),
            (
                "attachment; filename=\"fallback.txt\"; filename*=UTF-8''na%C3%AFve.txt",
                Some("naïve.txt"),
            ),
            (
                "attachment; FILENAME*=iso-8859-1'en'%E9t%E9.txt",
                Some("été.txt"),
            ),
            ("attachment; filename=\"a;b.txt\"; size=3", Some("a;b.txt")),
            ("attachment", None),
            ("attachment; filename=\"\"", None),
            ("attachment; filename*=koi8-r''x.txt", None),
        ];
        for (header, want) in cases {
            assert_eq!(from_disposition(header).as_deref(), want, "{header}");
        }
    }

    #[test]
    fn content_is_sniffed_before_the_content_type_is_believed() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let all = |_: &str| true;
        assert_eq!(
            extension_for(png, Some("text/plain"), all).as_deref(),
            Some("png")
        );
        assert_eq!(
            extension_for(b"\xff\xd8\xff\xe0\0\x10JFIF\0", None, all).as_deref(),
            Some("jpg")
        );
        assert_eq!(
            extension_for(b"hello", Some("text/plain; charset=utf-8"), all).as_deref(),
            Some("txt")
        );
        assert_eq!(
            extension_for(b"# T", Some("Text/Markdown"), all).as_deref(),
            Some("md")
        );
        assert_eq!(
            extension_for(b"<!DOCTYPE html><html></html>", Some("image/jpeg"), all).as_deref(),
            Some("html")
        );
        assert_eq!(
            extension_for(b"x", Some("audio/ogg"), |e| e == "ogg").as_deref(),
            Some("ogg")
        );
        assert_eq!(
            extension_for(b"x", Some("application/octet-stream"), |_| false),
            None
        );
        assert_eq!(extension_for(b"x", Some("*/*"), all), None);
        assert_eq!(extension_for(b"x", Some("garbage"), all), None);
        assert_eq!(extension_for(b"x", None, all), None);
    }
}
