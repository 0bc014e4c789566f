//! Images made into thumbnails, safely: the type is sniffed from the bytes (never a file name or
//! a header), the declared size is checked against a pixel limit before anything is decoded (a
//! 100 000 × 100 000 "decompression bomb" is refused in microseconds, not after 30 GB), the EXIF
//! orientation is applied, each variant is fit into its box keeping the aspect ratio (never
//! enlarged), and re-encoded from pixels — so no metadata (GPS, camera) survives.

use std::io::Cursor;

use fast_image_resize::{
    images::Image as ResizeImage, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// Image types accepted, by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl SourceType {
    pub fn content_type(self) -> &'static str {
        match self {
            SourceType::Jpeg => "image/jpeg",
            SourceType::Png => "image/png",
            SourceType::WebP => "image/webp",
            SourceType::Gif => "image/gif",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            SourceType::Jpeg => ImageFormat::Jpeg,
            SourceType::Png => ImageFormat::Png,
            SourceType::WebP => ImageFormat::WebP,
            SourceType::Gif => ImageFormat::Gif,
        }
    }
}

/// The type of an image from its magic bytes; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<SourceType> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some(SourceType::Jpeg),
        [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n', ..] => Some(SourceType::Png),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(SourceType::WebP),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(SourceType::Gif),
        _ => None,
    }
}

/// What a variant is encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    /// Lossy, `quality` 1–100; transparency is flattened onto white.
    Jpeg { quality: u8 },
    /// Lossless (the `image` crate's WebP encoder has no lossy mode); keeps transparency.
    WebPLossless,
}

impl OutputType {
    pub fn content_type(self) -> &'static str {
        match self {
            OutputType::Jpeg { .. } => "image/jpeg",
            OutputType::WebPLossless => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            OutputType::Jpeg { .. } => "jpg",
            OutputType::WebPLossless => "webp",
        }
    }
}

/// One variant to make: fit into `max_side` × `max_side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantSpec {
    pub max_side: u32,
    pub output: OutputType,
}

/// One variant made.
#[derive(Debug, Clone)]
pub struct Variant {
    pub max_side: u32,
    pub width: u32,
    pub height: u32,
    pub output: OutputType,
    pub bytes: Vec<u8>,
}

impl Variant {
    pub fn content_type(&self) -> &'static str {
        self.output.content_type()
    }

    /// The file extension of its type: `jpg`, `webp`.
    pub fn extension(&self) -> &'static str {
        self.output.extension()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThumbnailError {
    #[error("not a JPEG, PNG, WebP or GIF image (sniffed from its first bytes)")]
    NotAnImage,
    #[error("image declares {width}×{height} pixels, over the limit of {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("image does not decode: {0}")]
    Corrupt(String),
    #[error("variant does not encode: {0}")]
    Encode(String),
}

/// Decoded pixels allowed at most: width × height of the source.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_pixels: u64,
}

impl Default for Limits {
    /// 50 megapixels: any phone photo, ~200 MB of RGBA at most while decoding.
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
        }
    }
}

/// The source decoded (orientation applied), ready for any number of variants.
pub struct Source {
    pub source_type: SourceType,
    image: DynamicImage,
}

impl Source {
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    pub fn height(&self) -> u32 {
        self.image.height()
    }
}

/// Sniffs, checks the declared size against `limits`, decodes and orients.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Source, ThumbnailError> {
    let source_type = sniff(bytes).ok_or(ThumbnailError::NotAnImage)?;
    if source_type == SourceType::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off image with grey and calls it decoded.
        return Err(ThumbnailError::Corrupt(
            "JPEG data ends before its end-of-image marker (truncated)".into(),
        ));
    }
    let corrupt = |e: image::ImageError| ThumbnailError::Corrupt(e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), source_type.format());
    let mut decoder_limits = image::Limits::default();
    // The decoder's own allocation bound too, for what the pixel count does not cover (frames,
    // intermediate buffers): 8 bytes per allowed pixel.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ThumbnailError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(Source { source_type, image })
}

/// Whether a JPEG's image data reaches its end-of-image marker: walks the segments up to the
/// first start-of-scan, then looks for `FF D9` after it (entropy-coded data cannot contain one:
/// a data `FF` is always followed by `00` or a restart marker). An embedded EXIF thumbnail's own
/// end marker sits before the scan, so it does not count.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return false;
        }
        match bytes[at + 1] {
            0xFF => at += 1,
            0xDA => return bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
                at += 2 + length;
            }
        }
    }
    false
}

/// The size that fits `(width, height)` into `max_side` × `max_side`, aspect ratio kept, never
/// larger than the source, at least 1 × 1.
pub fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let side = |n: u32| ((f64::from(n) * scale).round() as u32).clamp(1, max_side);
    (side(width), side(height))
}

/// Makes one variant of `source`.
pub fn variant(source: &Source, spec: VariantSpec) -> Result<Variant, ThumbnailError> {
    let (width, height) = fit(source.width(), source.height(), spec.max_side);
    let keep_alpha =
        matches!(spec.output, OutputType::WebPLossless) && source.image.color().has_alpha();
    let (pixels, pixel_type, channels) = if keep_alpha {
        (source.image.to_rgba8().into_raw(), PixelType::U8x4, 4)
    } else {
        (flatten_onto_white(&source.image), PixelType::U8x3, 3)
    };
    let resized = if (width, height) == (source.width(), source.height()) {
        pixels
    } else {
        let src = ResizeImage::from_vec_u8(source.width(), source.height(), pixels, pixel_type)
            .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
        let mut dst = ResizeImage::new(width, height, pixel_type);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
        dst.into_vec()
    };
    let color = if channels == 4 {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    };
    let mut bytes = Vec::new();
    let encoded = match spec.output {
        OutputType::Jpeg { quality } => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100))
                .encode(&resized, width, height, color)
        }
        OutputType::WebPLossless => image::codecs::webp::WebPEncoder::new_lossless(&mut bytes)
            .encode(&resized, width, height, color),
    };
    encoded.map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(Variant {
        max_side: spec.max_side,
        width,
        height,
        output: spec.output,
        bytes,
    })
}

/// RGB pixels, transparent parts shown over white (as a browser shows a transparent PNG on a
/// white page) rather than over whatever colour the transparent pixels happen to hold.
fn flatten_onto_white(image: &DynamicImage) -> Vec<u8> {
    if !image.color().has_alpha() {
        return image.to_rgb8().into_raw();
    }
    let rgba = image.to_rgba8();
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for pixel in rgba.as_raw().chunks_exact(4) {
        let alpha = u32::from(pixel[3]);
        for &channel in &pixel[..3] {
            rgb.push(((u32::from(channel) * alpha + 255 * (255 - alpha)) / 255) as u8);
        }
    }
    rgb
}

pub mod samples;

#[cfg(test)]
mod tests;
