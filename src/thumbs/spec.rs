//! `ThumbSpec`: PocketBase's thumbnail grammar, parsed once at the boundary.
//!
//! `WxH` crops to the centre, `WxHt` to the top, `WxHb` to the bottom, `WxHf` fits inside,
//! `0xH` and `Wx0` keep the aspect ratio. Owns the grammar, the canonical text form (used in
//! cache names, ETags and config) and the geometry: the output size for a source size and the
//! part of the source that is kept. Knows nothing of pixels, files or HTTP.

use std::fmt;
use std::str::FromStr;

/// The largest width or height a thumbnail may have.
pub const MAX_SIDE: u32 = 4096;

/// Which part of the source a crop keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anchor {
    Center,
    Top,
    Bottom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Exactly `width`×`height`, cropping what does not fit (`WxH`, `WxHt`, `WxHb`).
    Crop(Anchor),
    /// Inside `width`×`height`, aspect kept, never enlarged (`WxHf`).
    Fit,
    /// One side given, the other follows the aspect ratio (`Wx0`, `0xH`).
    KeepAspect,
}

/// A valid thumbnail request: sides of at most [`MAX_SIDE`], at most one of them 0 and only
/// without a suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThumbSpec {
    width: u32,
    height: u32,
    mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("expected WxH, WxHt, WxHb, WxHf, 0xH or Wx0")]
    Grammar,
    #[error("a side may be at most {MAX_SIDE} pixels")]
    TooLarge,
}

/// A rectangle of the source, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl ThumbSpec {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The output size for a source of `sw`×`sh` (as displayed, orientation applied).
    pub fn output_size(&self, sw: u32, sh: u32) -> (u32, u32) {
        let (sw, sh) = (f64::from(sw.max(1)), f64::from(sh.max(1)));
        let side = |v: f64| (v.round() as u32).clamp(1, MAX_SIDE);
        match self.mode {
            Mode::Crop(_) => (self.width, self.height),
            Mode::KeepAspect if self.height == 0 => {
                (self.width, side(sh * f64::from(self.width) / sw))
            }
            Mode::KeepAspect => (side(sw * f64::from(self.height) / sh), self.height),
            Mode::Fit => {
                let scale = (f64::from(self.width) / sw)
                    .min(f64::from(self.height) / sh)
                    .min(1.0);
                (side(sw * scale), side(sh * scale))
            }
        }
    }

    /// How much the source is scaled down (output side ÷ source side) for a source of
    /// `sw`×`sh`: what decides how far a JPEG may be shrunk while it is decoded.
    pub fn scale(&self, sw: u32, sh: u32) -> f64 {
        let (ow, oh) = self.output_size(sw, sh);
        (f64::from(ow) / f64::from(sw.max(1))).max(f64::from(oh) / f64::from(sh.max(1)))
    }

    /// The part of a `sw`×`sh` source that ends up in the thumbnail.
    pub fn region(&self, sw: u32, sh: u32) -> Region {
        let (fw, fh) = (f64::from(sw), f64::from(sh));
        let whole = Region {
            left: 0.0,
            top: 0.0,
            width: fw,
            height: fh,
        };
        let Mode::Crop(anchor) = self.mode else {
            return whole;
        };
        let scale = (f64::from(self.width) / fw).max(f64::from(self.height) / fh);
        let (width, height) = (
            (f64::from(self.width) / scale).min(fw),
            (f64::from(self.height) / scale).min(fh),
        );
        let top = match anchor {
            Anchor::Top => 0.0,
            Anchor::Center => (fh - height) / 2.0,
            Anchor::Bottom => fh - height,
        };
        Region {
            left: (fw - width) / 2.0,
            top,
            width,
            height,
        }
    }
}

impl FromStr for ThumbSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (w, rest) = s.split_once('x').ok_or(SpecError::Grammar)?;
        let (h, suffix) = match rest.as_bytes().last() {
            Some(b't' | b'b' | b'f') => rest.split_at(rest.len() - 1),
            _ => (rest, ""),
        };
        let number = |d: &str| {
            if d.is_empty() || d.len() > 5 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SpecError::Grammar);
            }
            let n: u32 = d.parse().map_err(|_| SpecError::Grammar)?;
            if n > MAX_SIDE {
                return Err(SpecError::TooLarge);
            }
            Ok(n)
        };
        let (width, height) = (number(w)?, number(h)?);
        let mode = match (width, height, suffix) {
            (0, 0, _) => return Err(SpecError::Grammar),
            (0, _, "") | (_, 0, "") => Mode::KeepAspect,
            (0, _, _) | (_, 0, _) => return Err(SpecError::Grammar),
            (_, _, "t") => Mode::Crop(Anchor::Top),
            (_, _, "b") => Mode::Crop(Anchor::Bottom),
            (_, _, "f") => Mode::Fit,
            _ => Mode::Crop(Anchor::Center),
        };
        Ok(ThumbSpec {
            width,
            height,
            mode,
        })
    }
}

/// The canonical form: `100x100`, `100x100t`, `600x600f`, `300x0`.
impl fmt::Display for ThumbSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = match self.mode {
            Mode::Crop(Anchor::Center) | Mode::KeepAspect => "",
            Mode::Crop(Anchor::Top) => "t",
            Mode::Crop(Anchor::Bottom) => "b",
            Mode::Fit => "f",
        };
        write!(f, "{}x{}{suffix}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ThumbSpec {
        s.parse().unwrap()
    }

    #[test]
    fn every_form_of_the_grammar_parses_and_prints_back() {
        for s in [
            "100x100", "100x300t", "100x300b", "600x600f", "0x300", "300x0",
        ] {
            assert_eq!(spec(s).to_string(), s);
        }
        assert_eq!(spec("100x300t").mode(), Mode::Crop(Anchor::Top));
        assert_eq!(spec("100x300b").mode(), Mode::Crop(Anchor::Bottom));
        assert_eq!(spec("100x300").mode(), Mode::Crop(Anchor::Center));
        assert_eq!(spec("100x300f").mode(), Mode::Fit);
        assert_eq!(spec("0x300").mode(), Mode::KeepAspect);
    }

    #[test]
    fn leading_zeros_name_the_same_size() {
        assert_eq!(spec("0100x0100"), spec("100x100"));
        assert_eq!(spec("0100x0100").to_string(), "100x100");
    }

    #[test]
    fn anything_else_is_refused() {
        for s in [
            "",
            "abc",
            "100",
            "x100",
            "100x",
            "0x0",
            "0x0f",
            "100x100x",
            "100X100",
            "100x100c",
            "-1x100",
            "+1x100",
            " 100x100",
            "100x100 ",
            "1e2x100",
            "0x300f",
            "300x0t",
            "100x100tt",
            "99999999999x1",
        ] {
            assert!(s.parse::<ThumbSpec>().is_err(), "{s:?} parsed");
        }
        assert_eq!("5000x100".parse::<ThumbSpec>(), Err(SpecError::TooLarge));
    }

    #[test]
    fn output_sizes_follow_the_mode() {
        assert_eq!(spec("100x100").output_size(1200, 800), (100, 100));
        assert_eq!(spec("300x0").output_size(1200, 800), (300, 200));
        assert_eq!(spec("0x300").output_size(1200, 800), (450, 300));
        assert_eq!(spec("600x600f").output_size(1200, 800), (600, 400));
        assert_eq!(spec("600x600f").output_size(800, 1200), (400, 600));
    }

    #[test]
    fn fit_never_enlarges_a_small_source() {
        assert_eq!(spec("600x600f").output_size(120, 80), (120, 80));
    }

    #[test]
    fn keep_aspect_of_an_extreme_panorama_is_at_least_one_pixel() {
        assert_eq!(spec("300x0").output_size(100_000, 10), (300, 1));
    }

    #[test]
    fn crops_keep_the_centre_the_top_or_the_bottom() {
        let r = spec("100x100").region(1200, 800);
        assert_eq!(
            (r.left, r.top, r.width, r.height),
            (200.0, 0.0, 800.0, 800.0)
        );
        let r = spec("100x100").region(800, 1200);
        assert_eq!(
            (r.left, r.top, r.width, r.height),
            (0.0, 200.0, 800.0, 800.0)
        );
        assert_eq!(spec("100x100t").region(800, 1200).top, 0.0);
        assert_eq!(spec("100x100b").region(800, 1200).top, 400.0);
        let whole = spec("600x600f").region(800, 1200);
        assert_eq!((whole.width, whole.height), (800.0, 1200.0));
    }

    #[test]
    fn scale_is_the_larger_ratio_of_output_to_source() {
        // 256x171: the rounded side decides by a hair.
        assert!((spec("256x256f").scale(6000, 4000) - 171.0 / 4000.0).abs() < 1e-9);
        assert!((spec("100x100").scale(1200, 800) - 0.125).abs() < 1e-9);
    }
}
