//! Reads what a file says about itself as an image: the dimensions and colour from the image
//! header, and camera, lens, exposure, dates and GPS from its EXIF block (kamadak-exif).
//!
//! A leaf: it reads one file and returns a YAML mapping for the meta's `exif` field; it never
//! writes and knows nothing of meta files or HTTP. Broken or hostile input yields fewer keys,
//! never an error or a panic: a damaged EXIF block must not fail an upload. Pixels are never
//! decoded and the file is never read whole, except a TIFF's first [`MAX_TIFF_READ`] bytes,
//! which is where its EXIF lives.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

use exif::{Exif, Field, In, Tag, Value};
use image::ImageDecoder;
use serde_yaml::{Mapping, Value as Yaml};

/// How much of a TIFF is handed to the EXIF parser (its IFDs sit near the start in practice).
const MAX_TIFF_READ: u64 = 16 << 20;
/// The longest text value kept; makers' notes and padding beyond this are noise.
const MAX_TEXT_CHARS: usize = 256;
/// How many JPEG segments are walked looking for the frame header.
const MAX_JPEG_SEGMENTS: usize = 256;

/// The `exif` mapping for a file of the given (sniffed) MIME type; empty for non-images.
///
/// Keys follow Flextype (PHP's `exif_read_data`): `html`, `Height`, `Width`, `IsColor` first,
/// then the EXIF tag names, with GPS as signed decimal degrees.
pub fn extract(path: &Path, mime: &str) -> Mapping {
    if !is_raster(mime) {
        return Mapping::new();
    }
    let run = || {
        let exif = read_exif(path);
        let mut out = Mapping::new();
        let header = read_header(path).ok().flatten();
        let dims = header
            .map(|h| (h.width, h.height))
            .or_else(|| exif.as_ref().and_then(pixel_dimensions));
        if let Some((w, h)) = dims {
            put(&mut out, "html", format!("width=\"{w}\" height=\"{h}\""));
            put(&mut out, "Height", h);
            put(&mut out, "Width", w);
        }
        if let Some(h) = header {
            put(&mut out, "IsColor", u8::from(h.is_color));
        }
        if let Some(exif) = &exif {
            camera_fields(exif, &mut out);
        }
        out
    };
    match std::panic::catch_unwind(run) {
        Ok(map) => map,
        Err(_) => {
            tracing::warn!(path = %path.display(), "reading image metadata panicked; left empty");
            Mapping::new()
        }
    }
}

/// Image types whose header and EXIF are read; vector and unknown types are not.
fn is_raster(mime: &str) -> bool {
    mime.starts_with("image/") && !mime.starts_with("image/svg")
}

fn put(map: &mut Mapping, key: &str, value: impl Into<Yaml>) {
    map.insert(Yaml::from(key), value.into());
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    width: u32,
    height: u32,
    is_color: bool,
}

/// Dimensions and colour from the image header alone.
fn read_header(path: &Path) -> io::Result<Option<Header>> {
    let mut file = BufReader::new(File::open(path)?);
    if file.fill_buf()?.starts_with(&[0xFF, 0xD8]) {
        // image's JPEG decoder reads the whole file into memory before it looks at the
        // header; the frame header is a few segments in, so walk to it instead.
        return jpeg_header(&mut file);
    }
    let decoder = match image::ImageReader::new(file)
        .with_guessed_format()
        .map_err(io::Error::other)?
        .into_decoder()
    {
        Ok(d) => d,
        // HEIF/AVIF and damaged files: the caller falls back to EXIF's pixel dimensions.
        Err(_) => return Ok(None),
    };
    let (width, height) = decoder.dimensions();
    Ok(Some(Header {
        width,
        height,
        is_color: decoder.color_type().has_color(),
    }))
}

/// Walks JPEG segments to the first start-of-frame marker.
fn jpeg_header(r: &mut impl BufRead) -> io::Result<Option<Header>> {
    let mut soi = [0u8; 2];
    r.read_exact(&mut soi)?;
    for _ in 0..MAX_JPEG_SEGMENTS {
        let mut byte = [0u8; 1];
        r.read_exact(&mut byte)?;
        if byte[0] != 0xFF {
            return Ok(None);
        }
        let mut marker = 0xFF;
        while marker == 0xFF {
            r.read_exact(&mut byte)?;
            marker = byte[0];
        }
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            continue; // standalone markers carry no length
        }
        if matches!(marker, 0xD9 | 0xDA) {
            return Ok(None); // end of image or start of scan before any frame header
        }
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        let len = u16::from_be_bytes(len);
        if len < 2 {
            return Ok(None);
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let mut sof = [0u8; 6];
            r.read_exact(&mut sof)?;
            let height = u32::from(u16::from_be_bytes([sof[1], sof[2]]));
            let width = u32::from(u16::from_be_bytes([sof[3], sof[4]]));
            return Ok(Some(Header {
                width,
                height,
                is_color: sof[5] >= 3,
            }));
        }
        let skip = u64::from(len - 2);
        if io::copy(&mut r.take(skip), &mut io::sink())? < skip {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The EXIF block, or what could be parsed of it; `None` when there is none or it is unusable.
fn read_exif(path: &Path) -> Option<Exif> {
    let mut file = BufReader::new(File::open(path).ok()?);
    let head = file.fill_buf().ok()?;
    let is_tiff = head.starts_with(b"II*\0") || head.starts_with(b"MM\0*");
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let result = if is_tiff {
        let mut data = Vec::new();
        file.by_ref()
            .take(MAX_TIFF_READ)
            .read_to_end(&mut data)
            .ok()?;
        reader.read_raw(data)
    } else {
        file.rewind().ok()?;
        reader.read_from_container(&mut file)
    };
    result
        .or_else(|e| e.distill_partial_result(|_| ()))
        .map_err(|e| {
            if !matches!(e, exif::Error::NotFound(_)) {
                tracing::debug!(path = %path.display(), error = %e, "unreadable EXIF block");
            }
        })
        .ok()
}

/// The EXIF orientation (1–8) of a raw EXIF block that starts at its TIFF header (what a JPEG's
/// APP1 segment holds after `Exif\0\0`); `None` when absent, out of range or unreadable.
pub fn orientation(tiff: &[u8]) -> Option<u8> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let exif = reader
        .read_raw(tiff.to_vec())
        .or_else(|e| e.distill_partial_result(|_| ()))
        .ok()?;
    uint(&exif, Tag::Orientation)
        .filter(|o| (1..=8).contains(o))
        .and_then(|o| u8::try_from(o).ok())
}

fn field(exif: &Exif, tag: Tag) -> Option<&Field> {
    exif.get_field(tag, In::PRIMARY)
}

fn pixel_dimensions(exif: &Exif) -> Option<(u32, u32)> {
    let w = uint(exif, Tag::PixelXDimension)?;
    let h = uint(exif, Tag::PixelYDimension)?;
    (w > 0 && h > 0).then_some((w, h))
}

/// Camera, lens, exposure, dates and position, each only when present and sane.
fn camera_fields(exif: &Exif, out: &mut Mapping) {
    if let Some(o) = uint(exif, Tag::Orientation).filter(|o| (1..=8).contains(o)) {
        put(out, "Orientation", o);
    }
    for (key, tag) in [
        ("Make", Tag::Make),
        ("Model", Tag::Model),
        ("LensMake", Tag::LensMake),
        ("LensModel", Tag::LensModel),
        ("Software", Tag::Software),
        ("Artist", Tag::Artist),
        ("Copyright", Tag::Copyright),
    ] {
        if let Some(s) = text(exif, tag) {
            put(out, key, s);
        }
    }
    if let Some(t) = rational(exif, Tag::ExposureTime).filter(|t| *t > 0.0) {
        put(out, "ExposureTime", exposure_time(t));
    }
    if let Some(f) = rational(exif, Tag::FNumber).filter(|f| *f > 0.0) {
        put(out, "FNumber", round(f, 2));
    }
    if let Some(iso) = uint(exif, Tag::PhotographicSensitivity).filter(|i| *i > 0) {
        put(out, "ISOSpeedRatings", iso);
    }
    if let Some(f) = rational(exif, Tag::FocalLength).filter(|f| *f > 0.0) {
        put(out, "FocalLength", round(f, 2));
    }
    if let Some(f) = uint(exif, Tag::FocalLengthIn35mmFilm).filter(|f| *f > 0) {
        put(out, "FocalLengthIn35mmFilm", f);
    }
    for (key, tag) in [
        ("DateTime", Tag::DateTime),
        ("DateTimeOriginal", Tag::DateTimeOriginal),
        ("DateTimeDigitized", Tag::DateTimeDigitized),
    ] {
        if let Some(s) = text(exif, tag).filter(|s| is_exif_date(s)) {
            put(out, key, s);
        }
    }
    let lat = gps_degrees(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S', 90.0);
    let lon = gps_degrees(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W', 180.0);
    if let (Some(lat), Some(lon)) = (lat, lon) {
        put(out, "GPSLatitude", lat);
        put(out, "GPSLongitude", lon);
        if let Some(alt) = rational(exif, Tag::GPSAltitude) {
            let below_sea = uint(exif, Tag::GPSAltitudeRef) == Some(1);
            put(
                out,
                "GPSAltitude",
                round(if below_sea { -alt } else { alt }, 2),
            );
        }
    }
}

fn uint(exif: &Exif, tag: Tag) -> Option<u32> {
    field(exif, tag)?.value.get_uint(0)
}

/// The first rational of a field as a finite number.
fn rational(exif: &Exif, tag: Tag) -> Option<f64> {
    rationals(&field(exif, tag)?.value)?.first().copied()
}

fn rationals(value: &Value) -> Option<Vec<f64>> {
    let all: Vec<f64> = match value {
        Value::Rational(v) => v
            .iter()
            .filter(|r| r.denom != 0)
            .map(|r| r.to_f64())
            .collect(),
        Value::SRational(v) => v
            .iter()
            .filter(|r| r.denom != 0)
            .map(|r| r.to_f64())
            .collect(),
        _ => return None,
    };
    (!all.is_empty() && all.iter().all(|f| f.is_finite())).then_some(all)
}

/// ASCII (or UTF-8, as many cameras write) text with NULs and padding trimmed.
fn text(exif: &Exif, tag: Tag) -> Option<String> {
    let Value::Ascii(parts) = &field(exif, tag)?.value else {
        return None;
    };
    let raw = parts.first()?;
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        return None;
    }
    Some(s.chars().take(MAX_TEXT_CHARS).collect())
}

/// `YYYY:MM:DD HH:MM:SS`, as EXIF writes it; blank placeholders are dropped.
fn is_exif_date(s: &str) -> bool {
    exif::DateTime::from_ascii(s.as_bytes()).is_ok_and(|d| d.year > 0)
}

/// A shutter speed as photographers write it: `1/250` below a second, `2` or `2.5` above.
fn exposure_time(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("1/{}", (1.0 / seconds).round())
    } else {
        round(seconds, 2).to_string()
    }
}

/// Degrees, minutes, seconds and a hemisphere reference as signed decimal degrees.
fn gps_degrees(exif: &Exif, tag: Tag, ref_tag: Tag, negative: u8, max: f64) -> Option<f64> {
    let dms = rationals(&exif.get_field(tag, In::PRIMARY)?.value)?;
    let degrees =
        dms.first()? + dms.get(1).unwrap_or(&0.0) / 60.0 + dms.get(2).unwrap_or(&0.0) / 3600.0;
    if degrees > max {
        return None;
    }
    let reference = match &exif.get_field(ref_tag, In::PRIMARY)?.value {
        Value::Ascii(parts) => parts.first()?.first().copied()?,
        _ => return None,
    };
    let sign = if reference.eq_ignore_ascii_case(&negative) {
        -1.0
    } else {
        1.0
    };
    Some(round(sign * degrees, 7))
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use exif::experimental::Writer;
    use exif::Rational;
    use std::io::Cursor;

    fn ascii(tag: Tag, s: &str) -> Field {
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![s.as_bytes().to_vec()]),
        }
    }

    fn short(tag: Tag, v: u16) -> Field {
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![v]),
        }
    }

    fn rat(tag: Tag, parts: &[(u32, u32)]) -> Field {
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Rational(
                parts
                    .iter()
                    .map(|&(num, denom)| Rational { num, denom })
                    .collect(),
            ),
        }
    }

    fn camera_exif() -> Vec<Field> {
        vec![
            ascii(Tag::Make, "Canon"),
            ascii(Tag::Model, "Canon EOS 5D Mark IV\0\0"),
            ascii(Tag::LensModel, "EF24-70mm f/2.8L II USM"),
            short(Tag::Orientation, 6),
            rat(Tag::ExposureTime, &[(1, 250)]),
            rat(Tag::FNumber, &[(28, 10)]),
            short(Tag::PhotographicSensitivity, 400),
            rat(Tag::FocalLength, &[(50, 1)]),
            ascii(Tag::DateTimeOriginal, "2020:07:30 14:10:22"),
            ascii(Tag::DateTime, "0000:00:00 00:00:00"),
            ascii(Tag::GPSLatitudeRef, "N"),
            rat(Tag::GPSLatitude, &[(48, 1), (51, 1), (2964, 100)]),
            ascii(Tag::GPSLongitudeRef, "W"),
            rat(Tag::GPSLongitude, &[(2, 1), (17, 1), (4026, 100)]),
            ascii(Tag::GPSAltitudeRef, "\0"),
            rat(Tag::GPSAltitude, &[(355, 10)]),
        ]
    }

    fn tiff_block(fields: &[Field]) -> Vec<u8> {
        let mut writer = Writer::new();
        for f in fields {
            writer.push_field(f);
        }
        let mut out = Cursor::new(Vec::new());
        writer.write(&mut out, false).unwrap();
        out.into_inner()
    }

    /// A real JPEG from the image crate with an APP1 EXIF segment spliced in after SOI.
    fn jpeg_with_exif(width: u32, height: u32, grey: bool, fields: &[Field]) -> Vec<u8> {
        let mut plain = Cursor::new(Vec::new());
        if grey {
            image::GrayImage::from_pixel(width, height, image::Luma([90]))
                .write_to(&mut plain, image::ImageFormat::Jpeg)
                .unwrap();
        } else {
            image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 10]))
                .write_to(&mut plain, image::ImageFormat::Jpeg)
                .unwrap();
        }
        let plain = plain.into_inner();
        if fields.is_empty() {
            return plain;
        }
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff_block(fields));
        let mut out = plain[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend(u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
        out.extend(app1);
        out.extend(&plain[2..]);
        out
    }

    fn extract_bytes(bytes: &[u8], mime: &str) -> Mapping {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        extract(&path, mime)
    }

    fn get<'a>(map: &'a Mapping, key: &str) -> Option<&'a Yaml> {
        map.get(Yaml::from(key))
    }

    #[test]
    fn a_camera_jpeg_yields_flextype_keys_and_exif_fields() {
        let map = extract_bytes(&jpeg_with_exif(32, 24, false, &camera_exif()), "image/jpeg");
        let keys: Vec<&str> = map.keys().filter_map(|k| k.as_str()).collect();
        assert_eq!(&keys[..4], ["html", "Height", "Width", "IsColor"]);
        assert_eq!(get(&map, "html").unwrap(), "width=\"32\" height=\"24\"");
        assert_eq!(get(&map, "Width").unwrap(), 32);
        assert_eq!(get(&map, "Height").unwrap(), 24);
        assert_eq!(get(&map, "IsColor").unwrap(), 1);
        assert_eq!(get(&map, "Orientation").unwrap(), 6);
        assert_eq!(get(&map, "Make").unwrap(), "Canon");
        assert_eq!(get(&map, "Model").unwrap(), "Canon EOS 5D Mark IV");
        assert_eq!(get(&map, "LensModel").unwrap(), "EF24-70mm f/2.8L II USM");
        assert_eq!(get(&map, "ExposureTime").unwrap(), "1/250");
        assert_eq!(get(&map, "FNumber").unwrap(), 2.8);
        assert_eq!(get(&map, "ISOSpeedRatings").unwrap(), 400);
        assert_eq!(get(&map, "FocalLength").unwrap(), 50.0);
        assert_eq!(
            get(&map, "DateTimeOriginal").unwrap(),
            "2020:07:30 14:10:22"
        );
        assert!(get(&map, "DateTime").is_none(), "a blank date is dropped");
        let lat = get(&map, "GPSLatitude").unwrap().as_f64().unwrap();
        let lon = get(&map, "GPSLongitude").unwrap().as_f64().unwrap();
        assert!((lat - 48.858_233_3).abs() < 1e-6, "{lat}");
        assert!((lon + 2.294_516_7).abs() < 1e-6, "west is negative: {lon}");
        assert_eq!(get(&map, "GPSAltitude").unwrap(), 35.5);
    }

    #[test]
    fn a_greyscale_jpeg_is_not_colour() {
        let map = extract_bytes(&jpeg_with_exif(8, 8, true, &[]), "image/jpeg");
        assert_eq!(get(&map, "IsColor").unwrap(), 0);
        assert_eq!(get(&map, "Width").unwrap(), 8);
    }

    #[test]
    fn png_dimensions_and_colour_come_from_its_header() {
        let mut png = Cursor::new(Vec::new());
        image::GrayImage::new(5, 7)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let map = extract_bytes(&png.into_inner(), "image/png");
        assert_eq!(get(&map, "html").unwrap(), "width=\"5\" height=\"7\"");
        assert_eq!(get(&map, "IsColor").unwrap(), 0);
        assert!(get(&map, "Make").is_none());
    }

    #[test]
    fn a_tiff_is_its_own_exif_block() {
        let mut tiff = Cursor::new(Vec::new());
        image::RgbImage::new(3, 2)
            .write_to(&mut tiff, image::ImageFormat::Tiff)
            .unwrap();
        let map = extract_bytes(&tiff.into_inner(), "image/tiff");
        assert_eq!(get(&map, "Width").unwrap(), 3);
        assert_eq!(get(&map, "Height").unwrap(), 2);
        assert_eq!(get(&map, "IsColor").unwrap(), 1);
    }

    #[test]
    fn non_images_and_svg_get_an_empty_mapping() {
        assert!(extract_bytes(b"hello", "text/plain").is_empty());
        assert!(extract_bytes(b"<svg/>", "image/svg+xml").is_empty());
    }

    #[test]
    fn a_broken_exif_block_keeps_the_dimensions() {
        let mut bytes = jpeg_with_exif(16, 9, false, &camera_exif());
        // Scribble over the TIFF header and first IFD inside APP1.
        for b in &mut bytes[12..40] {
            *b = 0xEE;
        }
        let map = extract_bytes(&bytes, "image/jpeg");
        assert_eq!(get(&map, "Width").unwrap(), 16);
        assert!(get(&map, "Make").is_none());
    }

    #[test]
    fn truncated_and_garbage_images_never_panic() {
        let full = jpeg_with_exif(16, 9, false, &camera_exif());
        for cut in [0, 1, 2, 3, 5, 11, 20, 60, full.len() / 2] {
            let _ = extract_bytes(&full[..cut], "image/jpeg");
        }
        let mut png = Cursor::new(Vec::new());
        image::RgbImage::new(4, 4)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let png = png.into_inner();
        for cut in [0, 8, 20, png.len() - 4] {
            let _ = extract_bytes(&png[..cut], "image/png");
        }
        let _ = extract_bytes(&[0xFF; 4096], "image/jpeg");
        let _ = extract_bytes(b"II*\0\xff\xff\xff\xff", "image/tiff");
    }

    #[test]
    fn exposure_times_read_as_photographers_write_them() {
        assert_eq!(exposure_time(1.0 / 250.0), "1/250");
        assert_eq!(exposure_time(0.5), "1/2");
        assert_eq!(exposure_time(2.0), "2");
        assert_eq!(exposure_time(2.5), "2.5");
    }

    #[test]
    fn orientation_is_read_from_a_raw_block_and_only_when_valid() {
        assert_eq!(orientation(&tiff_block(&camera_exif())), Some(6));
        assert_eq!(
            orientation(&tiff_block(&[short(Tag::Orientation, 9)])),
            None
        );
        assert_eq!(orientation(&tiff_block(&[ascii(Tag::Make, "x")])), None);
        assert_eq!(orientation(b"garbage"), None);
    }
}
