/* Op constructors. Each adds one node (or a few) to the graph of its inputs,
 * checks shapes and dtypes, and returns NULL with the graph's error set when
 * they do not fit. Binary ops broadcast like NumPy. Negative axes count from
 * the end. */
#ifndef ASG_OPS_H
#define ASG_OPS_H

#include "asg/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise unary ---- */
ASG_API asg_tensor *asg_neg(asg_tensor *x);
ASG_API asg_tensor *asg_abs(asg_tensor *x);
ASG_API asg_tensor *asg_sign(asg_tensor *x);
ASG_API asg_tensor *asg_exp(asg_tensor *x);
ASG_API asg_tensor *asg_log(asg_tensor *x);
ASG_API asg_tensor *asg_sqrt(asg_tensor *x);
ASG_API asg_tensor *asg_rsqrt(asg_tensor *x);
ASG_API asg_tensor *asg_sin(asg_tensor *x);
ASG_API asg_tensor *asg_cos(asg_tensor *x);
ASG_API asg_tensor *asg_tanh(asg_tensor *x);
ASG_API asg_tensor *asg_erf(asg_tensor *x);
ASG_API asg_tensor *asg_sigmoid(asg_tensor *x);
ASG_API asg_tensor *asg_relu(asg_tensor *x);
ASG_API asg_tensor *asg_leaky_relu(asg_tensor *x, double slope);
ASG_API asg_tensor *asg_gelu(asg_tensor *x);      /* erf form */
ASG_API asg_tensor *asg_gelu_tanh(asg_tensor *x); /* tanh approximation */
ASG_API asg_tensor *asg_silu(asg_tensor *x);
ASG_API asg_tensor *asg_elu(asg_tensor *x, double alpha);
/* log(1 + exp(beta x)) / beta, linear above threshold (PyTorch semantics). */
ASG_API asg_tensor *asg_softplus(asg_tensor *x, double beta, double threshold);
ASG_API asg_tensor *asg_clamp(asg_tensor *x, double lo, double hi);
ASG_API asg_tensor *asg_cast(asg_tensor *x, asg_dtype dt);
/* Identity forward, zero gradient. */
ASG_API asg_tensor *asg_stop_gradient(asg_tensor *x);

/* ---- elementwise binary (broadcasting) ---- */
ASG_API asg_tensor *asg_add(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_sub(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_mul(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_div(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_pow(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_maximum(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_minimum(asg_tensor *a, asg_tensor *b);
/* Comparisons give a mask of a's dtype: 1 where true, 0 where false. */
ASG_API asg_tensor *asg_eq(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_ne(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_lt(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_le(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_gt(asg_tensor *a, asg_tensor *b);
ASG_API asg_tensor *asg_ge(asg_tensor *a, asg_tensor *b);
/* cond != 0 ? a : b, all three broadcast together. */
ASG_API asg_tensor *asg_where(asg_tensor *cond, asg_tensor *a, asg_tensor *b);
/* The gradients of gelu and gelu_tanh for an upstream gradient dy, in one
 * elementwise pass: dy * gelu'(x), gelu'(x) = Phi(x) + x phi(x) (Phi, phi:
 * the standard normal CDF and density), and dy * gelu_tanh'(x). dy and x
 * broadcast; float dtypes only. Differentiable (second derivatives of gelu
 * go through them). At x = +-inf the value is NaN (inf * 0), as the
 * formula's. */
ASG_API asg_tensor *asg_gelu_bwd(asg_tensor *dy, asg_tensor *x);
ASG_API asg_tensor *asg_gelu_tanh_bwd(asg_tensor *dy, asg_tensor *x);
/* Scalar conveniences (the scalar takes x's dtype). */
ASG_API asg_tensor *asg_add_scalar(asg_tensor *x, double c);
ASG_API asg_tensor *asg_mul_scalar(asg_tensor *x, double c);
ASG_API asg_tensor *asg_pow_scalar(asg_tensor *x, double c);

/* ---- reductions ---- */
ASG_API asg_tensor *asg_sum(asg_tensor *x, asg_axes axes, bool keepdim);
ASG_API asg_tensor *asg_mean(asg_tensor *x, asg_axes axes, bool keepdim);
ASG_API asg_tensor *asg_max(asg_tensor *x, asg_axes axes, bool keepdim);
ASG_API asg_tensor *asg_min(asg_tensor *x, asg_axes axes, bool keepdim);
/* Variance with Bessel-style correction (0: population, 1: sample). */
ASG_API asg_tensor *asg_var(asg_tensor *x, asg_axes axes, int correction, bool keepdim);
/* Index (I64) of the first maximum along one axis. */
ASG_API asg_tensor *asg_argmax(asg_tensor *x, int axis, bool keepdim);
ASG_API asg_tensor *asg_softmax(asg_tensor *x, int axis);
ASG_API asg_tensor *asg_log_softmax(asg_tensor *x, int axis);

/* ---- linear algebra ---- */
/* [..., M, K] x [..., K, N] -> [..., M, N]; batch dims broadcast. */
ASG_API asg_tensor *asg_matmul(asg_tensor *a, asg_tensor *b);
/* Same with either operand's last two dims transposed first. */
ASG_API asg_tensor *asg_matmul_t(asg_tensor *a, asg_tensor *b, bool trans_a, bool trans_b);

/* ---- shape ---- */
/* One dim may be -1 (inferred). */
ASG_API asg_tensor *asg_reshape(asg_tensor *x, asg_shape shape);
ASG_API asg_tensor *asg_flatten(asg_tensor *x, int start_axis); /* dims from start merge */
ASG_API asg_tensor *asg_unsqueeze(asg_tensor *x, int axis);
ASG_API asg_tensor *asg_squeeze(asg_tensor *x, int axis);
ASG_API asg_tensor *asg_permute(asg_tensor *x, const int *perm);
ASG_API asg_tensor *asg_transpose(asg_tensor *x, int axis0, int axis1);
/* Elements start, start+step, ... < stop along axis (step >= 1; negative
 * start/stop count from the end, both clamped like Python). A slice of a
 * computed value that is one contiguous run of its bytes (every axis before
 * `axis` of size 1, step 1, starting on a 64-byte boundary) is a view: the
 * compiled program copies nothing. */
ASG_API asg_tensor *asg_slice(asg_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
/* Joins along axis. When the pieces are contiguous runs of the result (every
 * axis before `axis` of size 1) and computed values, the program computes
 * them in place inside the result and the concat copies nothing. */
ASG_API asg_tensor *asg_concat(asg_tensor *const *xs, int n, int axis);
/* Splits along axis into n pieces of the given sizes (sizes sum to the dim);
 * the pieces are slices, and the gradient of x is one concat of theirs. */
ASG_API asg_status asg_split(asg_tensor *x, int axis, int n, const int64_t *sizes,
                             asg_tensor **out);
ASG_API asg_tensor *asg_broadcast_to(asg_tensor *x, asg_shape shape);

/* ---- indexing ---- */
/* Index tensors (gather, embedding, scatter_add, one_hot) are I32 or I64.
 * An index outside [0, n) (negative ones included) makes asg_program_run
 * fail naming the op, the value and the range; a program compiled with
 * asg_compile_opts.unchecked_indices instead gathers zeros, skips it in
 * scatter_add and gives an all-zero one_hot row. */
/* NumPy take: out = x.shape[:axis] + idx.shape + x.shape[axis+1:]. */
ASG_API asg_tensor *asg_gather(asg_tensor *x, asg_tensor *idx, int axis);
/* Embedding lookup: rows of table [V, D] at idx [...] -> [..., D]. */
ASG_API asg_tensor *asg_embedding(asg_tensor *table, asg_tensor *idx);
/* Inverse of gather: out = x, then out[.., idx[j], ..] += src[.., j, ..]. */
ASG_API asg_tensor *asg_scatter_add(asg_tensor *x, asg_tensor *idx, asg_tensor *src, int axis);
/* idx [...] -> [..., depth] of dtype dt (indices in [0, depth)). */
ASG_API asg_tensor *asg_one_hot(asg_tensor *idx, int64_t depth, asg_dtype dt);

/* ---- sorting, top-k, scans ---- */
/* Order of sort, argsort and topk along one axis (negative counts from the
 * end): ascending by value with NaN above +inf (so descending puts NaN
 * first), -0 equal to +0, and stable: equal values keep their index order
 * in either direction (torch.sort(stable=True)). x is f32, f64, i32 or i64
 * with at least one axis. The gradient of sort and topk values flows to
 * the selected positions (a scatter of dy); indices have none. */
/* x sorted along axis. */
ASG_API asg_tensor *asg_sort(asg_tensor *x, int axis, bool descending);
/* The positions (I64) that sort x along axis. */
ASG_API asg_tensor *asg_argsort(asg_tensor *x, int axis, bool descending);
/* The k largest (largest) or smallest entries along axis, in that order
 * (largest first, or smallest first), as values (x's dtype) and I64
 * indices, each of x's shape with k along axis: the first k of the sort.
 * 1 <= k <= the axis's size. Either output pointer may be NULL. Both come
 * from one argsort node. Returns the graph's status (outputs NULL on error). */
ASG_API asg_status asg_topk(asg_tensor *x, int64_t k, int axis, bool largest, asg_tensor **values,
                            asg_tensor **indices);
/* Cumulative sum along axis (f32, f64, i32, i64): y_j = sum of x_i for
 * i <= j (exclusive: i < j, so y_0 = 0); reverse sums from the end of the
 * axis (i >= j, or i > j). f32 sums accumulate in double on the CPU and CUDA
 * (docs/backends.md); integers wrap like two's complement. The gradient is the
 * reverse cumsum of dy. */
ASG_API asg_tensor *asg_cumsum(asg_tensor *x, int axis, bool exclusive, bool reverse);
/* Einstein summation over n = 1 or 2 operands, e.g. "ij,jk->ik",
 * "bij,bjk->bik", "i,j->ij", "ij->ji", "ij->j". A letter twice in one
 * operand (a trace or diagonal, "ii->") is refused. Letters a-z and A-Z; "->" and the output are
 * optional (without them: the letters used once, in alphabetical order); spaces are ignored; no
 * "...". Letters in both operands and the output are batch dims, in both but not the output are
 * contracted, in one only and not the output are summed. Built from permute, reshape, matmul, mul
 * and sum (so every backend and the gradient come with them). */
ASG_API asg_tensor *asg_einsum(const char *spec, int n, asg_tensor *const *xs);

/* ---- neural-network ops ---- */
/* Normalizes over the last dim; gamma and beta [C] may be NULL. */
ASG_API asg_tensor *asg_layernorm(asg_tensor *x, asg_tensor *gamma, asg_tensor *beta, double eps);
/* RMS normalization over the last dim, one op (Llama's RMSNorm):
 * y = x / sqrt(mean(x^2 over the last dim) + eps) * weight. x [..., C] of
 * rank >= 1, f32 or f64; weight [C] of x's dtype (NULL means ones); eps
 * finite and >= 0. Its gradient is built from generic ops (so it can be
 * differentiated again). asg_nn_rmsnorm builds it. */
ASG_API asg_tensor *asg_rmsnorm(asg_tensor *x, asg_tensor *weight, double eps);
/* Rotary position embedding, one op (the half-split convention of Hugging
 * Face Llama): y = x * cos + rotate_half(x) * sin, where
 * rotate_half(x) = concat(-x[..., D/2:], x[..., :D/2]) on the last axis.
 * x [..., D] of rank >= 1, f32 or f64, D a constant and even; cos and sin
 * of x's dtype, each of a shape that broadcasts to x's (e.g. [T, D] or
 * [B, 1, T, D] for x [B, H, T, D]); y has x's shape. Differentiable in all
 * three inputs (the gradients of cos and sin are summed to their shapes). */
ASG_API asg_tensor *asg_rope(asg_tensor *x, asg_tensor *cos, asg_tensor *sin);
/* Batch normalization with the batch's statistics (training mode), one op:
 * x [N, C] or [N, C, ...] is normalized per channel (dim 1) by the mean and
 * the biased variance over every other dim, then scaled by gamma and
 * shifted by beta ([C] each, x's dtype; NULL means 1 and 0):
 * y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c. Its gradient is
 * one dedicated op per input (the statistics are recomputed, not stored).
 * asg_nn_batchnorm builds it in training graphs and adds the running
 * statistics; with frozen statistics, normalize with asg_sub/asg_mul. */
ASG_API asg_tensor *asg_batchnorm(asg_tensor *x, asg_tensor *gamma, asg_tensor *beta, double eps);

/* Scaled dot-product attention softmax(q k^T * scale [+ causal mask]) v,
 * fused: the [..., Tq, Tk] scores are never stored (forward and gradient).
 * q [..., Tq, D], k and v [..., Tk, D]: rank >= 2, identical leading dims
 * (e.g. [B, H, T, D]), one D, one float dtype (f32/f64); scale finite
 * (usually 1/sqrt(D)). causal: query i sees keys j <= i (top-left aligned,
 * as PyTorch's is_causal). Returns o [..., Tq, D]. */
ASG_API asg_tensor *asg_attention(asg_tensor *q, asg_tensor *k, asg_tensor *v, double scale,
                                  bool causal);
/* The same with a key (padding) mask [L..., Tk] of q's dtype, L... a prefix
 * of q's leading dims (e.g. [B, Tk] for q [B, H, Tq, D]: one row per batch
 * entry, shared by its heads): key j is visible to the queries under mask
 * row m only where mask[m, j] != 0 (and, causal, j <= i). Still fused: no
 * [..., Tq, Tk] tensor. A query that sees no key gets a zero output and no
 * gradient (a softmax over nothing). The mask gets no gradient. NULL mask:
 * asg_attention. */
ASG_API asg_tensor *asg_attention_masked(asg_tensor *q, asg_tensor *k, asg_tensor *v,
                                         asg_tensor *mask, double scale, bool causal);

typedef struct asg_conv_params {
  int stride[2];         /* 0 means 1 */
  int padding[2];        /* zero padding, top/bottom and left/right */
  int dilation[2];       /* 0 means 1 */
  int groups;            /* 0 means 1 */
  int output_padding[2]; /* conv_transpose2d only */
} asg_conv_params;

/* x [N, Cin, H, W], w [Cout, Cin/groups, KH, KW], bias [Cout] or NULL. */
ASG_API asg_tensor *asg_conv2d(asg_tensor *x, asg_tensor *w, asg_tensor *bias, asg_conv_params p);
/* x [N, Cin, H, W], w [Cin, Cout/groups, KH, KW] (PyTorch layout). */
ASG_API asg_tensor *asg_conv_transpose2d(asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                                         asg_conv_params p);

/* 1-D convolutions on [N, C, L] as PyTorch's conv1d / conv_transpose1d,
 * computed by the 2-D ops with H = 1 (views: no kernel of their own). */
typedef struct asg_conv1d_params {
  int stride;         /* 0 means 1 */
  int padding;        /* zero padding at both ends */
  int dilation;       /* 0 means 1 */
  int groups;         /* 0 means 1 */
  int output_padding; /* conv_transpose1d only */
} asg_conv1d_params;
/* x [N, Cin, L], w [Cout, Cin/groups, K], bias [Cout] or NULL. */
ASG_API asg_tensor *asg_conv1d(asg_tensor *x, asg_tensor *w, asg_tensor *bias, asg_conv1d_params p);
/* x [N, Cin, L], w [Cin, Cout/groups, K] (PyTorch layout). */
ASG_API asg_tensor *asg_conv_transpose1d(asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                                         asg_conv1d_params p);

/* 3-D convolutions on [N, C, D, H, W] as PyTorch's conv3d /
 * conv_transpose3d (index 0: depth, 1: height, 2: width), computed by the
 * 2-D ops over the depth planes (no kernel of their own; src/nn/conv3d.c
 * says how, and that conv3d holds its input KD times). At most 64 kernel
 * taps in depth; the channel and depth dims must be static. */
typedef struct asg_conv3d_params {
  int stride[3];         /* 0 means 1 */
  int padding[3];        /* zero padding at both ends */
  int dilation[3];       /* 0 means 1 */
  int groups;            /* 0 means 1 */
  int output_padding[3]; /* conv_transpose3d only */
} asg_conv3d_params;
/* x [N, Cin, D, H, W], w [Cout, Cin/groups, KD, KH, KW], bias [Cout] or NULL. */
ASG_API asg_tensor *asg_conv3d(asg_tensor *x, asg_tensor *w, asg_tensor *bias, asg_conv3d_params p);
/* x [N, Cin, D, H, W], w [Cin, Cout/groups, KD, KH, KW] (PyTorch layout). */
ASG_API asg_tensor *asg_conv_transpose3d(asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                                         asg_conv3d_params p);

/* Pooling over [N, C, H, W] as torch.nn.functional.max_pool2d / avg_pool2d;
 * a zero-initialized field keeps the default. Output size per axis:
 * floor or ceil((H + 2 pad - dilation (kernel - 1) - 1) / stride) + 1, where
 * ceil mode drops a last window that would start in the right padding.
 * padding <= kernel / 2 (PyTorch's rule). */
typedef struct asg_pool_params {
  int kernel[2];
  int stride[2];   /* 0 means kernel */
  int padding[2];  /* max: -inf padding; avg: counted as zeros unless exclude_pad */
  int dilation[2]; /* 0 means 1; max pooling only (avg refuses other values) */
  bool ceil_mode;  /* PyTorch ceil_mode: partial windows at the end */
  /* avg only (PyTorch count_include_pad=False): divide by the number of
   * input elements in the window. Default: by the window clipped to the
   * padded input (kernel area, less any ceil-mode overhang past the padding). */
  bool exclude_pad;
} asg_pool_params;
ASG_API asg_tensor *asg_max_pool2d(asg_tensor *x, asg_pool_params p);
ASG_API asg_tensor *asg_avg_pool2d(asg_tensor *x, asg_pool_params p);
ASG_API asg_tensor *asg_adaptive_avg_pool2d(asg_tensor *x, int out_h, int out_w);

/* ---- padding and resampling (PyTorch semantics) ---- */
typedef enum asg_pad_mode {
  ASG_PAD_CONSTANT = 0, /* the given value */
  ASG_PAD_REFLECT = 1,  /* mirrored, the edge not repeated: each pad < the dim */
  ASG_PAD_REPLICATE = 2 /* the edge repeated */
} asg_pad_mode;
/* Pads the trailing dims of x as torch.nn.functional.pad: pads[0..n) holds
 * (before, after) pairs, the first pair for the last dim, the next for the
 * dim before it, and so on (n even, n/2 <= rank). A negative pad crops.
 * Padded dims must be non-empty and stay >= 1; reflect needs each pad
 * smaller than its dim. value is used by
 * ASG_PAD_CONSTANT only. Gradient: constant -> the inverse crop of dy;
 * reflect/replicate -> pad_bwd, which sums the mirrored/repeated entries. */
ASG_API asg_tensor *asg_pad(asg_tensor *x, const int64_t *pads, int n, asg_pad_mode mode,
                            double value);

typedef enum asg_upsample_mode {
  ASG_UPSAMPLE_NEAREST = 0, /* PyTorch 'nearest': src = min(floor(dst * ratio), in - 1) */
  ASG_UPSAMPLE_LINEAR = 1   /* 'bilinear' on [N,C,H,W], 'linear' on [N,C,L] */
} asg_upsample_mode;
typedef struct asg_upsample_params {
  asg_upsample_mode mode;
  bool align_corners; /* LINEAR only (true with NEAREST is an error) */
  /* Output size of the spatial dims (H, W), or (L) for [N,C,L]; all zero:
   * out = floor(in * scale) per dim (scale > 0). As in PyTorch, a given
   * scale also sets the coordinate ratio (1/scale; in/out with sizes) when
   * align_corners is false. */
  int64_t size[2];
  double scale[2];
} asg_upsample_params;
/* Interpolates x [N,C,H,W] (or [N,C,L]) to [N,C,OH,OW] as
 * torch.nn.functional.interpolate, sizes up or down. The gradient
 * (upsample_bwd) gathers per input element, so it is deterministic. */
ASG_API asg_tensor *asg_upsample(asg_tensor *x, asg_upsample_params p);

/* Mean softmax cross-entropy of logits [..., C] against integer labels [...]
 * (I32/I64), with label smoothing in [0, 1) and rows whose label equals
 * ignore_index left out of the mean (NaN when every row is left out, with a
 * zero gradient, as PyTorch). Other labels outside [0, C) fail the run
 * unless the program is unchecked (see the index tensors above), which
 * leaves their rows out too. Returns a scalar. */
ASG_API asg_tensor *asg_softmax_cross_entropy(asg_tensor *logits, asg_tensor *labels,
                                              double label_smoothing, int64_t ignore_index);

/* ---- random (counter-based: key = seed and the program's run count) ---- */
ASG_API asg_tensor *asg_rand_uniform(asg_graph *g, asg_dtype dt, asg_shape shape, double lo,
                                     double hi, uint64_t seed);
ASG_API asg_tensor *asg_rand_normal(asg_graph *g, asg_dtype dt, asg_shape shape, double mean,
                                    double std, uint64_t seed);
/* 1 with probability p, else 0. */
ASG_API asg_tensor *asg_rand_bernoulli(asg_graph *g, asg_dtype dt, asg_shape shape, double p,
                                       uint64_t seed);
/* Inverted dropout: x * mask / (1 - p); a fresh mask every run. */
ASG_API asg_tensor *asg_dropout(asg_tensor *x, double p, uint64_t seed);

/* ---- sampling ---- */
/* Top-k then top-p filtering of logits [..., V] (f32/f64) per row, as
 * Hugging Face's TopKLogitsWarper then TopPLogitsWarper: entries outside
 * become -inf, the others keep their value. top_k (one I32/I64 element) and
 * top_p (one element, f32 or logits' dtype) are read at run time, so one
 * program serves any settings.
 *   top-k: keeps the entries >= the k-th largest value; k <= 0 or k >= V
 *     keeps all.
 *   top-p: among those, with the softmax renormalized over them, keeps the
 *     smallest set of largest entries whose probability reaches top_p (the
 *     entry that crosses top_p is kept); top_p >= 1 keeps all, top_p <= 0
 *     only the maximum.
 *   Ties: every entry equal to a threshold value is kept (so a row may keep
 *   more than k entries). A row with a NaN becomes all NaN. A row with +inf
 *   keeps only its +inf entries under top-p (< 1); an all -inf row stays so.
 * Not differentiable. Sample from it with Gumbel-max, e.g.
 * argmax(filtered / temperature + gumbel noise). */
ASG_API asg_tensor *asg_sample_filter(asg_tensor *logits, asg_tensor *top_k, asg_tensor *top_p);

/* ---- state ---- */
/* Writes value into the variable when the program runs. All reads of
 * variables in a step see the value from before the step's assigns. */
ASG_API asg_tensor *asg_assign(asg_tensor *var, asg_tensor *value);
/* KV-cache write: cache[..., pos:pos+T, ...] = value along axis (negative
 * counts from the end), in place, when the step runs. cache is a variable
 * (e.g. [B, H, Tmax, D]); value has its dtype and shape except T <= Tmax
 * rows along axis (T may be symbolic); pos is one I32/I64 element ([] or
 * [1]) read at run time. Returns the cache after the write (cache's shape,
 * aliasing the variable's storage, no copy): ops that read the result run
 * after the write. pos < 0 or pos + T > Tmax fails the run naming the op and
 * the value (as an index, see above); with unchecked_indices the rows that
 * fall outside [0, Tmax) are skipped. Not differentiable. Compile refuses a
 * program that both assigns and cache-writes a variable, writes it twice,
 * or reads the variable node itself (not the result) after the write. */
ASG_API asg_tensor *asg_cache_write(asg_tensor *cache, asg_tensor *value, asg_tensor *pos,
                                    int axis);

/* ---- the op table, for tools, docs and completeness tests ---- */
ASG_API int asg_op_count(void);
ASG_API const char *asg_op_name(int op); /* NULL if out of range */
/* -1 for variadic. */
ASG_API int asg_op_arity(int op);
/* True for ops declared without gradient (comparisons, argmax, ...). */
ASG_API bool asg_op_is_nondifferentiable(int op);
/* True for dedicated backward ops (not differentiated again). */
ASG_API bool asg_op_is_backward(int op);
/* True for sources (input, constant, variable): no kernel needed. */
ASG_API bool asg_op_is_source(int op);
/* True for ops that only the compiler's fusion passes make (e.g.
 * conv2d_bias_act: conv2d + per-channel bias add + ReLU): they never appear
 * in a user's graph, and need no gradient rule (asg_compile_opts.no_fusion). */
ASG_API bool asg_op_is_fused(int op);
/* Whether the op has a gradient rule registered. */
ASG_API bool asg_op_has_grad(int op);
/* Whether a backend compiled into this build has a kernel for the op. */
ASG_API bool asg_backend_supports_op(const char *backend, int op);

#ifdef __cplusplus
}
#endif
#endif
