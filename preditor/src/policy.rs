//! The policy graph (ENV.md §8) evaluated natively, row by row, with tract's f32 arithmetic.
//!
//! `scripts/policy_export.py` (`policy_onnx_bytes`) writes, without a VecNormalize, one shape of
//! graph: `Cast` to f32 → `Flatten` → (`Gemm` → `Tanh` or `Relu`)* → `Gemm` (the logits). Through
//! tract a call costs about 46k instructions for some 5,600 multiply-adds (a 13-64-64-7 MLP):
//! most of it is the plan's per-call overhead (state, tensors, packing). This module does the
//! multiply-adds only, in tract's order and with its roundings, on x86-64 with AVX2 and FMA, where
//! tract 0.22's f32 kernels are (tract-linalg 0.22.5, `x86_64/fma/fma_mmm_f32_*.tmpl` and
//! `x86_64/avx512/avx512_mmm_f32_*.tmpl`, each a `packed_packed_loop1` over the inner dimension):
//! - `Gemm`: every output starts at `0.0` (`vzeroall`) and takes one fused multiply-add per input,
//!   in input order (`vfmadd231ps`); the bias is added after (the kernel's fused per-row or
//!   per-column add, `vaddps`). Which of "bias after" and "bias first" a plan does is not assumed:
//!   the loader tries both against the plan.
//! - `Tanh`: tract's rational approximation (`x86_64/fma/fma_tanh_f32.tmpl`): `x` clamped to
//!   ±8.9, `x·P(x²) / Q(x²)` by Horner's rule in fused multiply-adds, one division.
//! - `Relu`: `max(x, 0)`.
//! - The kernels run with MXCSR = 0x1FC0 (`preamble.tmpliq`): denormal operands are read as zero
//!   (DAZ), results are not flushed; so is every operand here.
//!
//! [`NativePolicy::from_onnx`] accepts exactly that graph and reads its weights. The loader
//! ([`crate::plans`]) uses it only after it gave the plan's bits on probe rows, and
//! `tests/policy_rows.rs` compares it with the plan on every golden observation. Any other graph,
//! or a CPU without AVX2 and FMA, runs through tract.

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

use crate::emission::NotExportGraph;

/// The widest layer evaluated natively (two stack buffers of this many f32 per row).
const MAX_WIDTH: usize = 256;
const FLOAT: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Tanh,
    Relu,
    /// The logits layer.
    Identity,
}

/// Where the bias enters a layer's accumulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasOrder {
    /// `(Σ w·x) + b`: the kernel's fused add after the products.
    After,
    /// `b + Σ w·x`, the bias as the first accumulator.
    First,
}

#[derive(Debug, Clone, PartialEq)]
struct Dense {
    inputs: usize,
    outputs: usize,
    /// `[inputs][outputs]` (the ONNX `Gemm`'s `[outputs][inputs]` transposed, so that one input
    /// updates every output's accumulator from contiguous memory), denormals read as zero.
    weight: Vec<f32>,
    /// `outputs` rounded up to a multiple of 8: the row length of `weight` (padded with zeros).
    stride: usize,
    bias: Vec<f32>,
    /// `bias` padded with zeros to `stride`.
    bias_padded: Vec<f32>,
    /// The smallest [`ulp_exponent`] among the nonzero weights and biases.
    min_ulp: i32,
    activation: Activation,
}

/// The weights of an export.py policy graph.
#[derive(Debug, Clone, PartialEq)]
pub struct NativePolicy {
    layers: Vec<Dense>,
    bias: BiasOrder,
}

fn fail(what: impl Into<String>) -> NotExportGraph {
    NotExportGraph(what.into())
}

fn f32_values(t: &TensorProto) -> Result<Vec<f32>, NotExportGraph> {
    if t.data_type != FLOAT {
        return Err(fail(format!("initializer `{}` is not f32", t.name)));
    }
    if !t.external_data.is_empty() || t.data_location.is_some_and(|l| l != 0) {
        return Err(fail(format!("initializer `{}` is external", t.name)));
    }
    if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(4) {
            return Err(fail(format!("initializer `{}`: torn raw data", t.name)));
        }
        Ok(t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    } else {
        Ok(t.float_data.clone())
    }
}

fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn one_output(node: &NodeProto) -> Result<&str, NotExportGraph> {
    match (node.domain.is_empty(), node.output.as_slice()) {
        (true, [out]) => Ok(out),
        _ => Err(fail(format!("node {:?}: not one output", node.op_type))),
    }
}

/// DAZ: a denormal operand reads as a zero of its sign.
#[inline(always)]
fn daz(x: f32) -> f32 {
    let bits = x.to_bits();
    if bits & 0x7f80_0000 == 0 {
        f32::from_bits(bits & 0x8000_0000)
    } else {
        x
    }
}

#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    daz(a).mul_add(daz(b), daz(c))
}

/// tract's f32 `Tanh` on x86-64 with FMA (`fma_tanh_f32.tmpl`, its `loop_1`, lane by lane). The
/// constants are written as in tract's source; the assembler rounds each to the nearest f32, as Rust
/// does.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn tract_tanh(x: f32) -> f32 {
    const LOW: f32 = -8.9;
    const HIGH: f32 = 8.9;
    const A13: f32 = -8.488_492_677e-14;
    const A11: f32 = 5.277_853_000e-11;
    const A9: f32 = -2.022_500_419e-8;
    const A7: f32 = 0.000_011_154_248_33;
    const A5: f32 = 0.003_103_950_131;
    const A3: f32 = 0.130_840_045_3;
    const A1: f32 = 0.999_999_993_4;
    const B6: f32 = 0.000_254_613_658_0;
    const B4: f32 = 0.024_495_153_79;
    const B2: f32 = 0.464_173_316_2;
    const B0: f32 = 1.0;
    // vmaxps / vminps give the second operand (the bound) when `x` is NaN, as f32::max/min give
    // the number; `clamp` would give NaN.
    #[allow(clippy::manual_clamp)]
    let x = daz(x).max(LOW).min(HIGH);
    let x2 = x * x;
    let mut p = A13;
    for c in [A11, A9, A7, A5, A3, A1] {
        p = fma(p, x2, c);
    }
    let num = daz(x) * daz(p);
    let mut q = B6;
    for c in [B4, B2, B0] {
        q = fma(q, x2, c);
    }
    daz(num) / daz(q)
}

impl NativePolicy {
    /// Reads the export.py policy graph for observations of `obs_dim` values and 7 logits;
    /// anything else is refused with the reason.
    pub fn from_onnx(onnx: &[u8], obs_dim: usize) -> Result<Self, NotExportGraph> {
        use tract_onnx::prelude::Framework;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(|e| fail(format!("unreadable: {e}")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| fail("no graph"))?;
        Self::from_graph(graph, obs_dim)
    }

    fn from_graph(g: &GraphProto, obs_dim: usize) -> Result<Self, NotExportGraph> {
        let [input] = g.input.as_slice() else {
            return Err(fail("not one input"));
        };
        let [output] = g.output.as_slice() else {
            return Err(fail("not one output"));
        };
        if !g.sparse_initializer.is_empty() {
            return Err(fail("sparse initializers"));
        }
        let init = |name: &str| {
            g.initializer
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| fail(format!("`{name}` is not an initializer")))
        };
        let mut nodes = g.node.iter();
        let mut prev = input.name.as_str();
        // `Cast` to f32 (a VecNormalize's f64 nodes before it are not evaluated natively).
        let cast = nodes.next().ok_or_else(|| fail("no nodes"))?;
        if cast.op_type != "Cast"
            || cast.input != [prev]
            || attr_i(cast, "to") != Some(i64::from(FLOAT))
            || cast.attribute.len() != 1
        {
            return Err(fail("the first node is not Cast(obs) to f32"));
        }
        prev = one_output(cast)?;
        let flatten = nodes.next().ok_or_else(|| fail("no Flatten"))?;
        if flatten.op_type != "Flatten"
            || flatten.input != [prev]
            || attr_i(flatten, "axis") != Some(1)
            || flatten.attribute.len() != 1
        {
            return Err(fail("the second node is not Flatten(axis = 1)"));
        }
        prev = one_output(flatten)?;
        let mut layers = Vec::new();
        let mut width = obs_dim;
        let mut nodes = nodes.peekable();
        while let Some(gemm) = nodes.next() {
            let [x, w, b] = gemm.input.as_slice() else {
                return Err(fail("a Gemm without 3 inputs"));
            };
            let attrs_ok = gemm.attribute.iter().all(|a| match a.name.as_str() {
                "alpha" | "beta" => a.f == 1.0,
                "transB" => a.i == 1,
                "transA" => a.i == 0,
                _ => false,
            });
            if gemm.op_type != "Gemm" || x != prev || !attrs_ok || attr_i(gemm, "transB") != Some(1)
            {
                return Err(fail(format!(
                    "node {:?} is not Gemm(x, W, b) with transB = 1, alpha = beta = 1",
                    gemm.op_type
                )));
            }
            let (wt, bt) = (init(w)?, init(b)?);
            let outputs = usize::try_from(wt.dims.first().copied().unwrap_or(-1))
                .map_err(|_| fail("Gemm weight dims"))?;
            if wt.dims.len() != 2
                || wt.dims[1] != i64::try_from(width).unwrap_or(-1)
                || bt.dims != [wt.dims[0]]
                || outputs == 0
                || outputs > MAX_WIDTH
            {
                return Err(fail(format!(
                    "Gemm `{w}` has dims {:?} / bias {:?} after a layer of {width}",
                    wt.dims, bt.dims
                )));
            }
            let weight = f32_values(wt)?;
            let bias = f32_values(bt)?;
            if weight.len() != outputs * width || bias.len() != outputs {
                return Err(fail("initializer sizes do not match their dims"));
            }
            if weight.iter().chain(&bias).any(|v| !v.is_finite()) {
                return Err(fail("a weight is not finite"));
            }
            prev = one_output(gemm)?;
            let activation = match nodes.peek() {
                None => Activation::Identity,
                Some(n) if n.input == [prev] && n.attribute.is_empty() => {
                    let a = match n.op_type.as_str() {
                        "Tanh" => Activation::Tanh,
                        "Relu" => Activation::Relu,
                        other => return Err(fail(format!("activation {other:?}"))),
                    };
                    prev = one_output(n)?;
                    nodes.next();
                    a
                }
                Some(n) => return Err(fail(format!("node {:?} after a Gemm", n.op_type))),
            };
            let stride = outputs.div_ceil(8) * 8;
            let mut transposed = vec![0.0f32; width * stride];
            for (o, row) in weight.chunks_exact(width).enumerate() {
                for (i, w) in row.iter().enumerate() {
                    transposed[i * stride + o] = daz(*w);
                }
            }
            let bias: Vec<f32> = bias.into_iter().map(daz).collect();
            let mut bias_padded = bias.clone();
            bias_padded.resize(stride, 0.0);
            let min_ulp = transposed
                .iter()
                .chain(&bias)
                .filter(|v| **v != 0.0)
                .map(|v| ulp_exponent(*v))
                .min()
                .unwrap_or(i32::MAX);
            layers.push(Dense {
                inputs: width,
                outputs,
                weight: transposed,
                stride,
                bias_padded,
                min_ulp,
                bias,
                activation,
            });
            width = outputs;
            if activation == Activation::Identity {
                break;
            }
        }
        match layers.last() {
            Some(l) if l.activation == Activation::Identity && l.outputs == 7 => {}
            _ => return Err(fail("the graph does not end in a Gemm of 7 logits")),
        }
        if prev != output.name {
            return Err(fail("the last Gemm is not the graph's output"));
        }
        if !fma_available() {
            return Err(fail(
                "this CPU has no AVX2 and FMA (tract's f32 kernels are others)",
            ));
        }
        Ok(Self {
            layers,
            bias: BiasOrder::After,
        })
    }

    /// The same weights with the bias entering as `order` says.
    pub fn with_bias(mut self, order: BiasOrder) -> Self {
        self.bias = order;
        self
    }

    pub fn bias_order(&self) -> BiasOrder {
        self.bias
    }

    /// The 7 logits of one observation (`obs_dim` values).
    pub fn logits_row(&self, obs: &[f32]) -> [f32; 7] {
        let mut a = [0.0f32; MAX_WIDTH];
        let mut b = [0.0f32; MAX_WIDTH];
        let n = obs.len().min(MAX_WIDTH);
        a[..n].copy_from_slice(&obs[..n]);
        for layer in &self.layers {
            for v in &mut a[..layer.inputs] {
                *v = daz(*v);
            }
            layer_fma(layer, self.bias, &a[..layer.inputs], &mut b[..layer.stride]);
            std::mem::swap(&mut a, &mut b);
        }
        let mut out = [0.0f32; 7];
        out.copy_from_slice(&a[..7]);
        out
    }
}

/// One layer; compiled with AVX2 and FMA (tract's condition for its FMA kernels, `x86_64_fma.rs`)
/// so that `mul_add` is the `vfmadd` instruction, not a call, and the denormal test runs 8 lanes.
fn layer_fma(layer: &Dense, bias: BiasOrder, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unsafe_code)]
        // SAFETY: a `NativePolicy` exists only where AVX2 and FMA were detected (`from_graph`,
        // `fma_available`), so the instructions `layer_with_fma` is compiled for are present.
        unsafe {
            layer_with_fma(layer, bias, x, y);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    layer_portable(layer, bias, x, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn layer_with_fma(layer: &Dense, bias: BiasOrder, x: &[f32], y: &mut [f32]) {
    layer_portable(layer, bias, x, y);
}

/// Every output's accumulator takes the inputs in order (the kernel's order per output); blocks of
/// outputs are independent chains, held in registers.
#[inline(always)]
fn layer_portable(layer: &Dense, bias: BiasOrder, x: &[f32], y: &mut [f32]) {
    // DAZ on the accumulator changes nothing when no partial sum can be denormal: every partial
    // sum is a multiple of the smallest ulp among the products (and biases) that enter it, and a
    // nonzero multiple of 2^-126 or more is normal. So the test runs per input, not per product.
    let x_ulp = x
        .iter()
        .filter(|v| **v != 0.0)
        .map(|v| ulp_exponent(*v))
        .min()
        .unwrap_or(i32::MAX);
    // (A first bias enters unmultiplied: an input of ulp 2^0 or more does not lower the bound.)
    let exact = layer.min_ulp.saturating_add(x_ulp.min(0)) < -126;
    let stride = layer.stride;
    let mut o0 = 0;
    while o0 < stride {
        let left = stride - o0;
        let n = if left >= 64 {
            64
        } else if left >= 32 {
            32
        } else if left >= 16 {
            16
        } else {
            8
        };
        let first = match bias {
            BiasOrder::First => Some(&layer.bias_padded[o0..o0 + n]),
            BiasOrder::After => None,
        };
        let out = &mut y[o0..o0 + n];
        match n {
            64 => block::<64>(layer, o0, x, first, exact, out),
            32 => block::<32>(layer, o0, x, first, exact, out),
            16 => block::<16>(layer, o0, x, first, exact, out),
            _ => block::<8>(layer, o0, x, first, exact, out),
        }
        o0 += n;
    }
    if bias == BiasOrder::After {
        for (acc, b) in y.iter_mut().zip(&layer.bias) {
            *acc = daz(*acc) + b;
        }
    }
    // One loop per activation, so that each vectorises (tract's tanh is a division per value).
    match layer.activation {
        // Eight lanes at a time (`y` is padded to a multiple of 8), as tract's kernel does.
        Activation::Tanh => {
            for lanes in y.chunks_exact_mut(8) {
                if let Ok(lanes) = <&mut [f32; 8]>::try_from(lanes) {
                    *lanes = lanes.map(tract_tanh);
                }
            }
        }
        Activation::Relu => y.iter_mut().for_each(|v| *v = daz(*v).max(0.0)),
        Activation::Identity => {}
    }
}

/// Outputs `o0..o0 + N` of a layer (`N` a multiple of 8, the padded width).
#[inline(always)]
fn block<const N: usize>(
    layer: &Dense,
    o0: usize,
    x: &[f32],
    first: Option<&[f32]>,
    exact: bool,
    out: &mut [f32],
) {
    let mut acc = [0.0f32; N];
    if let Some(b) = first {
        acc.copy_from_slice(b);
    }
    let stride = layer.stride;
    for (k, xk) in x.iter().enumerate() {
        let Ok(w) = <&[f32; N]>::try_from(&layer.weight[k * stride + o0..k * stride + o0 + N])
        else {
            continue;
        };
        if exact {
            for (a, wj) in acc.iter_mut().zip(w) {
                *a = wj.mul_add(*xk, daz(*a));
            }
        } else {
            for (a, wj) in acc.iter_mut().zip(w) {
                *a = wj.mul_add(*xk, *a);
            }
        }
    }
    out.copy_from_slice(&acc);
}

/// The exponent of a normal `v`'s last significand bit (its ulp is `2^ulp_exponent`); `v` is not
/// zero, and not denormal (inputs and weights are read as zero then).
fn ulp_exponent(v: f32) -> i32 {
    ((v.to_bits() >> 23) & 0xff) as i32 - 127 - 23
}

fn fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_odd_bounded_and_near_the_true_tanh() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let t = tract_tanh(x);
            assert_eq!(t.to_bits(), (-tract_tanh(-x)).to_bits(), "{x}");
            assert!((t - x.tanh()).abs() < 2e-6, "{x}: {t} vs {}", x.tanh());
        }
        assert_eq!(daz(f32::MIN_POSITIVE / 2.0), 0.0);
        assert!(daz(-f32::MIN_POSITIVE / 2.0).is_sign_negative());
    }

    #[test]
    fn a_foreign_graph_is_refused() {
        assert!(NativePolicy::from_onnx(b"not onnx", 13).is_err());
    }
}
