#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use image::{GenericImageView, ImageDecoder, Rgb, RgbImage, Rgba, RgbaImage};

use super::*;

const MB: usize = 1024 * 1024;

fn rules() -> ImageRules {
    ImageRules::materials()
}

/// A deterministic pattern with detail in every channel, so a pixel-exact
/// comparison means something.
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x * 7 + y * 13) % 251) as u8,
        ])
    })
}

/// Pseudo-random pixels: they do not compress, so the file is large enough
/// to cut in the middle of its image data.
fn noise(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32;
    RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        Rgb([a, b, c])
    })
}

fn encode(img: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn png(img: RgbImage) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(img), image::ImageFormat::Png)
}

fn jpeg(img: RgbImage) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(img), image::ImageFormat::Jpeg)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    chunk
}

/// A PNG whose header declares `w`×`h` (8-bit RGB) followed by a token
/// image-data chunk: tiny on disk, huge if anyone allocated for it.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut file = PNG_SIGNATURE.to_vec();
    file.extend(png_chunk(b"IHDR", &ihdr));
    file.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00]));
    file.extend(png_chunk(b"IEND", &[]));
    file
}

/// Inserts JPEG segments (APP1 EXIF with the given orientation and a
/// marker, then a comment with the marker) right after SOI.
fn with_exif_and_comment(jpeg: &[u8], orientation: u16, marker: &[u8]) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    tiff.extend_from_slice(marker); // stands in for GPS data, a maker note…
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend(tiff);

    let segment = |marker_byte: u8, payload: &[u8]| {
        let mut s = vec![0xff, marker_byte];
        s.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        s.extend_from_slice(payload);
        s
    };
    let mut out = jpeg[..2].to_vec();
    out.extend(segment(0xe1, &app1));
    out.extend(segment(0xfe, marker));
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn a_text_file_named_png_is_not_an_image() {
    let text = b"This is a text file that was renamed to seal.png\n";
    assert_eq!(
        sanitize_image(text, &rules()),
        Err(UploadRefusal::NotAnImage)
    );
    for other in [
        &b"<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>"[..],
        b"%PDF-1.7\n",
        b"BM\x36\x00\x00\x00",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"\x89PNG",
        b"\xff\xd8",
    ] {
        assert_eq!(
            sanitize_image(other, &rules()),
            Err(UploadRefusal::NotAnImage)
        );
    }
    assert_eq!(sanitize_image(b"", &rules()), Err(UploadRefusal::Empty));
}

#[test]
fn gif_is_refused() {
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    assert_eq!(
        sanitize_image(gif, &rules()),
        Err(UploadRefusal::NotAnImage)
    );
}

#[test]
fn a_20_mb_file_is_refused_by_its_length() {
    // A PNG signature and zeros: were it decoded it would be "damaged", so
    // "too large" shows the length was checked first.
    let mut big = PNG_SIGNATURE.to_vec();
    big.resize(20 * MB, 0);
    let refusal = sanitize_image(&big, &rules()).unwrap_err();
    assert_eq!(
        refusal,
        UploadRefusal::TooLarge {
            size: 20 * MB,
            limit: 5 * MB
        }
    );
    let msg = refusal.message_zh();
    assert!(msg.contains("20 MB") && msg.contains("5 MB"), "{msg}");
    // One byte over is over.
    let mut just_over = PNG_SIGNATURE.to_vec();
    just_over.resize(5 * MB + 1, 0);
    assert!(matches!(
        sanitize_image(&just_over, &rules()),
        Err(UploadRefusal::TooLarge { .. })
    ));
}

#[test]
fn megabytes_never_round_down_to_the_limit() {
    assert_eq!(megabytes(5 * MB), "5 MB");
    assert_eq!(megabytes(5 * MB + 1), "5.1 MB");
    assert_eq!(megabytes(MB / 2), "0.5 MB");
}

#[test]
fn png_with_trailing_payload_is_cleaned() {
    let original = pattern(320, 400);
    let mut upload = png(original.clone());
    // A text chunk and a payload after IEND, both carrying a marker.
    let iend = upload.len() - 12;
    let text = png_chunk(b"tEXt", b"Comment\x00<script>MARKER-TEXT</script>");
    upload.splice(iend..iend, text);
    upload.extend_from_slice(b"PK\x03\x04 MARKER-TRAILING polyglot zip <?php ?>");

    let clean = sanitize_image(&upload, &rules()).unwrap();
    assert_eq!(clean.format(), ImageFormat::Png);
    assert_eq!((clean.width(), clean.height()), (320, 400));
    let out = clean.bytes();
    assert!(!contains(out, b"MARKER"));
    assert!(out.starts_with(PNG_SIGNATURE));
    assert!(
        out.ends_with(&png_chunk(b"IEND", &[])),
        "nothing after IEND"
    );
    let decoded = image::load_from_memory_with_format(out, image::ImageFormat::Png).unwrap();
    assert_eq!(decoded.to_rgb8(), original, "pixels unchanged");
}

#[test]
fn transparent_png_keeps_its_alpha() {
    // Seals are often cut out on a transparent background.
    let seal = RgbaImage::from_fn(300, 300, |x, y| {
        let inside = (x as i64 - 150).pow(2) + (y as i64 - 150).pow(2) < 120 * 120;
        if inside {
            Rgba([220, 20, 30, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    let upload = encode(
        DynamicImage::ImageRgba8(seal.clone()),
        image::ImageFormat::Png,
    );
    let clean = sanitize_image(&upload, &rules()).unwrap();
    let decoded = image::load_from_memory(clean.bytes()).unwrap();
    assert_eq!(decoded.to_rgba8(), seal);
}

#[test]
fn jpeg_loses_exif_and_comments_but_keeps_its_orientation() {
    let upload = with_exif_and_comment(&jpeg(pattern(400, 320)), 6, b"MARKER-GPS-31.2304N");
    // The fixture is what a phone writes: a decoder sees the EXIF and the
    // "rotate 90° clockwise" orientation.
    let mut decoder = ImageReader::with_format(Cursor::new(&upload), image::ImageFormat::Jpeg)
        .into_decoder()
        .unwrap();
    assert!(decoder.exif_metadata().unwrap().is_some());
    assert_eq!(decoder.orientation().unwrap(), Orientation::Rotate90);

    let clean = sanitize_image(&upload, &rules()).unwrap();
    assert_eq!(clean.format(), ImageFormat::Jpeg);
    let out = clean.bytes();
    assert!(!contains(out, b"Exif"));
    assert!(!contains(out, b"MARKER"));
    assert!(
        !out.windows(2).any(|w| w == [0xff, 0xe1]),
        "no APP1 segment"
    );
    assert!(out.ends_with(&[0xff, 0xd9]), "nothing after EOI");
    // The pixels were turned upright before the orientation tag was lost.
    assert_eq!((clean.width(), clean.height()), (320, 400));
    let mut decoder = ImageReader::with_format(Cursor::new(out), image::ImageFormat::Jpeg)
        .into_decoder()
        .unwrap();
    assert_eq!(decoder.exif_metadata().unwrap(), None);
    let decoded = DynamicImage::from_decoder(decoder).unwrap();
    assert_eq!(decoded.dimensions(), (320, 400));
}

#[test]
fn jpeg_trailing_bytes_are_dropped() {
    let mut upload = jpeg(pattern(300, 300));
    upload.extend_from_slice(b"MARKER-AFTER-EOI");
    let clean = sanitize_image(&upload, &rules()).unwrap();
    assert!(!contains(clean.bytes(), b"MARKER"));
    assert!(clean.bytes().ends_with(&[0xff, 0xd9]));
}

#[test]
fn the_short_side_must_be_300_pixels() {
    for (w, h) in [(200, 800), (800, 200), (299, 299)] {
        let refusal = sanitize_image(&png(pattern(w, h)), &rules()).unwrap_err();
        assert_eq!(
            refusal,
            UploadRefusal::TooSmall {
                width: w,
                height: h,
                min_short_side: 300
            }
        );
        let msg = refusal.message_zh();
        assert!(
            msg.contains(&format!("{w} × {h}")) && msg.contains("300"),
            "{msg}"
        );
    }
    assert!(sanitize_image(&jpeg(pattern(300, 800)), &rules()).is_ok());
}

#[test]
fn absurd_dimensions_are_refused_before_allocating() {
    // Each of these would need gigabytes if decoded.
    for (w, h) in [
        (20_000, 400),
        (400, 60_000),
        (9_000, 9_000),
        (u32::MAX / 2, 1_000),
    ] {
        let refusal = sanitize_image(&png_declaring(w, h), &rules()).unwrap_err();
        assert_eq!(
            refusal,
            UploadRefusal::DimensionsTooLarge {
                width: w,
                height: h,
                max_side: 10_000,
                max_pixels: 40_000_000
            }
        );
        let msg = refusal.message_zh();
        assert!(msg.contains("10000") && msg.contains("4000 万"), "{msg}");
    }
    // The decoded-size guard, on its own.
    let tight = ImageRules {
        max_decoded_bytes: 300 * 300 * 3 - 1,
        ..rules()
    };
    assert!(matches!(
        sanitize_image(&png(pattern(300, 300)), &tight),
        Err(UploadRefusal::TooDeep { .. })
    ));
}

#[test]
fn damaged_images_are_refused() {
    let whole = png(noise(400, 400));
    for cut in [whole.len() / 2, whole.len() - 13, 40] {
        assert!(
            matches!(
                sanitize_image(&whole[..cut], &rules()),
                Err(UploadRefusal::Damaged(_))
            ),
            "PNG cut at {cut} of {}",
            whole.len()
        );
    }
    // JPEG decoders conceal a missing end by painting it grey; a file
    // without its end-of-image marker is refused instead.
    let whole_jpeg = jpeg(noise(400, 400));
    for cut in [whole_jpeg.len() / 2, whole_jpeg.len() - 2, 200] {
        assert!(
            matches!(
                sanitize_image(&whole_jpeg[..cut], &rules()),
                Err(UploadRefusal::Damaged(_))
            ),
            "JPEG cut at {cut} of {}",
            whole_jpeg.len()
        );
    }
    // An EXIF thumbnail carries its own end marker; it is not the image's.
    let thumbnail = b"\xff\xd8\xff\xdb thumbnail \xff\xd9";
    let truncated = &whole_jpeg[..whole_jpeg.len() / 2];
    assert!(matches!(
        sanitize_image(&with_exif_and_comment(truncated, 1, thumbnail), &rules()),
        Err(UploadRefusal::Damaged(_))
    ));
    assert!(sanitize_image(&with_exif_and_comment(&whole_jpeg, 1, thumbnail), &rules()).is_ok());
    let mut garbage_png = PNG_SIGNATURE.to_vec();
    garbage_png.extend_from_slice(&[0x42; 4096]);
    assert!(matches!(
        sanitize_image(&garbage_png, &rules()),
        Err(UploadRefusal::Damaged(_))
    ));
    let mut garbage_jpeg = JPEG_SIGNATURE.to_vec();
    garbage_jpeg.extend_from_slice(&[0x42; 4096]);
    assert!(matches!(
        sanitize_image(&garbage_jpeg, &rules()),
        Err(UploadRefusal::Damaged(_))
    ));
    // A corrupted chunk checksum in the image data.
    let mut flipped = whole.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    assert!(matches!(
        sanitize_image(&flipped, &rules()),
        Err(UploadRefusal::Damaged(_))
    ));
}

#[test]
fn sha256_is_of_the_returned_bytes() {
    for upload in [png(pattern(300, 310)), jpeg(pattern(310, 300))] {
        let clean = sanitize_image(&upload, &rules()).unwrap();
        assert_eq!(
            clean.sha256_hex(),
            hex::encode(Sha256::digest(clean.bytes()))
        );
        assert_eq!(clean.sha256_hex().len(), 64);
        // Re-encoding is deterministic: the same upload, the same digest.
        let again = sanitize_image(&upload, &rules()).unwrap();
        assert_eq!(again.sha256_hex(), clean.sha256_hex());
        assert_eq!(again.clone().into_bytes(), clean.bytes());
    }
}

#[test]
fn refusal_codes_are_unique_and_messages_chinese() {
    let all = [
        UploadRefusal::Empty,
        UploadRefusal::NotAnImage,
        UploadRefusal::TooLarge {
            size: 6 * MB,
            limit: 5 * MB,
        },
        UploadRefusal::TooSmall {
            width: 200,
            height: 800,
            min_short_side: 300,
        },
        UploadRefusal::DimensionsTooLarge {
            width: 20_000,
            height: 300,
            max_side: 10_000,
            max_pixels: 40_000_000,
        },
        UploadRefusal::TooDeep {
            width: 6000,
            height: 6000,
            decoded_bytes: 288_000_000,
            max_decoded_bytes: 268_435_456,
        },
        UploadRefusal::Damaged("DETAIL-FOR-THE-LOG".into()),
    ];
    let mut codes: Vec<_> = all.iter().map(UploadRefusal::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    for r in &all {
        let msg = r.message_zh();
        assert!(
            msg.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{msg}"
        );
        assert!(!msg.contains("DETAIL"), "the log detail stays in the log");
    }
    assert_eq!(
        UploadRefusal::NotAnImage.message_zh(),
        "文件内容不是 PNG 或 JPEG 图片，请重新选择。仅修改文件扩展名无效，请用图片软件另存为 PNG 或 JPEG 格式。"
    );
}

#[test]
fn debug_does_not_dump_the_bytes() {
    let clean = sanitize_image(&png(pattern(300, 300)), &rules()).unwrap();
    let debug = format!("{clean:?}");
    assert!(debug.contains("len") && debug.len() < 300, "{debug}");
}

/// 36 megapixels is within the limits (40): accepted in 8 bits; in 16
/// bits per channel with alpha it needs 288 MB decoded, and the refusal
/// says so (not that the image is too large, which it is not).
#[test]
fn a_36_megapixel_png_is_judged_by_what_is_wrong() {
    let plain = png(RgbImage::from_pixel(6000, 6000, Rgb([250, 250, 250])));
    let clean = sanitize_image(&plain, &rules()).unwrap();
    assert_eq!((clean.width, clean.height), (6000, 6000));
    let deep = encode(
        DynamicImage::ImageRgba16(image::ImageBuffer::from_pixel(
            6000,
            6000,
            Rgba([60000u16, 60000, 60000, 65535]),
        )),
        image::ImageFormat::Png,
    );
    assert!(deep.len() < 5 * MB);
    let refusal = sanitize_image(&deep, &rules()).unwrap_err();
    assert_eq!(
        refusal,
        UploadRefusal::TooDeep {
            width: 6000,
            height: 6000,
            decoded_bytes: 6000 * 6000 * 8,
            max_decoded_bytes: 256 * 1024 * 1024,
        }
    );
    let msg = refusal.message_zh();
    assert!(
        msg.contains("8 位") && msg.contains("每像素 8 字节"),
        "{msg}"
    );
    assert!(!msg.contains("尺寸过大"), "{msg}");
}
