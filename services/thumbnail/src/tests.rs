use image::{ImageEncoder, Rgb, RgbImage};

use super::*;

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .write_image(
            image.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    bytes
}

const JPEG_800: VariantSpec = VariantSpec {
    max_side: 800,
    output: OutputType::Jpeg { quality: 80 },
};

#[test]
fn the_type_comes_from_the_bytes() {
    assert_eq!(sniff(&jpeg(4, 4)), Some(SourceType::Jpeg));
    assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(SourceType::Png));
    assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(SourceType::WebP));
    assert_eq!(sniff(b"GIF89a...."), Some(SourceType::Gif));
    assert_eq!(sniff(b"<svg xmlns=...>"), None);
    assert_eq!(
        decode(b"just text, named photo.jpg", &Limits::default()).err(),
        Some(ThumbnailError::NotAnImage)
    );
}

#[test]
fn a_variant_fits_its_box_keeping_the_aspect_ratio_and_never_grows() {
    let source = decode(&jpeg(1200, 900), &Limits::default()).unwrap();
    let big = variant(&source, JPEG_800).unwrap();
    assert_eq!((big.width, big.height), (800, 600));
    let decoded = image::load_from_memory(&big.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (800, 600));
    let small = variant(
        &source,
        VariantSpec {
            max_side: 200,
            output: OutputType::WebPLossless,
        },
    )
    .unwrap();
    assert_eq!((small.width, small.height), (200, 150));
    assert_eq!(sniff(&small.bytes), Some(SourceType::WebP));

    let tiny = decode(&jpeg(100, 50), &Limits::default()).unwrap();
    let kept = variant(&tiny, JPEG_800).unwrap();
    assert_eq!((kept.width, kept.height), (100, 50));
    assert_eq!(fit(3000, 4000, 800), (600, 800));
    assert_eq!(fit(10_000, 1, 800), (800, 1));
}

/// CRC-32 (IEEE) of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    chunk
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    // A valid PNG header declaring 100 000 × 100 000 pixels (40 GB as RGBA), a few bytes long.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    bomb.extend(png_chunk(b"IHDR", &ihdr));
    bomb.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    bomb.extend(png_chunk(b"IEND", &[]));
    let started = std::time::Instant::now();
    let refused = decode(&bomb, &Limits::default()).err().unwrap();
    assert!(
        matches!(
            refused,
            ThumbnailError::TooManyPixels { .. } | ThumbnailError::Corrupt(_)
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("100000"), "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    // The same check on a real image over a lowered limit.
    let limited = decode(
        &jpeg(400, 300),
        &Limits {
            max_pixels: 100_000,
        },
    );
    assert_eq!(
        limited.err(),
        Some(ThumbnailError::TooManyPixels {
            width: 400,
            height: 300,
            limit: 100_000
        })
    );
}

#[test]
fn a_truncated_image_is_an_error_not_a_panic() {
    for source in [jpeg(640, 480), {
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(
                &vec![128u8; 64 * 64 * 3],
                64,
                64,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        png
    }] {
        for cut in [source.len() / 2, 40, 12] {
            let result =
                decode(&source[..cut], &Limits::default()).and_then(|s| variant(&s, JPEG_800));
            assert!(result.is_err(), "{} bytes of {}", cut, source.len());
        }
    }
}

/// `jpeg` with an EXIF APP1 segment saying "rotate 90° clockwise to display" (orientation 6).
fn jpeg_with_orientation(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let plain = jpeg(width, height);
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend_from_slice(&plain[2..]);
    out
}

#[test]
fn the_exif_orientation_is_applied_and_no_metadata_is_kept() {
    let source = decode(&jpeg_with_orientation(400, 200, 6), &Limits::default()).unwrap();
    assert_eq!(
        (source.width(), source.height()),
        (200, 400),
        "turned upright"
    );
    let made = variant(&source, JPEG_800).unwrap();
    assert_eq!((made.width, made.height), (200, 400));
    assert!(
        !made.bytes.windows(4).any(|w| w == b"Exif"),
        "metadata stripped"
    );
}
