//! Which instruction set the kernels run on: the best this CPU has, or the one named by
//! `TAXON_KERNELS` (read once per process: `avx512|avx2|portable` on x86-64,
//! `neon-dotprod|neon|portable` on aarch64, `portable` elsewhere), and [`paths`], the
//! implementation each kernel family ended up with (for logs and metrics).
//!
//! A [`Level`] is a ceiling: every kernel runs the fastest implementation it has at or below
//! the level that this CPU supports (the int8 matmul at `avx512` on an AVX-512 CPU without VNNI
//! runs its AVX2 kernel; [`paths`] says so). Forcing a lower level on a faster CPU is how every
//! path gets tested and measured on one machine: `TAXON_KERNELS=avx2` on an AVX-512 CPU runs
//! exactly the code an AVX2-only CPU runs (no AVX-512 instruction, in taxon's kernels and in
//! the f32 gemm alike). A level above what the CPU has is never run: [`Level::from_env`]
//! answers an error, and [`level`] falls back to the best supported level with a warning on
//! stderr that says so.
//!
//! The levels are those of the target's architecture (the enum's variants are compiled per
//! architecture), so the order of [`Level`] is a ladder of one instruction-set family: on
//! aarch64, NEON is part of the baseline and `neon-dotprod` adds the dot-product extension
//! (`sdot`, Armv8.2's optional FEAT_DotProd, mandatory from Armv8.4).

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that forces a level.
pub const ENV: &str = "TAXON_KERNELS";

/// An instruction-set level of the kernels, lowest first (the levels of the target's
/// architecture).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Plain Rust compiled for the target's baseline (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// AVX2 and FMA (x86-64-v3: Intel Haswell and later, AMD Zen 1 and later).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 F and BW on top of AVX2 and FMA (the int8 matmul also wants VNNI for its
    /// fastest kernel: Intel Cascade Lake and later, AMD Zen 4 and later).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// aarch64's NEON (Advanced SIMD, in every aarch64 CPU): the int8 matmul's kernel of
    /// widening multiplies (`smull`, `smlal2`, `sadalp`).
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// NEON with the dot-product extension (`sdot`: Arm Cortex-A55/A75 and later, Neoverse N1
    /// and later, Apple M1 and later, AWS Graviton 2 and later).
    #[cfg(target_arch = "aarch64")]
    NeonDotprod,
}

/// A `TAXON_KERNELS` value that cannot be used on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LevelError {
    /// Not one of the level names.
    Unknown(String),
    /// A level this CPU lacks the instructions for.
    Unsupported(Level),
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let supported = Level::supported_levels()
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            Self::Unknown(v) => write!(
                f,
                "{ENV}={v:?} is not a kernel level: use {} (this CPU runs {supported})",
                Level::choices()
            ),
            Self::Unsupported(l) => write!(
                f,
                "{ENV}={}: this CPU lacks {} (it runs {supported})",
                l.name(),
                l.features()
            ),
        }
    }
}

impl std::error::Error for LevelError {}

impl Level {
    /// Every level of the target's architecture, lowest first.
    #[cfg(target_arch = "x86_64")]
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];
    /// Every level of the target's architecture, lowest first.
    #[cfg(target_arch = "aarch64")]
    pub const ALL: [Level; 3] = [Level::Portable, Level::Neon, Level::NeonDotprod];
    /// Every level of the target's architecture, lowest first.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const ALL: [Level; 1] = [Level::Portable];

    /// The name `TAXON_KERNELS` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => "avx512",
            #[cfg(target_arch = "aarch64")]
            Self::Neon => "neon",
            #[cfg(target_arch = "aarch64")]
            Self::NeonDotprod => "neon-dotprod",
        }
    }

    /// The CPU features the level needs, as `/proc/cpuinfo` spells them.
    pub fn features(self) -> &'static str {
        match self {
            Self::Portable => "nothing",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => "avx2 and fma",
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => "avx512f, avx512bw, avx2 and fma",
            #[cfg(target_arch = "aarch64")]
            Self::Neon => "asimd",
            #[cfg(target_arch = "aarch64")]
            Self::NeonDotprod => "asimd and asimddp",
        }
    }

    /// The level names, highest first, as an error message lists them: `avx512, avx2 or
    /// portable` on x86-64.
    fn choices() -> String {
        let names: Vec<&str> = Self::ALL.iter().rev().map(|l| l.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        }
    }

    /// The level named `s` (on x86-64 `avx512`, `avx2`, `portable`; on aarch64 `neon-dotprod`,
    /// `neon`, `portable`; case and surrounding space ignored).
    pub fn parse(s: &str) -> Result<Self, LevelError> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|l| l.name() == t)
            .ok_or_else(|| LevelError::Unknown(s.to_string()))
    }

    /// Whether this CPU runs every instruction of the level.
    pub fn supported(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                Self::Avx2.supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(target_arch = "aarch64")]
            Self::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Self::NeonDotprod => {
                Self::Neon.supported() && std::arch::is_aarch64_feature_detected!("dotprod")
            }
        }
    }

    /// The highest level this CPU supports.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .rev()
            .find(|l| l.supported())
            .unwrap_or(Self::Portable)
    }

    /// Every level this CPU supports, lowest first (what tests and benches loop over).
    pub fn supported_levels() -> Vec<Self> {
        Self::ALL.into_iter().filter(|l| l.supported()).collect()
    }

    /// The level `TAXON_KERNELS` asks for, checked against this CPU: `Ok(None)` when the
    /// variable is unset or empty, an error when it names no level or one this CPU lacks.
    pub fn from_env() -> Result<Option<Self>, LevelError> {
        match std::env::var(ENV) {
            Ok(v) if !v.trim().is_empty() => Self::checked(&v).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(LevelError::Unknown(v.to_string_lossy().into_owned()))
            }
        }
    }

    /// [`Level::parse`], then an error unless this CPU supports the level.
    pub fn checked(s: &str) -> Result<Self, LevelError> {
        let l = Self::parse(s)?;
        if l.supported() {
            Ok(l)
        } else {
            Err(LevelError::Unsupported(l))
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the process's level was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The level the kernels run at.
    pub level: Level,
    /// The `TAXON_KERNELS` value, when one was set.
    pub requested: Option<String>,
    /// Why the request was not followed (then `level` is the best supported level).
    pub fallback: Option<String>,
}

impl Selection {
    fn from_env() -> Self {
        let requested = std::env::var(ENV).ok().filter(|v| !v.trim().is_empty());
        match Level::from_env() {
            Ok(Some(level)) => Self {
                level,
                requested,
                fallback: None,
            },
            Ok(None) => Self {
                level: Level::best(),
                requested,
                fallback: None,
            },
            Err(e) => {
                let level = Level::best();
                let note = format!("{e}; running {level} instead");
                eprintln!("taxon-kernels: {note}");
                Self {
                    level,
                    requested,
                    fallback: Some(note),
                }
            }
        }
    }
}

/// How this process chose its level (read from `TAXON_KERNELS` on first use, then fixed).
pub fn selection() -> &'static Selection {
    static SELECTION: OnceLock<Selection> = OnceLock::new();
    SELECTION.get_or_init(Selection::from_env)
}

/// The level every kernel of this process runs at (see [`selection`]).
#[inline]
pub fn level() -> Level {
    selection().level
}

/// The implementation each kernel family runs at the process's level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The level (a ceiling for every family).
    pub level: Level,
    /// The int8 matmul: `avx512-vnni`, `avx2`, `neon-dotprod`, `neon` or `portable`.
    pub int8: &'static str,
    /// The fused float kernels (GELU, softmax, layer norm, ...): `avx512`, `avx2-fma` or
    /// `portable` (on aarch64 at every level).
    pub fused: &'static str,
    /// The f32 matrix product (the `gemm` crate's kernels): `avx512`, `avx2-fma`, `scalar`
    /// (x86-64 without AVX2 and FMA), `neon` (aarch64, every level) or `baseline` (the
    /// target's own, elsewhere).
    pub f32: &'static str,
    /// The `TAXON_KERNELS` value, when one was set.
    pub requested: Option<String>,
    /// Why the request was not followed, when it was not.
    pub fallback: Option<String>,
}

impl fmt::Display for Paths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "int8={} fused={} f32={} (level {}",
            self.int8, self.fused, self.f32, self.level
        )?;
        match (&self.requested, &self.fallback) {
            (_, Some(note)) => write!(f, "; {note})"),
            (Some(r), None) => write!(f, ", forced by {ENV}={r})"),
            (None, None) => write!(f, ", the best this CPU runs)"),
        }
    }
}

/// The kernel paths this process runs, e.g. `int8=avx2 fused=avx2-fma f32=avx2-fma` when
/// `TAXON_KERNELS=avx2`.
pub fn paths() -> Paths {
    let s = selection();
    Paths {
        requested: s.requested.clone(),
        fallback: s.fallback.clone(),
        ..paths_at(s.level)
    }
}

/// The kernel paths at `level` on this CPU.
pub fn paths_at(level: Level) -> Paths {
    Paths {
        level,
        int8: crate::int8::Isa::at(level).name(),
        fused: crate::fused::path_at(level),
        f32: crate::matmul::path_at(level),
        requested: None,
        fallback: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Ok(l));
            assert_eq!(
                Level::parse(&format!(" {} ", l.name().to_uppercase())),
                Ok(l)
            );
        }
        let e = Level::parse("sse9").unwrap_err();
        assert_eq!(e, LevelError::Unknown("sse9".into()));
        let msg = e.to_string();
        assert!(
            msg.contains("TAXON_KERNELS=\"sse9\"") && msg.contains("portable"),
            "{msg}"
        );
        #[cfg(target_arch = "x86_64")]
        assert!(msg.contains("use avx512, avx2 or portable ("), "{msg}");
        #[cfg(target_arch = "aarch64")]
        assert!(
            msg.contains("use neon-dotprod, neon or portable ("),
            "{msg}"
        );
    }

    #[test]
    fn levels_are_ordered_and_the_best_is_supported() {
        for w in Level::ALL.windows(2) {
            assert!(w[0] < w[1], "{} < {}", w[0], w[1]);
        }
        assert_eq!(Level::ALL[0], Level::Portable);
        assert!(Level::Portable.supported());
        assert!(Level::best().supported());
        let all = Level::supported_levels();
        assert_eq!(all.first(), Some(&Level::Portable));
        assert_eq!(all.last(), Some(&Level::best()));
        // A level is only supported when every level below it is.
        for w in Level::ALL.windows(2) {
            assert!(!w[1].supported() || w[0].supported());
        }
    }

    #[test]
    fn unsupported_levels_are_refused_with_the_missing_features() {
        for l in Level::ALL {
            match Level::checked(l.name()) {
                Ok(got) => assert!(got == l && l.supported()),
                Err(e) => {
                    assert!(!l.supported());
                    assert!(e.to_string().contains(l.features()), "{e}");
                }
            }
        }
    }

    #[test]
    fn paths_never_name_an_implementation_above_the_level() {
        for l in Level::supported_levels() {
            let p = paths_at(l);
            match l {
                #[cfg(not(target_arch = "aarch64"))]
                Level::Portable => {
                    assert_eq!((p.int8, p.fused), ("portable", "portable"));
                    assert_ne!(p.f32, "avx2-fma");
                    assert_ne!(p.f32, "avx512");
                }
                // gemm's f32 kernels are NEON code (aarch64's baseline) at every level, the
                // fused kernels the portable copy.
                #[cfg(target_arch = "aarch64")]
                Level::Portable => {
                    assert_eq!((p.int8, p.fused, p.f32), ("portable", "portable", "neon"));
                }
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => {
                    assert_eq!((p.int8, p.fused, p.f32), ("avx2", "avx2-fma", "avx2-fma"));
                }
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => {
                    assert!(p.int8 == "avx512-vnni" || p.int8 == "avx2", "{p}");
                    assert_eq!((p.fused, p.f32), ("avx512", "avx512"));
                }
                #[cfg(target_arch = "aarch64")]
                Level::Neon => {
                    assert_eq!((p.int8, p.fused, p.f32), ("neon", "portable", "neon"));
                }
                #[cfg(target_arch = "aarch64")]
                Level::NeonDotprod => {
                    assert_eq!(
                        (p.int8, p.fused, p.f32),
                        ("neon-dotprod", "portable", "neon")
                    );
                }
            }
            assert!(p.to_string().starts_with(&format!("int8={}", p.int8)));
        }
        let p = paths();
        assert!(p.level.supported());
    }
}
