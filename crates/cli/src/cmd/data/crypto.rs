//! `taxon data keygen | encrypt | decrypt`: Fernet encryption at rest. An encrypted file is a
//! sequence of standard Fernet tokens, one per line, one per chunk of plaintext, so any Fernet
//! library can decrypt it line by line.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use taxon_fernet::{
    DEFAULT_CHUNK, DEFAULT_KEY_ENV, Key, decrypt_file_with_progress, decrypt_stream,
    encrypt_file_with_progress, encrypt_stream,
};

use crate::ctx::{Ctx, Outcome};
use crate::output::print_json;

/// The suffix `encrypt` adds and `decrypt` strips when no output is given.
const SUFFIX: &str = "fernet";

/// Where the key comes from: `--key-file`, else the environment.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// File holding the key (as written by `taxon data keygen --output`). Without it the key
    /// is read from the environment variable TAXON_FERNET_KEY.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    fn load(&self) -> anyhow::Result<Key> {
        Ok(Key::from_env_or_file(
            DEFAULT_KEY_ENV,
            self.key_file.as_deref(),
        )?)
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the key to this file (created with mode 0600) instead of printing it.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
}

pub fn keygen(args: KeygenArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let key = Key::generate();
    let Some(path) = args.output else {
        if ctx.json {
            print_json(&json!({ "key": key.to_base64() }))?;
        } else {
            println!("{}", key.to_base64());
        }
        return Ok(Outcome::Ok);
    };
    if path.exists() && !args.force {
        bail!(
            "{} already exists: keep it (data encrypted with it needs it) or pass --force",
            path.display()
        );
    }
    write_private(&path, format!("{}\n", key.to_base64()).as_bytes())
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    if ctx.json {
        print_json(&json!({ "key_file": path }))?;
    } else {
        ctx.info(format!(
            "wrote a new Fernet key to {} (use it with --key-file, or export {DEFAULT_KEY_ENV})",
            path.display()
        ));
    }
    Ok(Outcome::Ok)
}

/// Creates (or truncates) `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// File to encrypt (`-` for standard input).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where to write the tokens (default: INPUT.fernet; `-` for standard output).
    #[arg(long, short, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
    /// Plaintext bytes per token (one token per line).
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "BYTES")]
    pub chunk_size: usize,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn encrypt(args: EncryptArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let key = args.key.load()?;
    let output = match args.output {
        Some(o) => o,
        None if is_dash(&args.input) => PathBuf::from("-"),
        None => {
            let mut name = args.input.clone().into_os_string();
            name.push(format!(".{SUFFIX}"));
            PathBuf::from(name)
        }
    };
    let bytes = if is_dash(&args.input) || is_dash(&output) {
        let input: Box<dyn std::io::Read> = if is_dash(&args.input) {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(open(&args.input)?)
        };
        let out: Box<dyn Write> = if is_dash(&output) {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(&output)
                    .with_context(|| format!("cannot create {}", output.display()))?,
            ))
        };
        encrypt_stream(&key, input, out, args.chunk_size)?
    } else {
        let bar = ctx.bytes_bar(file_len(&args.input), "encrypting");
        let n = encrypt_file_with_progress(&key, &args.input, &output, args.chunk_size, |n| {
            bar.inc(n)
        })?;
        bar.finish_and_clear();
        n
    };
    report(ctx, "encrypted", &args.input, &output, bytes)
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// File of Fernet tokens, one per line (`-` for standard input).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where to write the plaintext (default: INPUT without its .fernet suffix; `-` for
    /// standard output). Written to a temporary file and renamed: on any error no file is left.
    #[arg(long, short, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
}

pub fn decrypt(args: DecryptArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let key = args.key.load()?;
    let output = match args.output {
        Some(o) => o,
        None if is_dash(&args.input) => PathBuf::from("-"),
        None => match args
            .input
            .to_str()
            .and_then(|s| s.strip_suffix(&format!(".{SUFFIX}")))
        {
            Some(stem) if !stem.is_empty() => PathBuf::from(stem),
            _ => bail!(
                "{} does not end in .{SUFFIX}: pass --output to say where the plaintext goes",
                args.input.display()
            ),
        },
    };
    let bytes = if is_dash(&output) || is_dash(&args.input) {
        // Streaming to standard output cannot be all-or-nothing: tokens before a bad one have
        // already been written when the error is reported.
        if !is_dash(&output) {
            bail!("decrypting standard input writes to standard output only: pass --output -");
        }
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        if is_dash(&args.input) {
            decrypt_stream(&key, std::io::stdin().lock(), out)?
        } else {
            decrypt_stream(&key, BufReader::new(open(&args.input)?), out)?
        }
    } else {
        let bar = ctx.bytes_bar(file_len(&args.input), "decrypting");
        let n = decrypt_file_with_progress(&key, &args.input, &output, |n| bar.inc(n))?;
        bar.finish_and_clear();
        n
    };
    report(ctx, "decrypted", &args.input, &output, bytes)
}

fn report(
    ctx: &Ctx,
    verb: &str,
    input: &Path,
    output: &Path,
    bytes: u64,
) -> anyhow::Result<Outcome> {
    if is_dash(output) {
        // Standard output holds the data: say nothing there.
        ctx.info(format!("{verb} {bytes} bytes"));
    } else if ctx.json {
        print_json(&json!({
            "input": input,
            "output": output,
            "plaintext_bytes": bytes,
        }))?;
    } else {
        ctx.info(format!(
            "{verb} {} -> {} ({bytes} plaintext bytes)",
            input.display(),
            output.display()
        ));
    }
    Ok(Outcome::Ok)
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn open(p: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
