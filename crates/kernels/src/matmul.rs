//! A safe f32 matrix product on strided views of slices, wrapping the `gemm` crate's unsafe
//! raw-pointer kernel: every bound is checked before the call, so a view can never reach
//! outside its slice. Views let a caller multiply sub-matrices in place (one attention head's
//! columns of a `(tokens, hidden)` buffer, a weight read as its transpose) without copies.
//!
//! The product follows the process's [`Level`] like taxon's own kernels: gemm's AVX-512
//! kernels at `avx512`, its AVX2 + FMA kernels at `avx2` (called directly, since gemm on its
//! own would pick AVX-512 on a CPU that has it), its scalar kernels at `portable` on x86-64
//! (what gemm runs on an x86-64 without FMA), and gemm's own choice elsewhere (NEON on
//! aarch64).
#![allow(unsafe_code)]

use crate::dispatch::{self, Level};

use std::fmt;

/// A matrix view or a product that does not fit its slice or its partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatmulError(String);

impl fmt::Display for MatmulError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "matmul: {}", self.0)
    }
}

impl std::error::Error for MatmulError {}

/// A read-only `rows x cols` matrix inside `data`: element `(i, j)` is
/// `data[offset + i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The backing slice.
    pub data: &'a [f32],
    /// Index of element `(0, 0)`.
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix filling `data` from `offset` with rows `row_stride` apart.
    pub fn rows(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable row-major `rows x cols` matrix inside `data`: element `(i, j)` is
/// `data[offset + i * row_stride + j]`, rows at least `cols` apart (so no two elements alias).
#[derive(Debug)]
pub struct ViewMut<'a> {
    /// The backing slice.
    pub data: &'a mut [f32],
    /// Index of element `(0, 0)`.
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows (at least `cols` when there are several rows).
    pub row_stride: usize,
}

/// Whether the last element of a `rows x cols` view lies inside a slice of `len`.
fn fits(
    what: &str,
    len: usize,
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
) -> Result<(), MatmulError> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .and_then(|a| a.checked_add(offset));
    match last {
        Some(l) if l < len && l <= isize::MAX as usize => Ok(()),
        _ => Err(MatmulError(format!(
            "{what} view ({rows}x{cols}, offset {offset}, strides {rs}/{cs}) reaches past its \
             slice of {len}"
        ))),
    }
}

/// Which of gemm's f32 kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// gemm's own choice (its AVX-512 kernels on x86-64 with AVX-512F, NEON on aarch64).
    Own,
    /// gemm's AVX2 + FMA kernels.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Fma,
    /// gemm's scalar kernels.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Scalar,
}

impl Kernel {
    /// The kernel of `level` on this CPU.
    fn at(level: Level) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use gemm_common::simd::{MixedSimd, V3};
            if level >= Level::Avx512 && Level::Avx512.supported() {
                // gemm picks its AVX-512 kernels on any CPU with avx512f.
                return Self::Own;
            }
            if level >= Level::Avx2 && <V3 as MixedSimd<f32, f32, f32, f32>>::try_new().is_some() {
                return Self::Fma;
            }
            Self::Scalar
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = level;
            Self::Own
        }
    }
}

/// The f32 product's kernels at `level` on this CPU: `avx512`, `avx2-fma`, `scalar`, `neon`
/// (gemm's own choice on aarch64, at every level) or `baseline` (gemm's own choice elsewhere).
pub fn path_at(level: Level) -> &'static str {
    match Kernel::at(level) {
        Kernel::Own if cfg!(target_arch = "x86_64") => "avx512",
        Kernel::Own if cfg!(target_arch = "aarch64") => "neon",
        Kernel::Own => "baseline",
        Kernel::Fma => "avx2-fma",
        Kernel::Scalar => "scalar",
    }
}

/// `dst = beta * lhs rhs (+ dst when accumulate)`, with `threads > 1` splitting the work over
/// the current rayon pool. Shapes: `lhs` `(m, k)`, `rhs` `(k, n)`, `dst` `(m, n)`. Runs at the
/// process's [`dispatch::level`].
pub fn matmul(
    dst: ViewMut<'_>,
    lhs: View<'_>,
    rhs: View<'_>,
    beta: f32,
    accumulate: bool,
    threads: usize,
) -> Result<(), MatmulError> {
    matmul_at(dispatch::level(), dst, lhs, rhs, beta, accumulate, threads)
}

/// [`matmul`] at a given level (capped by what this CPU runs), e.g. to compare levels in one
/// process.
pub fn matmul_at(
    level: Level,
    dst: ViewMut<'_>,
    lhs: View<'_>,
    rhs: View<'_>,
    beta: f32,
    accumulate: bool,
    threads: usize,
) -> Result<(), MatmulError> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || dst.rows != m || dst.cols != n {
        return Err(MatmulError(format!(
            "shapes do not chain: lhs {m}x{k}, rhs {}x{n}, dst {}x{}",
            rhs.rows, dst.rows, dst.cols
        )));
    }
    if m > 1 && n > 0 && dst.row_stride < n {
        return Err(MatmulError(format!(
            "dst rows {} apart overlap ({n} columns)",
            dst.row_stride
        )));
    }
    let (ls, rs) = (lhs, rhs);
    fits(
        "lhs",
        ls.data.len(),
        ls.offset,
        m,
        k,
        ls.row_stride,
        ls.col_stride,
    )?;
    fits(
        "rhs",
        rs.data.len(),
        rs.offset,
        k,
        n,
        rs.row_stride,
        rs.col_stride,
    )?;
    fits("dst", dst.data.len(), dst.offset, m, n, dst.row_stride, 1)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                let s = dst.offset + i * dst.row_stride;
                dst.data[s..s + n].fill(0.0);
            }
        }
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // Strides fit in isize: every reachable index was checked above to be <= isize::MAX.
    let st = |s: usize| s as isize;
    // SAFETY: `fits` checked that every element the three views address, offset + i * row
    // stride + j * col stride for i < rows, j < cols, lies inside its slice (no overflow), so
    // the base pointers and all reachable addresses are in bounds. `dst` is borrowed mutably
    // and the inputs shared, so they cannot alias; dst's rows are at least `n` apart with unit
    // column stride, so its elements are distinct. gemm reads `dst` only when `accumulate`.
    unsafe {
        gemm_at(
            Kernel::at(level),
            Gemm {
                m,
                n,
                k,
                dst: dst.data.as_mut_ptr().add(dst.offset),
                dst_cs: 1,
                dst_rs: st(dst.row_stride),
                read_dst: accumulate,
                lhs: ls.data.as_ptr().add(ls.offset),
                lhs_cs: st(ls.col_stride),
                lhs_rs: st(ls.row_stride),
                rhs: rs.data.as_ptr().add(rs.offset),
                rhs_cs: st(rs.col_stride),
                rhs_rs: st(rs.row_stride),
                beta,
            },
            parallelism,
        );
    }
    Ok(())
}

/// The raw arguments of one gemm call (`dst = beta * lhs rhs (+ dst when read_dst)`), all
/// strides non-negative.
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
    beta: f32,
}

/// Runs `g` on `kernel`.
///
/// # Safety
///
/// Every element the three matrices address (`ptr + i * rs + j * cs` within their shapes) is
/// in bounds of its allocation, `dst`'s elements are distinct and alias neither input, and
/// `kernel` is `Kernel::at` of some level (so this CPU has its features).
unsafe fn gemm_at(kernel: Kernel, g: Gemm, parallelism: gemm::Parallelism) {
    match kernel {
        // SAFETY: the caller's guarantees are `gemm::gemm`'s.
        Kernel::Own => unsafe {
            gemm::gemm(
                g.m,
                g.n,
                g.k,
                g.dst,
                g.dst_cs,
                g.dst_rs,
                g.read_dst,
                g.lhs,
                g.lhs_cs,
                g.lhs_rs,
                g.rhs,
                g.rhs_cs,
                g.rhs_rs,
                1.0,
                g.beta,
                false,
                false,
                false,
                parallelism,
            )
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for `gemm::gemm`, which normalizes the call the same way (`forced`) before
        // it picks a kernel; `Kernel::at` chose `Fma` only where `V3::try_new` succeeded.
        Kernel::Fma => unsafe { forced::fma(g, parallelism) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; the scalar kernels need no CPU feature.
        Kernel::Scalar => unsafe { forced::scalar(g, parallelism) },
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: as for `Kernel::Own` (not built by `Kernel::at` off x86-64).
        _ => unsafe {
            gemm::gemm(
                g.m,
                g.n,
                g.k,
                g.dst,
                g.dst_cs,
                g.dst_rs,
                g.read_dst,
                g.lhs,
                g.lhs_cs,
                g.lhs_rs,
                g.rhs,
                g.rhs_cs,
                g.rhs_rs,
                1.0,
                g.beta,
                false,
                false,
                false,
                parallelism,
            )
        },
    }
}

/// gemm's AVX2 + FMA and scalar f32 kernels called directly: what `gemm::gemm` does for f32
/// after its run-time detection, with the kernel chosen here instead (gemm-common's generic
/// driver and gemm-f32's micro-kernel tables, both public API of gemm 0.19).
#[cfg(target_arch = "x86_64")]
mod forced {
    use gemm_common::gemm::gemm_basic_generic;
    use gemm_common::simd::{MixedSimd, Scalar, V3};

    use super::Gemm;

    /// `gemm::gemm`'s normalization: the micro-kernels prefer a column-major destination, so a
    /// row-major one is computed as its transpose (`dst^T = rhs^T lhs^T`). The strides here are
    /// never negative, so its other rewrites do not apply.
    fn normalize(g: Gemm) -> Gemm {
        if g.dst_cs.abs() < g.dst_rs.abs() {
            Gemm {
                m: g.n,
                n: g.m,
                dst_cs: g.dst_rs,
                dst_rs: g.dst_cs,
                lhs: g.rhs,
                lhs_cs: g.rhs_rs,
                lhs_rs: g.rhs_cs,
                rhs: g.lhs,
                rhs_cs: g.lhs_rs,
                rhs_rs: g.lhs_cs,
                ..g
            }
        } else {
            g
        }
    }

    /// # Safety
    ///
    /// As `super::gemm_at`, and this CPU has AVX2 and FMA (`V3::try_new` succeeds).
    pub(super) unsafe fn fma(g: Gemm, parallelism: gemm::Parallelism) {
        use gemm_f32::microkernel::fma::f32::{H_M, H_N, H_UKR, MR_DIV_N, NR, UKR};
        const N: usize = 8;
        let Some(simd) = <V3 as MixedSimd<f32, f32, f32, f32>>::try_new() else {
            // SAFETY: as `super::gemm_at` (the scalar kernels need no CPU feature).
            return unsafe { scalar(g, parallelism) };
        };
        let g = normalize(g);
        // SAFETY: the caller's guarantees, as gemm's own AVX2 entry point passes them on.
        unsafe {
            gemm_basic_generic::<_, f32, N, { MR_DIV_N * N }, NR, MR_DIV_N, H_M, H_N>(
                simd,
                g.m,
                g.n,
                g.k,
                g.dst,
                g.dst_cs,
                g.dst_rs,
                g.read_dst,
                g.lhs,
                g.lhs_cs,
                g.lhs_rs,
                g.rhs,
                g.rhs_cs,
                g.rhs_rs,
                1.0,
                g.beta,
                false,
                false,
                false,
                |a, b, c| a * b + c,
                &UKR,
                &H_UKR,
                false,
                parallelism,
            )
        }
    }

    /// # Safety
    ///
    /// As `super::gemm_at`.
    pub(super) unsafe fn scalar(g: Gemm, parallelism: gemm::Parallelism) {
        use gemm_f32::microkernel::scalar::f32::{H_M, H_N, H_UKR, MR_DIV_N, NR, UKR};
        const N: usize = 1;
        let g = normalize(g);
        // SAFETY: the caller's guarantees, as gemm's own scalar entry point passes them on.
        unsafe {
            gemm_basic_generic::<_, f32, N, { MR_DIV_N * N }, NR, MR_DIV_N, H_M, H_N>(
                Scalar,
                g.m,
                g.n,
                g.k,
                g.dst,
                g.dst_cs,
                g.dst_rs,
                g.read_dst,
                g.lhs,
                g.lhs_cs,
                g.lhs_rs,
                g.rhs,
                g.rhs_cs,
                g.rhs_rs,
                1.0,
                g.beta,
                false,
                false,
                false,
                |a, b, c| a * b + c,
                &UKR,
                &H_UKR,
                false,
                parallelism,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    let x = a.data[a.offset + i * a.row_stride + p * a.col_stride];
                    let y = b.data[b.offset + p * b.row_stride + j * b.col_stride];
                    s += f64::from(x) * f64::from(y);
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn strided_and_transposed_products_match_the_reference() {
        // lhs: columns 3..3+5 of a (7, 12) buffer; rhs: the transpose of rows of a (6, 9)
        // buffer at column offset 2 (5 wide); dst: columns 4..10 of a (7, 11) buffer.
        let a = data(7 * 12, 1);
        let b = data(6 * 9, 2);
        let lhs = View::rows(&a, 3, 7, 5, 12);
        let rhs = View::rows(&b, 2, 6, 5, 9).t();
        let want = reference(lhs, rhs);
        for (accumulate, threads) in [(false, 1), (true, 1), (false, 4)] {
            let mut d = data(7 * 11, 3);
            let before = d.clone();
            matmul(
                ViewMut {
                    data: &mut d,
                    offset: 4,
                    rows: 7,
                    cols: 6,
                    row_stride: 11,
                },
                lhs,
                rhs,
                0.5,
                accumulate,
                threads,
            )
            .unwrap();
            for i in 0..7 {
                for j in 0..11 {
                    let got = d[i * 11 + j];
                    if (4..10).contains(&j) {
                        let base = if accumulate { before[i * 11 + j] } else { 0.0 };
                        let w = base + 0.5 * want[i * 6 + j - 4];
                        assert!((got - w).abs() < 1e-5, "({i},{j}): {got} vs {w}");
                    } else {
                        assert_eq!(got, before[i * 11 + j], "({i},{j}) outside dst changed");
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_bounds_and_mismatched_views_are_errors() {
        let a = vec![0f32; 12];
        let mut d = vec![0f32; 9];
        fn dst(d: &mut [f32]) -> ViewMut<'_> {
            ViewMut {
                data: d,
                offset: 0,
                rows: 3,
                cols: 3,
                row_stride: 3,
            }
        }
        // 3x4 lhs with row stride 4 fits; offset 1 does not.
        let ok = View::rows(&a, 0, 3, 4, 4);
        let rhs = View::rows(&a, 0, 4, 3, 3);
        assert!(matmul(dst(&mut d), ok, rhs, 1.0, false, 1).is_ok());
        let bad = View::rows(&a, 1, 3, 4, 4);
        let e = matmul(dst(&mut d), bad, rhs, 1.0, false, 1).unwrap_err();
        assert!(e.to_string().contains("lhs"), "{e}");
        let wrong_k = View::rows(&a, 0, 3, 3, 3);
        assert!(matmul(dst(&mut d), wrong_k, rhs, 1.0, false, 1).is_err());
        let overlapping = ViewMut {
            data: &mut d,
            offset: 0,
            rows: 3,
            cols: 3,
            row_stride: 2,
        };
        assert!(matmul(overlapping, ok, rhs, 1.0, false, 1).is_err());
        let huge = View {
            data: &a,
            offset: 0,
            rows: 2,
            cols: 2,
            row_stride: usize::MAX,
            col_stride: 1,
        };
        let d2 = ViewMut {
            data: &mut d,
            offset: 0,
            rows: 2,
            cols: 3,
            row_stride: 3,
        };
        assert!(matmul(d2, huge, View::rows(&a, 0, 2, 3, 3), 1.0, false, 1).is_err());
    }
}
