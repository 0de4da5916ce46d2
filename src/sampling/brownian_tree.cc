#include "sampling/brownian_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "sampling/rng.h"

namespace pigment {

namespace {

constexpr int kPoolSize = 24;
constexpr uint32_t kInitA = 0x43b0d7e5u, kMultA = 0x931e8875u, kInitB = 0x8b51f9ddu, kMultB = 0x58f38dedu;
constexpr uint32_t kMixMultL = 0xca01f9ddu, kMixMultR = 0x4973f715u;

void append_words(uint64_t v, std::vector<uint32_t>& out) {
  if (v == 0) {
    out.push_back(0);
    return;
  }
  for (; v != 0; v >>= 32) out.push_back(uint32_t(v & 0xffffffffu));
}

struct HashMix {
  uint32_t h = kInitA;
  uint32_t operator()(uint32_t v) {
    v ^= h;
    h *= kMultA;
    v *= h;
    v ^= v >> 16;
    return v;
  }
};

uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t r = kMixMultL * x - kMixMultR * y;
  return r ^ (r >> 16);
}

// f(a[i], b[i]) element by element, in float32.
template <typename F>
Tensor map2(const Tensor& a, const Tensor& b, F f) {
  Tensor out = Tensor::empty(a.shape());
  const float *pa = a.f32(), *pb = b.f32();
  float* po = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) po[i] = f(pa[i], pb[i]);
  return out;
}

}  // namespace

std::vector<uint32_t> seed_sequence_state(uint64_t entropy, const std::vector<uint64_t>& spawn_key, int n_words) {
  std::vector<uint32_t> ent, spawn;
  append_words(entropy, ent);
  for (uint64_t k : spawn_key) append_words(k, spawn);
  if (!spawn.empty() && ent.size() < size_t(kPoolSize)) ent.resize(kPoolSize, 0u);
  ent.insert(ent.end(), spawn.begin(), spawn.end());

  HashMix hash;
  uint32_t pool[kPoolSize];
  for (int i = 0; i < kPoolSize; ++i) pool[i] = hash(size_t(i) < ent.size() ? ent[i] : 0u);
  for (int src = 0; src < kPoolSize; ++src)
    for (int dst = 0; dst < kPoolSize; ++dst)
      if (src != dst) pool[dst] = mix(pool[dst], hash(pool[src]));
  for (size_t src = kPoolSize; src < ent.size(); ++src)
    for (int dst = 0; dst < kPoolSize; ++dst) pool[dst] = mix(pool[dst], hash(ent[src]));

  std::vector<uint32_t> out(size_t(std::max(n_words, 0)));
  uint32_t g = kInitB;
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t v = pool[i % kPoolSize] ^ g;
    g *= kMultB;
    v *= g;
    v ^= v >> 16;
    out[i] = v;
  }
  return out;
}

double round_6_decimals(double x) {
  // glibc's printf converts the exact binary value and rounds it correctly (ties to even in the default mode), as
  // Python's round(x, 6) does; strtod then gives the nearest double of the decimal result.
  PIG_CHECK(std::isfinite(x), "Brownian tree: time ", x, " is not finite");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", x);
  return std::strtod(buf, nullptr);
}

BrownianTree::BrownianTree(double t0, double t1, Shape shape, uint64_t entropy)
    : shape_(std::move(shape)), entropy_(entropy) {
  PIG_CHECK(std::isfinite(t0) && std::isfinite(t1) && t0 < t1, "Brownian tree: the interval [", t0, ", ", t1,
            "] is empty");
  a_ = round_6_decimals(t0);
  b_ = round_6_decimals(t1);
  PIG_CHECK(a_ < b_, "Brownian tree: the interval [", t0, ", ", t1, "] is narrower than its 1e-6 resolution");
  const uint32_t seed_w = seed_sequence_state(entropy_, {}, 3)[0];
  root_ = normal(seed_w);
  const float scale = float(std::sqrt(t1 - t0));  // the unrounded ends, as torchsde scales its first draw
  float* p = root_.f32();
  for (int64_t i = 0; i < root_.numel(); ++i) p[i] = p[i] * scale;
}

Tensor BrownianTree::normal(uint32_t seed) const { return make_generator("cpu", seed)->randn(shape_); }

BrownianTree::Span BrownianTree::child(const Span& n, bool right) const {
  const double m = round_6_decimals(0.5 * (n.e + n.s));
  return right ? Span{m, n.e, 2 * n.key + 1, n.depth + 1} : Span{n.s, m, 2 * n.key, n.depth + 1};
}

std::pair<double, double> BrownianTree::node_interval(uint64_t key, int depth) const {
  PIG_CHECK(depth >= 0 && depth < 64 && (depth == 63 || key < (uint64_t(1) << depth)), "Brownian tree: no node ",
            key, " at depth ", depth);
  Span n{a_, b_, 0, 0};
  for (int i = depth - 1; i >= 0; --i) n = child(n, ((key >> i) & 1) != 0);
  return {n.s, n.e};
}

Tensor BrownianTree::node(uint64_t key, int depth) {
  if (depth == 0) return root_;
  PIG_CHECK(depth > 0 && depth < 64 && key < (uint64_t(1) << depth), "Brownian tree: no node ", key, " at depth ",
            depth);
  // The deepest cached ancestor, then the bridge splits down to the node (each split makes both halves).
  int d = depth;
  Tensor w;
  for (; d > 0; --d) {
    auto it = cache_.find({d, key >> (depth - d)});
    if (it != cache_.end()) {
      w = it->second;
      break;
    }
  }
  if (d == 0) w = root_;
  Span n{a_, b_, 0, 0};
  for (int i = depth - 1; i >= depth - d; --i) n = child(n, ((key >> i) & 1) != 0);
  // Bound the cache (the values never depend on it): start again when it holds more than 256 MiB.
  if (cache_bytes_ > (size_t(256) << 20)) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  for (; d < depth; ++d) {
    const double m = round_6_decimals(0.5 * (n.e + n.s));
    const double ld = m - n.s, rd = n.e - m, hr = 1.0 / (n.e - n.s);
    const Tensor x = normal(seed_sequence_state(entropy_, {n.key, uint64_t(n.depth)}, 4)[0]);
    const float fl = float(ld), fh = float(hr), fs = float(std::sqrt((ld * rd) * hr));
    // torchsde's Brownian bridge in float32: mean = W·ld·/h, left = mean + sqrt(ld·rd/h)·X, right = W − left.
    Tensor left = map2(w, x, [&](float wv, float xv) {
      const float mean = (wv * fl) * fh;
      const float noise = fs * xv;
      return mean + noise;
    });
    Tensor right = map2(w, left, [](float wv, float lv) { return wv - lv; });
    const uint64_t lk = 2 * n.key, rk = 2 * n.key + 1;
    cache_[{n.depth + 1, lk}] = left;
    cache_[{n.depth + 1, rk}] = right;
    cache_bytes_ += 2 * size_t(w.numel()) * sizeof(float);
    const bool go_right = ((key >> (depth - d - 1)) & 1) != 0;
    n = child(n, go_right);
    w = go_right ? right : left;
  }
  return w;
}

void BrownianTree::decompose(const Span& n, double ta, double tb, std::vector<Span>& out) const {
  if (ta == n.s && tb == n.e) {
    out.push_back(n);
    return;
  }
  PIG_CHECK(n.depth < 62 && n.e > n.s, "Brownian tree: the query [", ta, ", ", tb, "] does not resolve");
  const double m = round_6_decimals(0.5 * (n.e + n.s));
  if (tb <= m) {
    decompose(child(n, false), ta, tb, out);
  } else if (ta >= m) {
    decompose(child(n, true), ta, tb, out);
  } else {
    decompose(child(n, false), ta, m, out);
    decompose(child(n, true), m, tb, out);
  }
}

std::vector<std::pair<uint64_t, int>> BrownianTree::pieces(double ta, double tb) const {
  ta = round_6_decimals(std::clamp(ta, a_, b_));
  tb = round_6_decimals(std::clamp(tb, a_, b_));
  std::vector<std::pair<uint64_t, int>> out;
  if (!(ta < tb)) return out;
  std::vector<Span> spans;
  decompose({a_, b_, 0, 0}, ta, tb, spans);
  for (const auto& s : spans) out.push_back({s.key, s.depth});
  return out;
}

Tensor BrownianTree::forward(double ta, double tb) {
  const auto ps = pieces(ta, tb);
  if (ps.empty()) return Tensor::zeros(shape_);
  Tensor sum = node(ps[0].first, ps[0].second).clone();
  for (size_t i = 1; i < ps.size(); ++i) {
    const Tensor p = node(ps[i].first, ps[i].second);
    float* d = sum.f32();
    const float* q = p.f32();
    for (int64_t k = 0; k < sum.numel(); ++k) d[k] = d[k] + q[k];
  }
  return sum;
}

Tensor BrownianTree::increment(double from, double to) {
  if (from <= to) return forward(from, to);
  Tensor w = forward(to, from);
  float* d = w.f32();
  for (int64_t i = 0; i < w.numel(); ++i) d[i] = -d[i];
  return w;
}

}  // namespace pigment
