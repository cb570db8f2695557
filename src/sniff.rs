//! Content types: sniffed from magic bytes, falling back to the extension.
//!
//! Owns the decision whether a file's content contradicts its extension (HTML named `.jpg`).
//! Pure functions over the first bytes of a file; no I/O of its own.

/// How many leading bytes the sniffers look at.
pub const HEAD_LEN: usize = 8192;

/// How strictly an extension's content is checked.
enum Rule {
    /// Formats with reliable magic bytes: the sniffed type must be one of these extensions.
    Magic(&'static [&'static str]),
    /// Audio and video containers have many variants: refuse only content that sniffs as
    /// something that is neither audio nor video.
    Media,
    /// Text formats: anything but a recognised binary format.
    Text,
}

fn rule(ext: &str) -> Rule {
    const OFFICE_OLE: &[&str] = &["doc", "xls", "ppt", "msi"];
    match ext {
        "jpg" | "jpeg" => Rule::Magic(&["jpg"]),
        "png" => Rule::Magic(&["png"]),
        "gif" => Rule::Magic(&["gif"]),
        "webp" => Rule::Magic(&["webp"]),
        "avif" => Rule::Magic(&["avif", "heif"]),
        "ico" => Rule::Magic(&["ico"]),
        "bmp" => Rule::Magic(&["bmp"]),
        "tif" | "tiff" => Rule::Magic(&["tif"]),
        "pdf" => Rule::Magic(&["pdf"]),
        "tgz" | "gz" => Rule::Magic(&["gz"]),
        "zip" => Rule::Magic(&[
            "zip", "docx", "xlsx", "pptx", "epub", "jar", "odt", "ods", "odp",
        ]),
        "docx" | "xlsx" | "pptx" | "epub" => Rule::Magic(&["zip", "docx", "xlsx", "pptx", "epub"]),
        "doc" | "xls" | "ppt" => Rule::Magic(OFFICE_OLE),
        "txt" | "md" | "svg" | "csv" | "json" | "xml" | "html" | "htm" | "css" | "js" => Rule::Text,
        _ => Rule::Media,
    }
}

/// The content contradicts the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub extension: String,
    pub found: Option<String>,
}

/// The MIME type for a file with this head and (lowercase) extension, without judging.
pub fn mime_type(head: &[u8], ext: &str) -> String {
    match infer::get(head) {
        Some(t) if !t.mime_type().starts_with("text/") => t.mime_type().to_string(),
        _ => by_extension(ext),
    }
}

/// The MIME type that the extension alone suggests.
pub fn by_extension(ext: &str) -> String {
    match ext {
        "md" => "text/markdown".to_string(),
        _ => mime_guess::from_ext(ext)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_string(),
    }
}

/// Checks content against the extension and returns the MIME type to record.
pub fn check(head: &[u8], ext: &str) -> Result<String, Mismatch> {
    let sniffed = infer::get(head);
    let mismatch = || Mismatch {
        extension: ext.to_string(),
        found: sniffed.map(|t| t.mime_type().to_string()),
    };
    let ok = match (rule(ext), sniffed) {
        (Rule::Magic(allowed), Some(t)) => allowed.contains(&t.extension()),
        (Rule::Magic(_), None) => false,
        (Rule::Media, None) => true,
        (Rule::Media, Some(t)) => {
            let m = t.mime_type();
            m.starts_with("audio/") || m.starts_with("video/") || m == "application/ogg"
        }
        (Rule::Text, None) => true,
        (Rule::Text, Some(t)) => t.mime_type().starts_with("text/") || t.extension() == "xml",
    };
    if ok {
        Ok(mime_type(head, ext))
    } else {
        Err(mismatch())
    }
}

/// Content that could run script if a browser rendered it in the site's origin.
pub fn is_active_content(mime: &str, ext: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    m.contains("html")
        || m.contains("xml")
        || m.contains("javascript")
        || m.contains("ecmascript")
        || matches!(
            ext,
            "svg" | "svgz" | "html" | "htm" | "xhtml" | "xml" | "js" | "mjs" | "xsl"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn html_named_jpg_is_refused() {
        let err = check(b"<!DOCTYPE html><html><script>x</script>", "jpg").unwrap_err();
        assert_eq!(err.extension, "jpg");
        assert!(check(PNG, "jpg").is_err());
        assert!(check(b"", "png").is_err());
    }

    #[test]
    fn matching_content_gives_sniffed_type() {
        assert_eq!(check(JPEG, "jpeg").unwrap(), "image/jpeg");
        assert_eq!(check(PNG, "png").unwrap(), "image/png");
        assert_eq!(check(b"hello", "txt").unwrap(), "text/plain");
        assert_eq!(check(b"# Title", "md").unwrap(), "text/markdown");
        assert_eq!(
            check(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "svg").unwrap(),
            "image/svg+xml"
        );
    }

    #[test]
    fn text_extension_with_binary_content_is_refused() {
        assert!(check(PNG, "txt").is_err());
    }

    #[test]
    fn active_content() {
        assert!(is_active_content("image/svg+xml", "svg"));
        assert!(is_active_content("text/html", "txt"));
        assert!(!is_active_content("image/png", "png"));
    }
}
