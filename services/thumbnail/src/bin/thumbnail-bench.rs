//! `make bench-images`' measuring side: makes the `max_side` JPEG thumbnail of each file, on one
//! thread, `rounds` times, and prints thumbnails per second (read and write excluded: files are
//! loaded first and the bytes dropped, as `convert` is timed on warm page cache).
//!
//!   thumbnail-bench <max_side> <quality> <rounds> <file>...

use std::time::Instant;

use sluice_thumbnail::{decode, variant, Limits, OutputType, VariantSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [side, quality, rounds, files @ ..] = args.as_slice() else {
        return Err("usage: thumbnail-bench <max_side> <quality> <rounds> <file>...".into());
    };
    let spec = VariantSpec {
        max_side: side.parse()?,
        output: OutputType::Jpeg {
            quality: quality.parse()?,
        },
    };
    let rounds: usize = rounds.parse()?;
    let sources: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut made = 0usize;
    for _ in 0..rounds {
        for bytes in &sources {
            let source = decode(bytes, &Limits::default())?;
            let thumbnail = variant(&source, spec)?;
            std::hint::black_box(thumbnail.bytes.len());
            made += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{made} {seconds:.3} {:.3}", made as f64 / seconds);
    Ok(())
}
