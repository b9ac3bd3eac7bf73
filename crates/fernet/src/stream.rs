//! Streaming encryption: a byte stream becomes one Fernet token per chunk, one token per line.
//!
//! Format. Each line is a standard Fernet token (padded URL-safe base64) followed by `\n`; the
//! plaintext is the concatenation of the tokens' plaintexts, in order. Every token but the last
//! carries exactly `chunk` bytes, and the last token always carries *fewer* than `chunk` bytes
//! (an empty token when the input length is a multiple of the chunk; an empty input is one
//! empty token). Any Fernet library can therefore decrypt the file line by line, and taxon can
//! tell that a stream which ends on a full token was cut at a token boundary.
//!
//! What the format cannot detect: Fernet tokens are independent, so dropping or reordering
//! *middle* tokens of a file encrypted with the same key goes unnoticed; pair the file with a
//! content hash (as the store does: objects are named by their plaintext md5) when that matters.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::{FernetError, Key};

/// Plaintext bytes per token when the caller has no reason to choose otherwise.
pub const DEFAULT_CHUNK: usize = 1 << 20;

/// The largest chunk [`encrypt_stream`] accepts, so that every token it writes stays below
/// [`MAX_TOKEN_LINE`].
pub const MAX_CHUNK: usize = 32 << 20;

/// The longest line [`decrypt_stream`] reads (bounds memory on hostile input). A token of
/// [`MAX_CHUNK`] plaintext bytes is about 44.7 MiB of base64.
pub const MAX_TOKEN_LINE: usize = 64 << 20;

/// Encrypts `input` into `output` as one Fernet token per `chunk` bytes of plaintext, each
/// followed by `\n` (see the module docs for the exact format). Memory use is about
/// 2.4 x `chunk`. Returns the number of plaintext bytes read.
pub fn encrypt_stream<R: Read, W: Write>(
    key: &Key,
    mut input: R,
    mut output: W,
    chunk: usize,
) -> Result<u64, FernetError> {
    if chunk == 0 || chunk > MAX_CHUNK {
        return Err(FernetError::InvalidChunk { chunk });
    }
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    loop {
        let n = read_full(&mut input, &mut buf).map_err(|source| FernetError::Stream {
            op: "reading plaintext",
            source,
        })?;
        let token = key.fernet.encrypt(&buf[..n]);
        output
            .write_all(token.as_bytes())
            .and_then(|()| output.write_all(b"\n"))
            .map_err(|source| FernetError::Stream {
                op: "writing tokens",
                source,
            })?;
        total += n as u64;
        if n < chunk {
            break;
        }
    }
    output.flush().map_err(|source| FernetError::Stream {
        op: "writing tokens",
        source,
    })?;
    Ok(total)
}

/// Decrypts a stream of Fernet tokens, one per line, writing the plaintext to `output` as each
/// token is verified. A token that fails (wrong key, tampering, corruption) stops the stream
/// with [`FernetError::InvalidToken`] naming its 1-based line; a stream with no token, or one
/// that ends on a full token (see the module docs), is [`FernetError::Truncated`]. Plaintext of
/// the tokens before a failure has already been written: use [`decrypt_file`] to get all or
/// nothing. Returns the number of plaintext bytes written.
pub fn decrypt_stream<R: BufRead, W: Write>(
    key: &Key,
    mut input: R,
    mut output: W,
) -> Result<u64, FernetError> {
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut total = 0u64;
    // Plaintext length of the first token, and whether every token so far had that length.
    let mut first_len: Option<usize> = None;
    let mut all_same_len = true;
    loop {
        line.clear();
        let read = read_line_bounded(&mut input, &mut line, MAX_TOKEN_LINE).map_err(|source| {
            FernetError::Stream {
                op: "reading tokens",
                source,
            }
        })?;
        match read {
            LineRead::Eof => break,
            LineRead::TooLong => {
                return Err(FernetError::TokenTooLong {
                    path: None,
                    line: line_no + 1,
                    limit: MAX_TOKEN_LINE,
                });
            }
            LineRead::Line => {}
        }
        line_no += 1;
        let token = trim_eol(&line);
        let invalid = || FernetError::InvalidToken {
            path: None,
            line: line_no,
        };
        let text = std::str::from_utf8(token).map_err(|_| invalid())?;
        let plain = key.fernet.decrypt(text).map_err(|_| invalid())?;
        output
            .write_all(&plain)
            .map_err(|source| FernetError::Stream {
                op: "writing plaintext",
                source,
            })?;
        total += plain.len() as u64;
        match first_len {
            None => first_len = Some(plain.len()),
            Some(len) => all_same_len &= len == plain.len(),
        }
    }
    output.flush().map_err(|source| FernetError::Stream {
        op: "writing plaintext",
        source,
    })?;
    match first_len {
        None => Err(FernetError::Truncated {
            path: None,
            line: 0,
            reason: "no token at all (even an empty file encrypts to one token)",
        }),
        Some(len) if line_no >= 2 && all_same_len && len > 0 => Err(FernetError::Truncated {
            path: None,
            line: line_no,
            reason: "the last token is as full as the ones before it, but an encrypted stream \
                     always ends with a shorter (possibly empty) token",
        }),
        Some(_) => Ok(total),
    }
}

/// Encrypts the file `src` into `dst` with [`DEFAULT_CHUNK`]-byte tokens. `dst` is written to
/// a temporary file in its own folder and renamed into place, so on any error no `dst` is
/// left (an existing `dst` is left as it was). Returns the plaintext bytes read.
pub fn encrypt_file(key: &Key, src: &Path, dst: &Path) -> Result<u64, FernetError> {
    encrypt_file_with_progress(key, src, dst, DEFAULT_CHUNK, |_| {})
}

/// Decrypts the file of tokens `src` into `dst`, all or nothing: the plaintext goes to a
/// temporary file in `dst`'s folder and is renamed into place only when every token verified
/// and the stream is complete. Returns the plaintext bytes written.
pub fn decrypt_file(key: &Key, src: &Path, dst: &Path) -> Result<u64, FernetError> {
    decrypt_file_with_progress(key, src, dst, |_| {})
}

/// [`encrypt_file`] with a chosen chunk size, calling `progress(n)` after every `n` bytes of
/// `src` read (for progress bars).
pub fn encrypt_file_with_progress(
    key: &Key,
    src: &Path,
    dst: &Path,
    chunk: usize,
    progress: impl FnMut(u64),
) -> Result<u64, FernetError> {
    let input = open(src)?;
    write_atomically(dst, |out| {
        encrypt_stream(
            key,
            Counting {
                inner: input,
                progress,
            },
            out,
            chunk,
        )
        .map_err(|e| e.in_file(src))
    })
}

/// [`decrypt_file`], calling `progress(n)` after every `n` bytes of `src` read.
pub fn decrypt_file_with_progress(
    key: &Key,
    src: &Path,
    dst: &Path,
    progress: impl FnMut(u64),
) -> Result<u64, FernetError> {
    let input = open(src)?;
    write_atomically(dst, |out| {
        let reader = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: input,
                progress,
            },
        );
        decrypt_stream(key, reader, out).map_err(|e| e.in_file(src))
    })
}

fn open(path: &Path) -> Result<File, FernetError> {
    File::open(path).map_err(|source| FernetError::File {
        op: "open",
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `write` against a temporary file next to `dst`, then renames it to `dst`. On any error
/// the temporary file is removed (dropping a `NamedTempFile` deletes it).
fn write_atomically(
    dst: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<u64, FernetError>,
) -> Result<u64, FernetError> {
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file_err = |op, source| FernetError::File {
        op,
        path: dst.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".taxon-tmp")
        .tempfile_in(dir)
        .map_err(|e| file_err("create a temporary file for", e))?;
    let n = {
        let mut out = BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        let n = write(&mut out)?;
        out.flush().map_err(|e| file_err("write", e))?;
        n
    };
    tmp.persist(dst)
        .map_err(|e| file_err("move the finished temporary file to", e.error))?;
    Ok(n)
}

/// A reader that reports how many bytes went through it.
struct Counting<R, F> {
    inner: R,
    progress: F,
}

impl<R: Read, F: FnMut(u64)> Read for Counting<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

enum LineRead {
    Eof,
    Line,
    TooLong,
}

/// Appends one line (with its `\n`, if any) to `buf`, reading at most `limit` bytes.
fn read_line_bounded(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<LineRead> {
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + used > limit + 2 {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&available[..used]);
        input.consume(used);
        if done {
            return Ok(LineRead::Line);
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &Key, data: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let n = encrypt_stream(key, data, &mut out, chunk).unwrap();
        assert_eq!(n, data.len() as u64);
        out
    }

    fn open_all(key: &Key, sealed: &[u8]) -> Result<Vec<u8>, FernetError> {
        let mut out = Vec::new();
        decrypt_stream(key, sealed, &mut out).map(|_| out)
    }

    fn lines(sealed: &[u8]) -> Vec<&[u8]> {
        sealed
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn empty_input_is_one_token_of_the_empty_string() {
        let key = Key::generate();
        let sealed = seal(&key, b"", 16);
        assert_eq!(lines(&sealed).len(), 1);
        assert_eq!(*sealed.last().unwrap(), b'\n');
        let token = std::str::from_utf8(lines(&sealed)[0]).unwrap();
        assert_eq!(key.fernet.decrypt(token).unwrap(), b"");
        assert_eq!(open_all(&key, &sealed).unwrap(), b"");
    }

    #[test]
    fn one_token_per_chunk_and_a_short_last_token() {
        let key = Key::generate();
        let data: Vec<u8> = (0..100u8).collect();
        // 100 = 3 x 32 + 4: four tokens, the last with 4 bytes.
        let sealed = seal(&key, &data, 32);
        let toks = lines(&sealed);
        assert_eq!(toks.len(), 4);
        let sizes: Vec<usize> = toks
            .iter()
            .map(|t| {
                key.fernet
                    .decrypt(std::str::from_utf8(t).unwrap())
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, vec![32, 32, 32, 4]);
        assert_eq!(open_all(&key, &sealed).unwrap(), data);

        // 64 = 2 x 32: a closing empty token marks the end.
        let sealed = seal(&key, &data[..64], 32);
        assert_eq!(lines(&sealed).len(), 3);
        assert_eq!(open_all(&key, &sealed).unwrap(), &data[..64]);
    }

    #[test]
    fn token_layout_follows_the_spec() {
        use base64::Engine;
        let key = Key::generate();
        let sealed = seal(&key, b"hello", 1024);
        let token = lines(&sealed)[0];
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .unwrap();
        assert_eq!(raw[0], 0x80, "version byte");
        let ts = u64::from_be_bytes(raw[1..9].try_into().unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(ts) < 120, "timestamp {ts} vs now {now}");
        // version + timestamp + IV + one AES block ("hello" + PKCS7 padding) + HMAC.
        assert_eq!(raw.len(), 1 + 8 + 16 + 16 + 32);
    }

    #[test]
    fn wrong_key_fails_on_line_one() {
        let sealed = seal(&Key::generate(), b"secret", 1024);
        let err = open_all(&Key::generate(), &sealed).unwrap_err();
        assert!(
            matches!(err, FernetError::InvalidToken { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn flipped_byte_names_its_line() {
        let key = Key::generate();
        let data = vec![7u8; 100];
        let mut sealed = seal(&key, &data, 32);
        // Flip a character in the middle of the third token.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                sealed
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let pos = starts[2] + 40;
        sealed[pos] = if sealed[pos] == b'A' { b'B' } else { b'A' };
        let err = open_all(&key, &sealed).unwrap_err();
        assert!(
            matches!(err, FernetError::InvalidToken { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn truncation_is_detected_mid_token_at_a_boundary_and_when_empty() {
        let key = Key::generate();
        let data = vec![1u8; 100];
        let sealed = seal(&key, &data, 32);
        // Cut in the middle of the last token.
        let cut = &sealed[..sealed.len() - 20];
        assert!(matches!(
            open_all(&key, cut).unwrap_err(),
            FernetError::InvalidToken { line: 4, .. }
        ));
        // Cut exactly after the third (full) token.
        let third_end = sealed
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(2)
            .unwrap()
            .0;
        let err = open_all(&key, &sealed[..=third_end]).unwrap_err();
        assert!(
            matches!(err, FernetError::Truncated { line: 3, .. }),
            "{err}"
        );
        // Nothing at all.
        let err = open_all(&key, b"").unwrap_err();
        assert!(
            matches!(err, FernetError::Truncated { line: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_final_newline_and_crlf_are_accepted() {
        let key = Key::generate();
        let sealed = seal(&key, b"abc", 1024);
        assert_eq!(open_all(&key, &sealed[..sealed.len() - 1]).unwrap(), b"abc");
        let mut crlf = sealed[..sealed.len() - 1].to_vec();
        crlf.extend_from_slice(b"\r\n");
        assert_eq!(open_all(&key, &crlf).unwrap(), b"abc");
    }

    #[test]
    fn overlong_line_is_refused_without_reading_it_all() {
        let mut input = io::Cursor::new(vec![b'A'; 100]);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line_bounded(&mut input, &mut buf, 10).unwrap(),
            LineRead::TooLong
        ));
        assert!(buf.len() <= 12);
    }

    #[test]
    fn zero_and_huge_chunks_are_rejected() {
        let key = Key::generate();
        for chunk in [0, MAX_CHUNK + 1] {
            let err = encrypt_stream(&key, &b"x"[..], Vec::new(), chunk).unwrap_err();
            assert!(matches!(err, FernetError::InvalidChunk { .. }));
        }
    }

    #[test]
    fn spec_verify_vector_decrypts() {
        // From the Fernet spec repository (verify.json): no TTL, so the 1985 timestamp is fine.
        let key = Key::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
        let plain = open_all(&key, format!("{token}\n").as_bytes()).unwrap();
        assert_eq!(plain, b"hello");
    }
}
