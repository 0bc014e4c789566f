use super::{samples::*, *};

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

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    // A valid PNG header declaring 100 000 × 100 000 pixels (40 GB as RGBA), a few bytes long.
    let bomb = bomb_png(100_000, 100_000);
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
    for source in [jpeg(640, 480), png(64, 64)] {
        for cut in [source.len() / 2, 40, 12] {
            let result =
                decode(&source[..cut], &Limits::default()).and_then(|s| variant(&s, JPEG_800));
            assert!(result.is_err(), "{} bytes of {}", cut, source.len());
        }
    }
}

#[test]
fn the_exif_orientation_is_applied_and_no_metadata_is_kept() {
    let source = decode(&with_orientation(&jpeg(400, 200), 6), &Limits::default()).unwrap();
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
