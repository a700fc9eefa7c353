//! The HMM emission graph (ENV.md §5, §8) evaluated natively, row by row, with tract's arithmetic.
//!
//! `scripts/export.py` (`hmm_onnx_bytes`) writes one fixed graph: `x − means` → `MatMul` with the
//! precision-Cholesky factors → square → sum over the last axis → `× −0.5` → `+ log_norm`. Through tract
//! that graph costs about 4 µs per call, almost all of it graph interpretation (tensor allocation, op
//! dispatch, packing) around some 60 floating-point operations per state; the live twin needs one new row
//! per bar and symbol, the backtest and warm-up one per bar of the series.
//!
//! [`GaussianEmission::from_onnx`] accepts exactly that graph (node for node, initializer shapes included)
//! and reads its constants. [`GaussianEmission::log_emission_row`] then performs the IEEE operations tract
//! performs, in the same order: tract evaluates f64 `MatMul` with its portable Rust kernels on every
//! platform (tract-linalg 0.22 `generic/mmm.rs`: the accumulator starts at `0.0`, then `acc += a·b` over
//! the inner dimension in order; no fused multiply-add, Rust never contracts), and f64 `ReduceSum` over the
//! last axis as a left-to-right fold (tract-core 0.22 `ops/nn/reduce.rs`). The result is the same bits as
//! the tract plan, which the loader checks on probe rows before trusting it ([`crate::model`]), and
//! `tests/emission_rows.rs` checks on every row of every golden set. Any other graph runs through tract.

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

/// Why a graph is not the one `export.py` writes (it then runs through tract instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the export.py emission graph: {0}")]
pub struct NotExportGraph(pub String);

/// The constants of the export.py emission graph for `K` states over `D = 3` features.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianEmission {
    k: usize,
    /// `means[K][3]`.
    means: Vec<[f64; 3]>,
    /// `prec_chol[K][3][3]` (`U_k`, row `d` = input feature, column `e` = output).
    prec_chol: Vec<[[f64; 3]; 3]>,
    /// `log_norm[K]`.
    log_norm: Vec<f64>,
    /// The graph's scalar `minus_half` (−0.5 as export.py writes it).
    minus_half: f64,
}

const DOUBLE: i32 = 11;
const INT64: i32 = 7;

/// Node by node: op type, inputs, outputs (the names `hmm_onnx_bytes` uses).
const NODES: [(&str, &[&str], &str); 9] = [
    ("Unsqueeze", &["x", "axis1"], "x_t1d"),
    ("Sub", &["x_t1d", "means"], "diff"),
    ("Transpose", &["diff"], "diff_ktd"),
    ("MatMul", &["diff_ktd", "prec_chol"], "y"),
    ("Mul", &["y", "y"], "y2"),
    ("ReduceSum", &["y2", "axis2"], "maha_kt"),
    ("Transpose", &["maha_kt"], "maha"),
    ("Mul", &["maha", "minus_half"], "half_maha"),
    ("Add", &["half_maha", "log_norm"], "log_emission"),
];

fn fail(what: impl Into<String>) -> NotExportGraph {
    NotExportGraph(what.into())
}

fn f64_values(t: &TensorProto) -> Result<Vec<f64>, NotExportGraph> {
    if t.data_type != DOUBLE {
        return Err(fail(format!(
            "initializer `{}` is not f64 (type {})",
            t.name, t.data_type
        )));
    }
    if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(8) {
            return Err(fail(format!("initializer `{}`: torn raw data", t.name)));
        }
        Ok(t.raw_data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect())
    } else {
        Ok(t.double_data.clone())
    }
}

fn i64_values(t: &TensorProto) -> Result<Vec<i64>, NotExportGraph> {
    if t.data_type != INT64 {
        return Err(fail(format!("initializer `{}` is not i64", t.name)));
    }
    if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(8) {
            return Err(fail(format!("initializer `{}`: torn raw data", t.name)));
        }
        Ok(t.raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect())
    } else {
        Ok(t.int64_data.clone())
    }
}

fn check_node(
    node: &NodeProto,
    (op, inputs, output): (&str, &[&str], &str),
) -> Result<(), NotExportGraph> {
    if !node.domain.is_empty()
        || node.op_type != op
        || node.input != inputs
        || node.output.len() != 1
        || node.output[0] != output
    {
        return Err(fail(format!(
            "node {:?} {:?} -> {:?}, expected {op} {inputs:?} -> {output}",
            node.op_type, node.input, node.output
        )));
    }
    let ints = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| (a.ints.clone(), a.i))
    };
    let expected_attrs: &[&str] = match output {
        "diff_ktd" | "maha" => &["perm"],
        "maha_kt" => &["keepdims"],
        _ => &[],
    };
    if node
        .attribute
        .iter()
        .any(|a| !expected_attrs.contains(&a.name.as_str()))
    {
        return Err(fail(format!("node {output}: unexpected attributes")));
    }
    let ok = match output {
        "diff_ktd" => ints("perm").map(|(v, _)| v) == Some(vec![1, 0, 2]),
        "maha" => ints("perm").map(|(v, _)| v) == Some(vec![1, 0]),
        "maha_kt" => ints("keepdims").map(|(_, i)| i) == Some(0),
        _ => true,
    };
    if !ok {
        return Err(fail(format!("node {output}: attributes differ")));
    }
    Ok(())
}

impl GaussianEmission {
    /// Reads the export.py graph for `k` states; anything else is refused with the reason.
    pub fn from_onnx(onnx: &[u8], k: usize) -> Result<Self, NotExportGraph> {
        use tract_onnx::prelude::Framework;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(|e| fail(format!("unreadable: {e}")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| fail("no graph"))?;
        Self::from_graph(graph, k)
    }

    fn from_graph(g: &GraphProto, k: usize) -> Result<Self, NotExportGraph> {
        if g.node.len() != NODES.len() {
            return Err(fail(format!(
                "{} nodes, expected {}",
                g.node.len(),
                NODES.len()
            )));
        }
        for (node, expected) in g.node.iter().zip(NODES) {
            check_node(node, expected)?;
        }
        let names: Vec<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
        if names != ["x"] || g.output.len() != 1 || g.output[0].name != "log_emission" {
            return Err(fail("inputs/outputs are not x -> log_emission"));
        }
        if g.initializer.len() != 6 || !g.sparse_initializer.is_empty() {
            return Err(fail(
                "initializers are not means, prec_chol, log_norm, minus_half, axis1, axis2",
            ));
        }
        let init = |name: &str| {
            g.initializer
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| fail(format!("initializer `{name}` missing")))
        };
        let shaped = |name: &str, dims: &[i64]| -> Result<&TensorProto, NotExportGraph> {
            let t = init(name)?;
            if t.dims != dims
                || t.external_data.len() + usize::from(t.data_location.is_some_and(|l| l != 0)) != 0
            {
                return Err(fail(format!(
                    "initializer `{name}` has dims {:?}, expected {dims:?}",
                    t.dims
                )));
            }
            Ok(t)
        };
        let ki = i64::try_from(k).map_err(|_| fail("n_states too large"))?;
        let means = f64_values(shaped("means", &[ki, 3])?)?;
        let prec = f64_values(shaped("prec_chol", &[ki, 3, 3])?)?;
        let log_norm = f64_values(shaped("log_norm", &[ki])?)?;
        let minus_half = f64_values(shaped("minus_half", &[])?)?;
        let axis1 = i64_values(shaped("axis1", &[1])?)?;
        let axis2 = i64_values(shaped("axis2", &[1])?)?;
        if means.len() != k * 3
            || prec.len() != k * 9
            || log_norm.len() != k
            || minus_half.len() != 1
        {
            return Err(fail("initializer sizes do not match their dims"));
        }
        if axis1 != [1] || axis2 != [2] {
            return Err(fail("Unsqueeze/ReduceSum axes are not 1/2"));
        }
        if means
            .iter()
            .chain(&prec)
            .chain(&log_norm)
            .chain(&minus_half)
            .any(|v| !v.is_finite())
        {
            return Err(fail("a constant is not finite"));
        }
        Ok(Self {
            k,
            means: means.chunks_exact(3).map(|m| [m[0], m[1], m[2]]).collect(),
            prec_chol: prec
                .chunks_exact(9)
                .map(|u| [[u[0], u[1], u[2]], [u[3], u[4], u[5]], [u[6], u[7], u[8]]])
                .collect(),
            log_norm,
            minus_half: minus_half[0],
        })
    }

    pub fn n_states(&self) -> usize {
        self.k
    }

    /// `log b_k(x)` for `k = 0 … K−1` into `out` (`K` values), in the graph's operation order.
    pub fn log_emission_row(&self, x: &[f64; 3], out: &mut [f64]) {
        for (k, slot) in out.iter_mut().enumerate().take(self.k) {
            let m = &self.means[k];
            let u = &self.prec_chol[k];
            // Sub: x − means (broadcast over states).
            let diff = [x[0] - m[0], x[1] - m[1], x[2] - m[2]];
            // MatMul: y_e = Σ_d diff_d · U[d][e], accumulated from 0.0 over d in order.
            let mut maha = -0.0;
            for e in 0..3 {
                let mut y = 0.0;
                for (row, diff_d) in u.iter().zip(&diff) {
                    y += row[e] * diff_d;
                }
                // Mul(y, y), then ReduceSum over e as a left-to-right fold.
                maha += y * y;
            }
            *slot = maha * self.minus_half + self.log_norm[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-state graph with U = I and mean 0: `log b(x) = log_norm − ½‖x‖²`.
    #[test]
    fn identity_precision_is_half_the_squared_norm() {
        let e = GaussianEmission {
            k: 1,
            means: vec![[0.0; 3]],
            prec_chol: vec![[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]],
            log_norm: vec![-2.0],
            minus_half: -0.5,
        };
        let mut out = [0.0];
        e.log_emission_row(&[1.0, 2.0, 2.0], &mut out);
        assert_eq!(out[0], -2.0 - 4.5);
    }

    #[test]
    fn a_foreign_graph_is_refused() {
        assert!(GaussianEmission::from_onnx(b"not onnx", 5).is_err());
    }
}
