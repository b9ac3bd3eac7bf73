//! Fernet encryption at rest for taxon: keys, and files as a stream of standard Fernet tokens.
//!
//! Tokens follow the published Fernet spec (version byte `0x80`, 64-bit big-endian timestamp,
//! 128-bit IV, AES-128-CBC with PKCS7 padding, HMAC-SHA256 over all of it, URL-safe base64).
//! The token itself is made and checked by the `fernet` crate; this crate adds what that crate
//! does not have: key loading with errors that say where the key came from, a `Debug` that never
//! prints the key, and *streaming*: a file is encrypted as one token per chunk of plaintext,
//! one token per line, so memory stays bounded by the chunk size and any Fernet library can
//! decrypt the file line by line.
//!
//! ```
//! use taxon_fernet::{Key, encrypt_stream, decrypt_stream, DEFAULT_CHUNK};
//! let key = Key::generate();
//! let mut sealed = Vec::new();
//! encrypt_stream(&key, &b"hello"[..], &mut sealed, DEFAULT_CHUNK).unwrap();
//! let mut plain = Vec::new();
//! decrypt_stream(&key, &sealed[..], &mut plain).unwrap();
//! assert_eq!(plain, b"hello");
//! ```

mod error;
mod key;
mod stream;

pub use error::FernetError;
pub use key::{DEFAULT_KEY_ENV, Key};
pub use stream::{
    DEFAULT_CHUNK, MAX_CHUNK, MAX_TOKEN_LINE, decrypt_file, decrypt_file_with_progress,
    decrypt_stream, encrypt_file, encrypt_file_with_progress, encrypt_stream,
};
