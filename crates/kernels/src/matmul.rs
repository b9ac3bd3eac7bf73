//! A safe f32 matrix product on strided views of slices, wrapping the `gemm` crate's unsafe
//! raw-pointer kernel: every bound is checked before the call, so a view can never reach
//! outside its slice. Views let a caller multiply sub-matrices in place (one attention head's
//! columns of a `(tokens, hidden)` buffer, a weight read as its transpose) without copies.
#![allow(unsafe_code)]

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

/// `dst = beta * lhs rhs (+ dst when accumulate)`, with `threads > 1` splitting the work over
/// the current rayon pool. Shapes: `lhs` `(m, k)`, `rhs` `(k, n)`, `dst` `(m, n)`.
pub fn matmul(
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
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr().add(dst.offset),
            1,
            st(dst.row_stride),
            accumulate,
            ls.data.as_ptr().add(ls.offset),
            st(ls.col_stride),
            st(ls.row_stride),
            rs.data.as_ptr().add(rs.offset),
            st(rs.col_stride),
            st(rs.row_stride),
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
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
