//! `.npy` reading and writing: C-order arrays of f32/f64/f16 features and i64/i32/u8 labels.
//!
//! The header is parsed here rather than by a crate: the one we tried (npyz 0.9) panics with an
//! arithmetic overflow on a hostile shape. The whole file is in memory, and the declared shape
//! is checked against the bytes present before anything is allocated, so a truncated or lying
//! header is an error, never a crash.

use crate::error::{NmlError, Result};

/// An array read from a `.npy` file, converted to the type nml computes in.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// The parts of a `.npy` header nml uses.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    little_endian: bool,
    kind: char,
    size: usize,
    fortran_order: bool,
    shape: Vec<usize>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Splits a file into its parsed header and its data bytes.
fn split<'a>(bytes: &'a [u8], name: &str) -> Result<(Header, &'a [u8])> {
    let bad = |m: &str| NmlError::format(name, format!("not a valid .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10usize),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("header runs past the end of the file"))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    Ok((parse_header(text).map_err(|m| bad(&m))?, &bytes[end..]))
}

/// Parses the Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("header is not a dict")?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let (key, after) = quoted(rest).ok_or("expected a quoted key")?;
        let after =
            after.trim_start().strip_prefix(':').ok_or("expected ':' after a key")?.trim_start();
        rest = match key {
            "descr" => {
                let (value, after) = quoted(after).ok_or("descr must be a quoted dtype string")?;
                descr = Some(value.to_string());
                after
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("False") {
                    fortran = Some(false);
                    a
                } else if let Some(a) = after.strip_prefix("True") {
                    fortran = Some(true);
                    a
                } else {
                    return Err("fortran_order must be True or False".into());
                }
            }
            "shape" => {
                let inner = after.strip_prefix('(').ok_or("shape must be a tuple")?;
                let close = inner.find(')').ok_or("shape tuple is not closed")?;
                let mut dims = Vec::new();
                for part in inner[..close].split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let part = part.strip_suffix('L').unwrap_or(part);
                    dims.push(
                        part.parse::<usize>()
                            .map_err(|_| format!("shape entry {part:?} is not a size"))?,
                    );
                }
                shape = Some(dims);
                &inner[close + 1..]
            }
            other => return Err(format!("unexpected header key {other:?}")),
        };
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    let descr = descr.ok_or("header has no descr")?;
    let mut chars = descr.chars();
    let order = chars.next().ok_or("empty descr")?;
    let kind = chars.next().ok_or("descr has no type")?;
    let size: usize = chars
        .as_str()
        .parse()
        .map_err(|_| format!("dtype {descr:?} is not a simple numeric type"))?;
    let little_endian = match order {
        '<' | '|' => true,
        '>' => false,
        '=' => cfg!(target_endian = "little"),
        _ => return Err(format!("dtype {descr:?} is not a simple numeric type")),
    };
    Ok(Header {
        little_endian,
        kind,
        size,
        fortran_order: fortran.ok_or("header has no fortran_order")?,
        shape: shape.ok_or("header has no shape")?,
    })
}

/// A leading `'...'` or `"..."` string and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let end = s[1..].find(q)? + 1;
    Some((&s[1..end], &s[end + 1..]))
}

/// Checks dtype, order and size and returns the data bytes (exactly `count * size` of them).
fn checked<'a>(
    bytes: &'a [u8],
    name: &str,
    what: &str,
    dtypes: &[(char, usize, &str)],
) -> Result<(Header, &'a [u8])> {
    let (header, data) = split(bytes, name)?;
    if !dtypes.iter().any(|&(k, s, _)| (k, s) == (header.kind, header.size)) {
        let allowed: Vec<&str> = dtypes.iter().map(|d| d.2).collect();
        return Err(NmlError::format(
            name,
            format!(
                "{what} dtype '{}{}' is not supported (use {})",
                header.kind,
                header.size,
                allowed.join(", ")
            ),
        ));
    }
    if header.fortran_order {
        return Err(NmlError::format(
            name,
            "array is in Fortran order; save it in C order (numpy.ascontiguousarray)",
        ));
    }
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|c| c.checked_mul(header.size));
    match count {
        Some(expected) if expected == data.len() => Ok((header, data)),
        Some(expected) => Err(NmlError::format(
            name,
            format!(
                "shape {:?} of {}-byte values needs {expected} data bytes, file has {}",
                header.shape,
                header.size,
                data.len()
            ),
        )),
        None => Err(NmlError::format(
            name,
            format!(
                "shape {:?} needs more data bytes than any file can hold, file has {}",
                header.shape,
                data.len()
            ),
        )),
    }
}

fn words<const N: usize>(data: &[u8], little: bool) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(move |c| {
        let mut w: [u8; N] = c.try_into().expect("exact chunk");
        if !little {
            w.reverse();
        }
        w
    })
}

/// Reads a float array (f32, f64 or f16) as f32.
pub fn read_f32(bytes: &[u8], name: &str) -> Result<NpyArray<f32>> {
    let dtypes = [('f', 4, "float32"), ('f', 8, "float64"), ('f', 2, "float16")];
    let (h, data) = checked(bytes, name, "feature", &dtypes)?;
    let le = h.little_endian;
    let values = match (h.kind, h.size) {
        ('f', 4) => words::<4>(data, le).map(f32::from_le_bytes).collect(),
        ('f', 8) => words::<8>(data, le).map(|w| f64::from_le_bytes(w) as f32).collect(),
        ('f', 2) => words::<2>(data, le).map(|w| half::f16::from_le_bytes(w).to_f32()).collect(),
        _ => unreachable!("checked() admits only these dtypes"),
    };
    Ok(NpyArray { shape: h.shape, data: values })
}

/// A 2-D f32 array (as [`read_f32`] reads it) as `(values, rows, columns)`, or an error naming
/// `name` and the shape found.
pub fn read_matrix(bytes: &[u8], name: &str) -> Result<(Vec<f32>, usize, usize)> {
    let array = read_f32(bytes, name)?;
    let &[n, d] = array.shape.as_slice() else {
        return Err(NmlError::format(
            name,
            format!("features must be 2-D [N, D], found shape {:?}", array.shape),
        ));
    };
    Ok((array.data, n, d))
}

/// Reads an integer array (i64, i32 or u8) as i64.
pub fn read_i64(bytes: &[u8], name: &str) -> Result<NpyArray<i64>> {
    let dtypes = [('i', 8, "int64"), ('i', 4, "int32"), ('u', 1, "uint8")];
    let (h, data) = checked(bytes, name, "label", &dtypes)?;
    let le = h.little_endian;
    let values = match (h.kind, h.size) {
        ('i', 8) => words::<8>(data, le).map(i64::from_le_bytes).collect(),
        ('i', 4) => words::<4>(data, le).map(|w| i64::from(i32::from_le_bytes(w))).collect(),
        ('u', 1) => data.iter().map(|&b| i64::from(b)).collect(),
        _ => unreachable!("checked() admits only these dtypes"),
    };
    Ok(NpyArray { shape: h.shape, data: values })
}

fn write(descr: &str, shape: &[usize], data: Vec<u8>) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple =
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // numpy pads the header with spaces so the data starts on a 64-byte boundary.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// Serialises a C-order little-endian f32 array.
pub fn write_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    write("<f4", shape, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Serialises a C-order little-endian i64 array.
pub fn write_i64(shape: &[usize], data: &[i64]) -> Vec<u8> {
    write("<i8", shape, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Serialises a C-order u8 array (masks, images).
pub fn write_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    write("|u1", shape, data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built .npy file, as numpy writes it, to check we read numpy's bytes and not only
    /// our own.
    fn numpy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_numpy_float_kinds() {
        let f32s: Vec<u8> =
            [1.5f32, -2.0, 3.25, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = read_f32(&numpy_bytes("<f4", false, "(2, 2)", &f32s), "a.npy").unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.data, vec![1.5, -2.0, 3.25, 0.0]);
        let f64s: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_f32(&numpy_bytes("<f8", false, "(2,)", &f64s), "b").unwrap().data,
            vec![1.5, -2.0]
        );
        let f16s: Vec<u8> = [half::f16::from_f32(0.5), half::f16::from_f32(-4.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            read_f32(&numpy_bytes("<f2", false, "(1, 2)", &f16s), "c").unwrap().data,
            vec![0.5, -4.0]
        );
        let big: Vec<u8> = [7.0f32].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            read_f32(&numpy_bytes(">f4", false, "(1,)", &big), "d").unwrap().data,
            vec![7.0]
        );
    }

    #[test]
    fn reads_numpy_label_kinds() {
        let i64s: Vec<u8> = [3i64, 0, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_i64(&numpy_bytes("<i8", false, "(3,)", &i64s), "l").unwrap().data,
            vec![3, 0, 9]
        );
        let i32s: Vec<u8> = [-1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_i64(&numpy_bytes("<i4", false, "(2,)", &i32s), "l").unwrap().data,
            vec![-1, 2]
        );
        assert_eq!(
            read_i64(&numpy_bytes("|u1", false, "(2,)", &[4, 255]), "l").unwrap().data,
            vec![4, 255]
        );
    }

    #[test]
    fn round_trips_our_own_files() {
        let data = vec![0.25f32, -1.0, 8.5, 1e-30, 3.0, 4.0];
        let back = read_f32(&write_f32(&[3, 2], &data), "x").unwrap();
        assert_eq!(back, NpyArray { shape: vec![3, 2], data });
        let labels = vec![0i64, 5, 2];
        assert_eq!(read_i64(&write_i64(&[3], &labels), "y").unwrap().data, labels);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let f32s: Vec<u8> = [1.0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        let cases = [
            (b"not a numpy file".to_vec(), "not a valid .npy"),
            (numpy_bytes("<f4", true, "(2, 2)", &f32s), "Fortran order"),
            (numpy_bytes("<f4", false, "(3, 2)", &f32s), "needs 24 data bytes, file has 16"),
            (
                numpy_bytes("<f4", false, "(9999999999, 99999999999)", &f32s),
                "more data bytes than any file",
            ),
            (numpy_bytes("<f4", false, "(2, x)", &f32s), "is not a size"),
            (numpy_bytes("<U4", false, "(2,)", &f32s), "not supported"),
            (numpy_bytes("<i8", false, "(2,)", &f32s), "feature dtype 'i8'"),
            (numpy_bytes("<c8", false, "(2,)", &f32s), "not supported"),
            (numpy_bytes("<f4", false, "(2, 2)", &f32s[..10]), "file has 10"),
        ];
        for (bytes, expected) in cases {
            let err = read_f32(&bytes, "bad.npy").unwrap_err().to_string();
            assert!(err.starts_with("bad.npy: ") && err.contains(expected), "{err}");
        }
        let err = read_i64(&numpy_bytes("<f4", false, "(4,)", &f32s), "l.npy").unwrap_err();
        assert!(err.to_string().contains("label dtype 'f4'"), "{err}");
    }
}
