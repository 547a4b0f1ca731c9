//! What the fuzz targets share: splitting one input into the several inputs a parser takes.
//!
//! Parts are separated by the byte 0xFF, which never occurs in UTF-8 (so never in JSON, an
//! annotation or an environment value): a seed file of one JSON document is one part.

/// The separator of the parts of one fuzz input.
pub const SEPARATOR: u8 = 0xFF;

/// The parts of `data` (at least one, possibly empty).
pub fn parts(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == SEPARATOR).collect()
}

/// `bytes` as text, as a reader of text would get it (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
