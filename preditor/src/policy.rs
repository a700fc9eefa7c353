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

impl Dense {
    /// A layer from its transposed weights (`[inputs][stride]`, `stride` = `outputs` rounded up to
    /// 8) and biases, both already through DAZ.
    fn new(
        inputs: usize,
        outputs: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Self {
        let stride = outputs.div_ceil(8) * 8;
        let mut bias_padded = bias.clone();
        bias_padded.resize(stride, 0.0);
        let min_ulp = weight
            .iter()
            .chain(&bias)
            .filter(|v| **v != 0.0)
            .map(|v| ulp_exponent(*v))
            .min()
            .unwrap_or(i32::MAX);
        Dense {
            inputs,
            outputs,
            weight,
            stride,
            bias,
            bias_padded,
            min_ulp,
            activation,
        }
    }
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
            layers.push(Dense::new(width, outputs, transposed, bias, activation));
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
        #[cfg(target_arch = "x86_64")]
        {
            #[allow(unsafe_code)]
            // SAFETY: a `NativePolicy` exists only where AVX2 and FMA were detected (`from_graph`,
            // `fma_available`), so the instructions `logits_row_fma` is compiled for are present.
            unsafe {
                self.logits_row_fma(obs)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mut rows = LayerBuffers::new(obs);
            for layer in &self.layers {
                let (x, y) = rows.next(layer);
                x.iter_mut().for_each(|v| *v = daz(*v));
                layer_portable(layer, self.bias, x, y);
            }
            rows.logits()
        }
    }

    /// The whole row compiled with AVX2 and FMA, the copies and DAZ passes between layers too.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn logits_row_fma(&self, obs: &[f32]) -> [f32; 7] {
        let mut rows = LayerBuffers::new(obs);
        for layer in &self.layers {
            let (x, y) = rows.next(layer);
            daz_all(x);
            layer_fma(layer, self.bias, x, y);
        }
        rows.logits()
    }
}

/// A row's values between layers: two stack buffers, the inputs of the next layer and its outputs.
struct LayerBuffers {
    a: [f32; MAX_WIDTH],
    b: [f32; MAX_WIDTH],
}

impl LayerBuffers {
    #[inline(always)]
    fn new(obs: &[f32]) -> Self {
        let mut a = [0.0f32; MAX_WIDTH];
        let n = obs.len().min(MAX_WIDTH);
        a[..n].copy_from_slice(&obs[..n]);
        LayerBuffers {
            a,
            b: [0.0f32; MAX_WIDTH],
        }
    }

    /// The last layer's outputs become the inputs of `layer`: (inputs, outputs), the inputs not yet
    /// read through DAZ.
    #[inline(always)]
    fn next(&mut self, layer: &Dense) -> (&mut [f32], &mut [f32]) {
        std::mem::swap(&mut self.a, &mut self.b);
        (&mut self.b[..layer.inputs], &mut self.a[..layer.stride])
    }

    #[inline(always)]
    fn logits(&self) -> [f32; 7] {
        let mut out = [0.0f32; 7];
        out.copy_from_slice(&self.a[..7]);
        out
    }
}

/// One layer with AVX2 and FMA (tract's condition for its FMA kernels, `x86_64_fma.rs`): the
/// multiply-adds in explicit 8-lane `vfmadd231ps`, as tract's kernel does them. (Left to the
/// compiler, the 8-output logits layer came out as a chain of scalar FMAs and lane shuffles: a
/// third of the policy's time in `perf record`.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn layer_fma(layer: &Dense, bias: BiasOrder, x: &[f32], y: &mut [f32]) {
    let exact = exact_daz(layer, min_biased_exponent_fma(x));
    let stride = layer.stride;
    let mut o0 = 0;
    while o0 < stride {
        let first = match bias {
            BiasOrder::First => Some(&layer.bias_padded[o0..]),
            BiasOrder::After => None,
        };
        let out = &mut y[o0..];
        // Blocks of 64, 32, 16 or 8 outputs: up to 8 ymm accumulators, held in registers.
        o0 += match stride - o0 {
            64.. => simd_block::<8>(layer, o0, x, first, exact, out),
            32.. => simd_block::<4>(layer, o0, x, first, exact, out),
            16.. => simd_block::<2>(layer, o0, x, first, exact, out),
            _ => simd_block::<1>(layer, o0, x, first, exact, out),
        };
    }
    finish_layer(layer, bias, y);
}

/// Outputs `o0 .. o0 + 8·M` of a layer (the padded width is a multiple of 8); returns `8·M`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn simd_block<const M: usize>(
    layer: &Dense,
    o0: usize,
    x: &[f32],
    first: Option<&[f32]>,
    exact: bool,
    out: &mut [f32],
) -> usize {
    use std::arch::x86_64::{__m256, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_setzero_ps};
    let width = 8 * M;
    let mut acc = [_mm256_setzero_ps(); M];
    if let Some(b) = first.and_then(|b| b.get(..width)) {
        for (m, a) in acc.iter_mut().enumerate() {
            *a = load8(&b[8 * m..]);
        }
    }
    let stride = layer.stride;
    let mut step = |k: usize, xk: f32, daz_acc: bool| {
        let Some(w) = layer.weight.get(k * stride + o0..k * stride + o0 + width) else {
            return;
        };
        let xv = _mm256_set1_ps(xk);
        for (m, a) in acc.iter_mut().enumerate() {
            let acc_in: __m256 = if daz_acc { daz8(*a) } else { *a };
            *a = _mm256_fmadd_ps(load8(&w[8 * m..]), xv, acc_in);
        }
    };
    // Two loops, so that the common one has no test in it.
    if exact {
        for (k, xk) in x.iter().enumerate() {
            step(k, *xk, true);
        }
    } else {
        for (k, xk) in x.iter().enumerate() {
            step(k, *xk, false);
        }
    }
    if let Some(out) = out.get_mut(..width) {
        for (m, a) in acc.iter().enumerate() {
            store8(&mut out[8 * m..], *a);
        }
    }
    width
}

/// The first 8 values of `v` (at least 8 long) as one register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load8(v: &[f32]) -> std::arch::x86_64::__m256 {
    let v: &[f32; 8] = v.first_chunk().expect("8 lanes");
    #[allow(unsafe_code)]
    // SAFETY: `v` is 8 f32 (32 bytes) of readable memory; `loadu` takes any alignment.
    unsafe {
        std::arch::x86_64::_mm256_loadu_ps(v.as_ptr())
    }
}

/// Stores a register into the first 8 values of `v` (at least 8 long).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn store8(v: &mut [f32], a: std::arch::x86_64::__m256) {
    let v: &mut [f32; 8] = v.first_chunk_mut().expect("8 lanes");
    #[allow(unsafe_code)]
    // SAFETY: `v` is 8 f32 (32 bytes) of writable memory; `storeu` takes any alignment.
    unsafe {
        std::arch::x86_64::_mm256_storeu_ps(v.as_mut_ptr(), a)
    }
}

/// [`daz`] on 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn daz8(v: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let bits = _mm256_castps_si256(v);
    let exponent = _mm256_and_si256(bits, _mm256_set1_epi32(0x7f80_0000));
    let denormal = _mm256_cmpeq_epi32(exponent, _mm256_setzero_si256());
    let signed_zero = _mm256_and_si256(bits, _mm256_set1_epi32(i32::MIN));
    _mm256_castsi256_ps(_mm256_blendv_epi8(bits, signed_zero, denormal))
}

/// Whether a partial sum of this layer could be denormal, so that DAZ must be applied to the
/// accumulator at every step. It cannot when every partial sum is a multiple of the smallest ulp
/// among the products (and biases) that enter it, and that ulp is 2^-126 or more: a nonzero
/// multiple of it is normal. So the test runs per input, not per product. `min_biased` is the
/// inputs' [`min_biased_exponent`].
#[inline(always)]
fn exact_daz(layer: &Dense, min_biased: u32) -> bool {
    // No nonzero input: nothing but the bias enters, and it is normal (or zero).
    let x_ulp = if min_biased == ZERO_EXPONENT {
        i32::MAX
    } else {
        min_biased as i32 - 127 - 23
    };
    // (A first bias enters unmultiplied: an input of ulp 2^0 or more does not lower the bound.)
    layer.min_ulp.saturating_add(x_ulp.min(0)) < -126
}

/// What [`min_biased_exponent`] gives when every input is zero: above any finite exponent.
const ZERO_EXPONENT: u32 = 0x100;

/// The smallest biased exponent (bits 23-30) among the nonzero values of `x` (already through
/// DAZ, so a nonzero value has an exponent above 0), or [`ZERO_EXPONENT`].
#[inline(always)]
fn min_biased_exponent(x: &[f32]) -> u32 {
    x.iter()
        .map(|v| biased_exponent_or_zero(v.to_bits()))
        .fold(ZERO_EXPONENT, u32::min)
}

#[inline(always)]
fn biased_exponent_or_zero(bits: u32) -> u32 {
    let e = (bits >> 23) & 0xff;
    if e == 0 { ZERO_EXPONENT } else { e }
}

/// [`min_biased_exponent`] 8 lanes at a time (this runs for every layer of every row).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn min_biased_exponent_fma(x: &[f32]) -> u32 {
    use std::arch::x86_64::*;
    let mut lanes = _mm256_set1_epi32(ZERO_EXPONENT as i32);
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        let bits = _mm256_castps_si256(load8(c));
        let e = _mm256_and_si256(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(0xff));
        let zero = _mm256_cmpeq_epi32(e, _mm256_setzero_si256());
        let e = _mm256_blendv_epi8(e, _mm256_set1_epi32(ZERO_EXPONENT as i32), zero);
        lanes = _mm256_min_epu32(lanes, e);
    }
    let mut m = [0u32; 8];
    #[allow(unsafe_code)]
    // SAFETY: `m` is 8 u32 (32 bytes) of writable memory; `storeu` takes any alignment.
    unsafe {
        _mm256_storeu_si256(m.as_mut_ptr().cast(), lanes)
    };
    m.into_iter()
        .chain(tail.iter().map(|v| biased_exponent_or_zero(v.to_bits())))
        .fold(ZERO_EXPONENT, u32::min)
}

/// [`daz`] on every value of `x`, 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn daz_all(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = daz8(load8(c));
        store8(c, v);
    }
    for v in chunks.into_remainder() {
        *v = daz(*v);
    }
}

/// The bias (when it enters after the products) and the activation.
#[inline(always)]
fn finish_layer(layer: &Dense, bias: BiasOrder, y: &mut [f32]) {
    if bias == BiasOrder::After {
        for (acc, b) in y.iter_mut().zip(&layer.bias) {
            *acc = daz(*acc) + b;
        }
    }
    // One loop per activation, so that each vectorises (tract's tanh is a division per value).
    match layer.activation {
        // Eight lanes at a time (`y` is padded to a multiple of 8), as tract's kernel does. A plain
        // loop, not `array::map`, whose closure would be a function compiled without the caller's
        // AVX2/FMA (each `mul_add` in it a call to `fmaf`).
        Activation::Tanh => {
            for lanes in y.chunks_exact_mut(8) {
                for v in lanes {
                    *v = tract_tanh(*v);
                }
            }
        }
        Activation::Relu => y.iter_mut().for_each(|v| *v = daz(*v).max(0.0)),
        Activation::Identity => {}
    }
}

/// The same layer without SIMD types (other targets; and the reference `tests` compare with):
/// every output's accumulator takes the inputs in order (the kernel's order per output); blocks of
/// outputs are independent chains.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn layer_portable(layer: &Dense, bias: BiasOrder, x: &[f32], y: &mut [f32]) {
    let exact = exact_daz(layer, min_biased_exponent(x));
    let stride = layer.stride;
    let mut o0 = 0;
    while o0 < stride {
        let n = (stride - o0).min(64);
        let first = match bias {
            BiasOrder::First => Some(&layer.bias_padded[o0..o0 + n]),
            BiasOrder::After => None,
        };
        let out = &mut y[o0..o0 + n];
        for (j, o) in out.iter_mut().enumerate() {
            let mut a = first.map_or(0.0, |b| b[j]);
            for (k, xk) in x.iter().enumerate() {
                let wj = layer.weight[k * stride + o0 + j];
                a = wj.mul_add(*xk, if exact { daz(a) } else { a });
            }
            *o = a;
        }
        o0 += n;
    }
    finish_layer(layer, bias, y);
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

    /// A layer of `inputs × outputs` pseudo-random weights; `tiny` puts denormal-range weights in
    /// it, so that partial sums can be denormal and the accumulator's DAZ path runs.
    fn dense(
        inputs: usize,
        outputs: usize,
        seed: u64,
        tiny: bool,
        activation: Activation,
    ) -> Dense {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let stride = outputs.div_ceil(8) * 8;
        let mut weight = vec![0.0f32; inputs * stride];
        for k in 0..inputs {
            for o in 0..outputs {
                let w = next();
                weight[k * stride + o] = daz(if tiny && o % 3 == 0 { w * 1e-30 } else { w });
            }
        }
        // The tiny outputs get no bias, so that their sums of tiny products are not rounded away.
        let bias: Vec<f32> = (0..outputs)
            .map(|o| if tiny && o % 3 == 0 { 0.0 } else { next() })
            .collect();
        Dense::new(inputs, outputs, weight, bias, activation)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_layers_give_the_portable_loops_bits() {
        if !fma_available() {
            return;
        }
        let shapes = [(13, 64), (64, 64), (64, 7), (5, 100), (70, 24), (3, 8)];
        for (n, &(inputs, outputs)) in shapes.iter().enumerate() {
            for tiny in [false, true] {
                for act in [Activation::Tanh, Activation::Relu, Activation::Identity] {
                    let layer = dense(inputs, outputs, 77 + n as u64, tiny, act);
                    let mut s = 0x2545_f491_4f6c_dd1du64 + n as u64;
                    let mut next = move || {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0
                    };
                    for row in 0..40 {
                        // With tiny weights, some rows of tiny inputs: products of 1e-39 to 1e-37,
                        // so that partial sums start denormal and DAZ on the accumulator shows.
                        let x: Vec<f32> = (0..inputs)
                            .map(|i| match (row + i) % 11 {
                                0 => 0.0,
                                _ if tiny && row % 4 == 0 => next() * [1e-9, 1e-8, 1e-7][i % 3],
                                1 if tiny => next() * 1e-20,
                                _ => next(),
                            })
                            .collect();
                        for bias in [BiasOrder::After, BiasOrder::First] {
                            let mut ours = vec![0.0f32; layer.stride];
                            let mut theirs = vec![0.0f32; layer.stride];
                            #[allow(unsafe_code)]
                            // SAFETY: AVX2 and FMA were detected just above.
                            unsafe {
                                layer_fma(&layer, bias, &x, &mut ours)
                            };
                            layer_portable(&layer, bias, &x, &mut theirs);
                            let bits =
                                |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&ours),
                                bits(&theirs),
                                "{inputs}x{outputs} tiny={tiny} {act:?} {bias:?} row {row}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_foreign_graph_is_refused() {
        assert!(NativePolicy::from_onnx(b"not onnx", 13).is_err());
    }
}
