//! Making one thumbnail from the bytes of one source image: decode, orient, resize, encode.
//!
//! A leaf: bytes in, bytes out; it knows nothing of files, caches or HTTP. Sources whose
//! header declares more than the allowed pixels are refused before any pixel buffer is
//! allocated, and every decoder runs under allocation limits, so a decompression bomb costs
//! a header read. JPEGs are shrunk by 1/2, 1/4 or 1/8 while they are decoded (jpeg-decoder's
//! DCT scaling, like libvips' shrink-on-load) whenever the thumbnail is at least twice
//! smaller still, and the rest is done by `fast_image_resize` (Lanczos3, alpha-aware). The
//! EXIF orientation is applied to the pixels; the output is encoded afresh and carries no
//! metadata at all (no EXIF, no GPS).

use std::io::Cursor;

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageBuffer, ImageDecoder, ImageEncoder};

use super::spec::ThumbSpec;

/// JPEG quality of thumbnails made from JPEGs.
const JPEG_QUALITY: u8 = 85;

/// The image types thumbnails are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Jpeg,
    Png,
    Gif,
    WebP,
}

/// What a thumbnail is encoded as: the source's own format, except GIF, whose first frame
/// becomes a PNG (lossless, keeps transparency, no palette quantisation needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Jpeg,
    Png,
    WebP,
}

impl SourceKind {
    /// The kind of a sniffed MIME type; `None` for anything thumbnails are not made from.
    pub fn of_mime(mime: &str) -> Option<SourceKind> {
        match mime {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(SourceKind::Jpeg),
            "image/png" => Some(SourceKind::Png),
            "image/gif" => Some(SourceKind::Gif),
            "image/webp" => Some(SourceKind::WebP),
            _ => None,
        }
    }

    pub fn output(self) -> OutputFormat {
        match self {
            SourceKind::Jpeg => OutputFormat::Jpeg,
            SourceKind::Png | SourceKind::Gif => OutputFormat::Png,
            SourceKind::WebP => OutputFormat::WebP,
        }
    }
}

impl OutputFormat {
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::WebP => "image/webp",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::WebP => "webp",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the source is {width}x{height}, more than the {max} pixels allowed")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("decoding the source would take {needed} bytes, more than the {max} allowed")]
    TooMuchMemory { needed: u64, max: u64 },
    #[error("the source cannot be decoded: {0}")]
    Undecodable(String),
    #[error("the thumbnail cannot be made: {0}")]
    Failed(String),
}

fn undecodable(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Undecodable(e.to_string())
}

fn failed(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Failed(e.to_string())
}

/// Makes the thumbnail `spec` of a source image of `kind` whose whole content is `bytes`.
///
/// `max_pixels` bounds the source's declared width × height. A panic inside a decoder or
/// encoder (hostile input) is caught and reported as an undecodable source.
pub fn make(
    bytes: &[u8],
    kind: SourceKind,
    spec: ThumbSpec,
    max_pixels: u64,
) -> Result<Vec<u8>, GenerateError> {
    std::panic::catch_unwind(|| make_inner(bytes, kind, spec, max_pixels))
        .unwrap_or_else(|_| Err(GenerateError::Undecodable("the decoder panicked".into())))
}

fn make_inner(
    bytes: &[u8],
    kind: SourceKind,
    spec: ThumbSpec,
    max_pixels: u64,
) -> Result<Vec<u8>, GenerateError> {
    let (image, full) = match kind {
        SourceKind::Jpeg => decode_jpeg(bytes, spec, max_pixels)?,
        _ => decode_other(bytes, kind, max_pixels)?,
    };
    let (w, h) = spec.output_size(full.0, full.1);
    let (pixels, color) = resize(image, spec, w, h)?;
    encode(&pixels, w, h, color, kind.output())
}

fn check_pixels(width: u32, height: u32, max: u64) -> Result<(), GenerateError> {
    if width == 0 || height == 0 {
        return Err(undecodable("the image has no pixels"));
    }
    if u64::from(width) * u64::from(height) > max {
        return Err(GenerateError::TooManyPixels { width, height, max });
    }
    Ok(())
}

/// The most bytes one decode may hold: four per pixel of `max_source_pixels`, so a source
/// within the pixel limit decodes as 8-bit RGBA, and a wider layout (16 bits a channel) or a
/// decoder that keeps full-size buffers must be that much smaller.
fn decode_budget(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(4)
}

fn check_budget(needed: u64, max_pixels: u64) -> Result<(), GenerateError> {
    let max = decode_budget(max_pixels);
    if needed > max {
        return Err(GenerateError::TooMuchMemory { needed, max });
    }
    Ok(())
}

/// Width and height as displayed once `o` is applied.
fn oriented((w, h): (u32, u32), o: Orientation) -> (u32, u32) {
    match o {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (h, w),
        _ => (w, h),
    }
}

/// Decodes a JPEG, shrinking by DCT scaling as far as the thumbnail allows; returns the
/// oriented image and the oriented size of the whole source.
fn decode_jpeg(
    bytes: &[u8],
    spec: ThumbSpec,
    max_pixels: u64,
) -> Result<(DynamicImage, (u32, u32)), GenerateError> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(undecodable)?;
    let info = decoder
        .info()
        .ok_or_else(|| undecodable("no frame header"))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_pixels(w, h, max_pixels)?;
    // The APP1 segment comes before the frame header, so read_info has seen it.
    let orientation = decoder
        .exif_data()
        .and_then(crate::exif::orientation)
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let full = oriented((w, h), orientation);
    // Leave at least a factor of two to the resampling filter, as libvips does: DCT
    // scaling is a box filter and alone would alias fine detail.
    let scale = spec.scale(full.0, full.1);
    let shrink = [8u32, 4, 2]
        .into_iter()
        .find(|&k| f64::from(k) * 2.0 * scale <= 1.0)
        .unwrap_or(1);
    if shrink > 1 {
        let side = |v: u32| u16::try_from(v.div_ceil(shrink)).unwrap_or(u16::MAX);
        decoder.scale(side(w), side(h)).map_err(undecodable)?;
    }
    // Progressive and lossless JPEGs are decoded through full-size buffers of 16-bit
    // coefficients, whatever the scaling: counted before any of them is allocated.
    let pixel_bytes = info.pixel_format.pixel_bytes() as u64;
    let needed = match info.coding_process {
        jpeg_decoder::CodingProcess::DctSequential => {
            let k = u64::from(shrink);
            u64::from(w).div_ceil(k) * u64::from(h).div_ceil(k) * pixel_bytes
        }
        _ => u64::from(w) * u64::from(h) * pixel_bytes * 2,
    };
    check_budget(needed, max_pixels)?;
    decoder.set_max_decoding_buffer_size(
        usize::try_from(decode_budget(max_pixels)).unwrap_or(usize::MAX),
    );
    let pixels = decoder.decode().map_err(undecodable)?;
    let info = decoder
        .info()
        .ok_or_else(|| undecodable("no frame header"))?;
    let (dw, dh) = (u32::from(info.width), u32::from(info.height));
    let short = || undecodable("fewer pixels than the header declares");
    let mut image = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(dw, dh, pixels).ok_or_else(short)?)
        }
        jpeg_decoder::PixelFormat::L16 => {
            let high: Vec<u8> = pixels
                .chunks_exact(2)
                .map(|p| (u16::from_ne_bytes([p[0], p[1]]) >> 8) as u8)
                .collect();
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(dw, dh, high).ok_or_else(short)?)
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(dw, dh, pixels).ok_or_else(short)?)
        }
        jpeg_decoder::PixelFormat::CMYK32 => DynamicImage::ImageRgb8(
            ImageBuffer::from_raw(dw, dh, cmyk_to_rgb(&pixels)).ok_or_else(short)?,
        ),
    };
    image.apply_orientation(orientation);
    Ok((image, full))
}

/// jpeg-decoder hands out Adobe CMYK as stored, i.e. inverted: each channel is "how much is
/// left", so a colour is the channel times the key.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = u16::from(p[3]);
        for &c in &p[..3] {
            out.push((u16::from(c) * k / 255) as u8);
        }
    }
    out
}

/// Decodes a PNG, GIF (first frame) or WebP (first frame) under image's allocation limits.
fn decode_other(
    bytes: &[u8],
    kind: SourceKind,
    max_pixels: u64,
) -> Result<(DynamicImage, (u32, u32)), GenerateError> {
    let format = match kind {
        SourceKind::Png => image::ImageFormat::Png,
        SourceKind::Gif => image::ImageFormat::Gif,
        SourceKind::WebP => image::ImageFormat::WebP,
        SourceKind::Jpeg => image::ImageFormat::Jpeg,
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(decode_budget(max_pixels).max(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, max_pixels)?;
    // The decoded layout's size (16-bit RGBA takes eight bytes a pixel), before any of it
    // is allocated.
    check_budget(decoder.total_bytes(), max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    image.apply_orientation(orientation);
    let full = (image.width(), image.height());
    Ok((image, full))
}

/// Resamples the part of `image` the spec keeps to `w`×`h`; returns the pixels and their
/// layout (grey, RGB or RGBA, 8 bits each).
fn resize(
    image: DynamicImage,
    spec: ThumbSpec,
    w: u32,
    h: u32,
) -> Result<(Vec<u8>, ExtendedColorType), GenerateError> {
    let image = match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => {
            image
        }
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other if !other.color().has_color() => DynamicImage::ImageLuma8(other.to_luma8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    };
    let (pixel_type, color) = match &image {
        DynamicImage::ImageLuma8(_) => (fr::PixelType::U8, ExtendedColorType::L8),
        DynamicImage::ImageRgba8(_) => (fr::PixelType::U8x4, ExtendedColorType::Rgba8),
        _ => (fr::PixelType::U8x3, ExtendedColorType::Rgb8),
    };
    let (sw, sh) = (image.width(), image.height());
    let region = spec.region(sw, sh);
    let src =
        fr::images::Image::from_vec_u8(sw, sh, image.into_bytes(), pixel_type).map_err(failed)?;
    let mut dst = fr::images::Image::new(w, h, pixel_type);
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3))
        .crop(region.left, region.top, region.width, region.height);
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(failed)?;
    Ok((dst.into_vec(), color))
}

fn encode(
    pixels: &[u8],
    w: u32,
    h: u32,
    color: ExtendedColorType,
    format: OutputFormat,
) -> Result<Vec<u8>, GenerateError> {
    let mut out = Vec::new();
    match format {
        OutputFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
                .write_image(pixels, w, h, color)
        }
        OutputFormat::Png => {
            image::codecs::png::PngEncoder::new(&mut out).write_image(pixels, w, h, color)
        }
        OutputFormat::WebP => image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .write_image(pixels, w, h, color),
    }
    .map_err(failed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(image: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn a_large_jpeg_is_shrunk_while_decoded_and_comes_out_at_the_asked_size() {
        let src = encoded(
            DynamicImage::ImageRgb8(image::RgbImage::from_fn(2400, 1600, |x, y| {
                image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
            })),
            image::ImageFormat::Jpeg,
        );
        let spec: ThumbSpec = "256x256f".parse().unwrap();
        let (img, full) = decode_jpeg(&src, spec, u64::MAX).unwrap();
        assert_eq!(full, (2400, 1600));
        // 256/2400 leaves room for a 1/4 shrink but not 1/8 (a factor of two stays for Lanczos).
        assert_eq!((img.width(), img.height()), (600, 400));
        let out = make(&src, SourceKind::Jpeg, spec, u64::MAX).unwrap();
        assert_eq!(dims(&out), (256, 171));
    }

    #[test]
    fn a_gif_becomes_a_png_with_its_transparency() {
        let src = encoded(
            DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
                40,
                20,
                image::Rgba([255, 0, 0, 0]),
            )),
            image::ImageFormat::Gif,
        );
        let out = make(&src, SourceKind::Gif, "10x0".parse().unwrap(), u64::MAX).unwrap();
        assert_eq!(image::guess_format(&out).unwrap(), image::ImageFormat::Png);
        let img = image::load_from_memory(&out).unwrap().to_rgba8();
        assert_eq!(img.dimensions(), (10, 5));
        assert_eq!(img.get_pixel(5, 2)[3], 0);
    }

    #[test]
    fn a_webp_stays_a_webp() {
        let src = encoded(
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([0, 0, 255]))),
            image::ImageFormat::WebP,
        );
        let out = make(&src, SourceKind::WebP, "32x32".parse().unwrap(), u64::MAX).unwrap();
        assert_eq!(image::guess_format(&out).unwrap(), image::ImageFormat::WebP);
        assert_eq!(dims(&out), (32, 32));
    }

    #[test]
    fn too_many_pixels_are_refused_from_the_header() {
        let src = encoded(
            DynamicImage::ImageLuma8(image::GrayImage::new(100, 100)),
            image::ImageFormat::Png,
        );
        let err = make(&src, SourceKind::Png, "10x10".parse().unwrap(), 9_999).unwrap_err();
        assert!(matches!(err, GenerateError::TooManyPixels { .. }), "{err}");
    }

    #[test]
    fn a_wide_pixel_layout_within_the_pixel_limit_is_refused_by_its_decoded_size() {
        let spec = "10x10".parse().unwrap();
        let wide = encoded(
            DynamicImage::ImageRgba16(image::ImageBuffer::new(100, 100)),
            image::ImageFormat::Png,
        );
        let err = make(&wide, SourceKind::Png, spec, 10_000).unwrap_err();
        assert!(matches!(err, GenerateError::TooMuchMemory { .. }), "{err}");
        let narrow = encoded(
            DynamicImage::ImageRgba8(image::RgbaImage::new(100, 100)),
            image::ImageFormat::Png,
        );
        assert!(make(&narrow, SourceKind::Png, spec, 10_000).is_ok());
    }

    #[test]
    fn garbage_is_undecodable_for_every_kind() {
        for kind in [
            SourceKind::Jpeg,
            SourceKind::Png,
            SourceKind::Gif,
            SourceKind::WebP,
        ] {
            let err = make(
                b"\xff\xd8\xff garbage",
                kind,
                "10x10".parse().unwrap(),
                1 << 20,
            );
            assert!(
                matches!(err, Err(GenerateError::Undecodable(_))),
                "{kind:?}"
            );
        }
    }
}
