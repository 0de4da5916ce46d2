#include "ops/autograd_ops.h"

#include "ops/backward.h"

namespace pigment::ops::recorded {

using autograd::any_needs_grad;
using autograd::Grads;
using autograd::needs_grad;
using autograd::Paused;
using autograd::record;
using autograd::saved;

namespace {
// Runs f with recording paused (the plain op), returning its result.
template <typename F>
Tensor plain(F f) {
  Paused p;
  return f();
}
// The value kept for a backward only when `need` says it is used.
Tensor keep_if(bool need, const Tensor& t) { return need ? saved(t) : Tensor(); }
int wrap_dim(int dim, int ndim) { return dim < 0 ? dim + ndim : dim; }
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& options) {
  LinearOptions base;
  base.cache = options.cache;
  Tensor y = plain([&] { return ops::linear(x, w, bias, base); });
  const bool nx = needs_grad(x), nw = needs_grad(w), nb = bias && needs_grad(*bias);
  if (nx || nw || nb)
    record(y, {&x, &w, bias}, [xs = keep_if(nw, x), ws = keep_if(nx, w), nx, nw, nb](const Tensor& dy, Grads& g) {
      if (nx) g[0] = linear_backward_input(dy, ws);
      if (nw) g[1] = linear_backward_weight(dy, xs);
      if (nb) g[2] = sum_to_last_dim(dy);
    });
  if (options.activation != Activation::None) y = activation(y, options.activation);
  if (options.residual) y = add(y, *options.residual);
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  Tensor y = plain([&] { return ops::matmul(a, b, trans_a, trans_b); });
  const bool na = needs_grad(a), nb = needs_grad(b);
  record(y, {&a, &b}, [as = keep_if(nb, a), bs = keep_if(na, b), a_shape = a.shape(), b_shape = b.shape(), trans_a,
                       trans_b, na, nb](const Tensor& dy, Grads& g) {
    // matmul_backward reads only the shapes of the operand whose gradient is not asked for.
    Tensor ak = as.defined() ? as : Tensor::empty(a_shape), bk = bs.defined() ? bs : Tensor::empty(b_shape);
    MatmulGrads r = matmul_backward(dy, ak, bk, trans_a, trans_b, na, nb);
    g[0] = r.da;
    g[1] = r.db;
  });
  return y;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p, const Conv2dOptions& options) {
  Conv2dOptions base = options;
  base.residual = nullptr;
  Tensor y = plain([&] { return ops::conv2d(x, w, bias, p, base); });
  const bool nx = needs_grad(x), nw = needs_grad(w), nb = bias && needs_grad(*bias);
  if (nx || nw || nb)
    record(y, {&x, &w, bias},
           [xs = keep_if(nw, x), ws = keep_if(nx, w), x_shape = x.shape(), w_shape = w.shape(), p, nx, nw, nb](
               const Tensor& dy, Grads& g) {
             if (nx) g[0] = conv2d_backward_input(dy, ws, x_shape, p);
             if (nw) g[1] = conv2d_backward_weight(dy, xs, w_shape, p);
             if (nb) g[2] = sum_to_channels(dy);
           });
  if (options.residual) y = add(y, *options.residual);
  return y;
}

Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps, bool silu) {
  Tensor y = plain([&] { return ops::group_norm(x, groups, gamma, beta, eps); });
  const bool np = needs_grad(gamma) || needs_grad(beta);
  if (any_needs_grad({&x, &gamma, &beta}))
    record(y, {&x, &gamma, &beta}, [xs = saved(x), gs = saved(gamma), groups, eps, np](const Tensor& dy, Grads& g) {
      NormGrads r = group_norm_backward(dy, xs, groups, gs, eps, np);
      g[0] = r.dx;
      g[1] = r.dgamma;
      g[2] = r.dbeta;
    });
  return silu ? activation(y, Activation::Silu) : y;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  Tensor y = plain([&] { return ops::layer_norm(x, gamma, beta, eps); });
  const bool np = needs_grad(gamma) || needs_grad(beta);
  record(y, {&x, &gamma, &beta}, [xs = saved(x), gs = saved(gamma), eps, np](const Tensor& dy, Grads& g) {
    NormGrads r = layer_norm_backward(dy, xs, gs, eps, np);
    g[0] = r.dx;
    g[1] = r.dgamma;
    g[2] = r.dbeta;
  });
  return y;
}

Tensor softmax(const Tensor& x) {
  Tensor y = plain([&] { return ops::softmax(x); });
  record(y, {&x}, [ys = saved(y)](const Tensor& dy, Grads& g) { g[0] = softmax_backward(dy, ys); });
  return y;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal) {
  Tensor y = plain([&] {
    return causal ? ops::attention_causal(q, k, v, heads, scale) : ops::attention(q, k, v, heads, scale);
  });
  record(y, {&q, &k, &v},
         [qs = saved(q), ks = saved(k), vs = saved(v), ys = saved(y), heads, scale, causal](const Tensor& dy,
                                                                                             Grads& g) {
           AttentionGrads r = attention_backward(dy, qs, ks, vs, ys, heads, scale, causal);
           g[0] = r.dq;
           g[1] = r.dk;
           g[2] = r.dv;
         });
  return y;
}

Tensor activation(const Tensor& x, Activation a) {
  if (a == Activation::None) return x;
  Tensor y = plain([&] {
    switch (a) {
      case Activation::Silu: return ops::silu(x);
      case Activation::Gelu: return ops::gelu(x);
      case Activation::GeluTanh: return ops::gelu_tanh(x);
      case Activation::QuickGelu: return ops::quick_gelu(x);
      case Activation::None: break;
    }
    return x;
  });
  if (needs_grad(x))
    record(y, {&x}, [xs = saved(x), a](const Tensor& dy, Grads& g) { g[0] = activation_backward(dy, xs, a); });
  return y;
}

Tensor geglu(const Tensor& x) {
  Tensor y = plain([&] { return ops::geglu(x); });
  record(y, {&x}, [xs = saved(x)](const Tensor& dy, Grads& g) { g[0] = geglu_backward(dy, xs); });
  return y;
}

Tensor relu(const Tensor& x) {
  Tensor y = plain([&] { return ops::relu(x); });
  record(y, {&x}, [xs = saved(x)](const Tensor& dy, Grads& g) { g[0] = relu_backward(dy, xs); });
  return y;
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  Tensor y = plain([&] { return ops::clamp(x, lo, hi); });
  record(y, {&x}, [xs = saved(x), lo, hi](const Tensor& dy, Grads& g) { g[0] = clamp_backward(dy, xs, lo, hi); });
  return y;
}

Tensor exp(const Tensor& x) {
  Tensor y = plain([&] { return ops::exp(x); });
  record(y, {&x}, [ys = saved(y)](const Tensor& dy, Grads& g) { g[0] = exp_backward(dy, ys); });
  return y;
}

Tensor pointwise(const Tensor& x, Pointwise f) {
  Tensor y = plain([&] { return ops::pointwise(x, f); });
  record(y, {&x}, [xs = saved(x), f](const Tensor& dy, Grads& g) { g[0] = pointwise_backward(dy, xs, f); });
  return y;
}

Tensor upsample_nearest2x(const Tensor& x) {
  Tensor y = plain([&] { return ops::upsample_nearest2x(x); });
  record(y, {&x}, [](const Tensor& dy, Grads& g) { g[0] = upsample_nearest2x_backward(dy); });
  return y;
}

Tensor avg_pool2x(const Tensor& x) {
  Tensor y = plain([&] { return ops::avg_pool2x(x); });
  record(y, {&x}, [](const Tensor& dy, Grads& g) { g[0] = avg_pool2x_backward(dy); });
  return y;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  Tensor y = plain([&] { return ops::concat(xs, dim); });
  const int d = wrap_dim(dim, y.ndim());
  std::vector<int64_t> sizes;
  std::vector<const Tensor*> inputs;
  for (const auto& t : xs) sizes.push_back(t.dim(d)), inputs.push_back(&t);
  record(y, inputs, [sizes, d](const Tensor& dy, Grads& g) {
    int64_t off = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      g[i] = ops::slice(dy, d, off, off + sizes[i]);
      off += sizes[i];
    }
  });
  return y;
}

Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end) {
  Tensor y = plain([&] { return ops::slice(x, dim, begin, end); });
  record(y, {&x}, [x_shape = x.shape(), d = wrap_dim(dim, x.ndim()), begin](const Tensor& dy, Grads& g) {
    g[0] = slice_backward(dy, x_shape, d, begin);
  });
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  Tensor y = plain([&] { return ops::permute(x, perm); });
  std::vector<int> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[size_t(perm[i])] = int(i);
  record(y, {&x}, [inverse](const Tensor& dy, Grads& g) { g[0] = ops::permute(dy, inverse); });
  return y;
}

Tensor nchw_to_nlc(const Tensor& x) {
  Tensor y = plain([&] { return ops::nchw_to_nlc(x); });
  record(y, {&x}, [h = x.dim(2), w = x.dim(3)](const Tensor& dy, Grads& g) { g[0] = ops::nlc_to_nchw(dy, h, w); });
  return y;
}

Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  Tensor y = plain([&] { return ops::nlc_to_nchw(x, h, w); });
  record(y, {&x}, [](const Tensor& dy, Grads& g) { g[0] = ops::nchw_to_nlc(dy); });
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = plain([&] { return ops::add(a, b); });
  record(y, {&a, &b}, [as = a.shape(), bs = b.shape()](const Tensor& dy, Grads& g) {
    g[0] = reduce_to_shape(dy, as);
    g[1] = reduce_to_shape(dy, bs);
  });
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = plain([&] { return ops::sub(a, b); });
  record(y, {&a, &b}, [as = a.shape(), bs = b.shape(), nb = needs_grad(b)](const Tensor& dy, Grads& g) {
    g[0] = reduce_to_shape(dy, as);
    if (nb) g[1] = ops::scale(reduce_to_shape(dy, bs), -1.f);
  });
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = plain([&] { return ops::mul(a, b); });
  const bool na = needs_grad(a), nb = needs_grad(b);
  record(y, {&a, &b}, [as = keep_if(nb, a), bs = keep_if(na, b), a_shape = a.shape(), b_shape = b.shape(), na, nb](
                          const Tensor& dy, Grads& g) {
    if (na) g[0] = reduce_to_shape(ops::mul(dy, bs), a_shape);
    if (nb) g[1] = reduce_to_shape(ops::mul(dy, as), b_shape);
  });
  return y;
}

Tensor scale(const Tensor& x, float s) {
  Tensor y = plain([&] { return ops::scale(x, s); });
  record(y, {&x}, [s](const Tensor& dy, Grads& g) { g[0] = ops::scale(dy, s); });
  return y;
}

Tensor add_scaled(const Tensor& a, const Tensor& b, float sb) {
  Tensor y = plain([&] { return ops::add_scaled(a, b, sb); });
  record(y, {&a, &b}, [sb](const Tensor& dy, Grads& g) {
    g[0] = dy;
    g[1] = ops::scale(dy, sb);
  });
  return y;
}

void add_inplace(Tensor& a, const Tensor& b) {
  const Tensor before = a;  // the value a held, as a recorded input
  {
    Paused p;
    ops::add_inplace(a, b);
  }
  record(a, {&before, &b}, [bs = b.shape()](const Tensor& dy, Grads& g) {
    g[0] = dy;
    g[1] = reduce_to_shape(dy, bs);
  });
}

Tensor embedding(const Tensor& table, const std::vector<int64_t>& ids) {
  Tensor y = plain([&] { return ops::embedding(table, ids); });
  record(y, {&table}, [ids, vocab = table.dim(0)](const Tensor& dy, Grads& g) {
    g[0] = embedding_backward(dy.reshape({int64_t(ids.size()), -1}), ids, vocab);
  });
  return y;
}

Tensor replace_rows(const Tensor& x, const std::vector<int64_t>& at, const Tensor& rows) {
  Tensor y = plain([&] { return ops::replace_rows(x, at, rows); });
  record(y, {&x, &rows}, [at, width = x.dim(-1)](const Tensor& dy, Grads& g) {
    Tensor d = dy.reshape({-1, width});
    // The replaced rows of x do not reach the output; the new rows get the gradient of their positions.
    g[0] = ops::replace_rows(d, at, Tensor::zeros({int64_t(at.size()), width}));
    g[1] = ops::embedding(d, at);
  });
  return y;
}

}  // namespace pigment::ops::recorded
