#include "ops/autograd.h"

#include <algorithm>
#include <atomic>
#include <map>

#include "ops/ops.h"

namespace pigment::ops::autograd {

namespace {
thread_local Tape* g_tape = nullptr;
thread_local bool g_paused = false;
std::atomic<uint64_t> g_next_serial{1};
}  // namespace

struct Tape::Impl {
  struct Node {
    Shape shape;
    BackwardFn backward;          // empty for inputs
    std::vector<int64_t> inputs;  // node ids (see below), -1 for none
    Tensor grad;
    bool keep = false;
  };
  struct Leaf {
    Shape shape;
    Tensor grad;
  };
  uint64_t serial = g_next_serial++;
  std::vector<Node> nodes;                                // ids 0, 1, ...
  std::vector<Leaf> leaves;                               // ids -2, -3, ... (watched parameters)
  std::map<std::pair<const void*, int64_t>, int64_t> watched;  // (memory, numel) → leaf id

  static int64_t leaf_id(size_t i) { return -2 - int64_t(i); }
  static size_t leaf_index(int64_t id) { return size_t(-2 - id); }

  // The id of the value t holds, or -1.
  int64_t id_of(const Tensor& t) const {
    if (!t.defined()) return -1;
    const GradTag& tag = t.grad_tag();
    if (tag.tape == serial && tag.node >= 0 && size_t(tag.node) < nodes.size()) return tag.node;
    if (watched.empty()) return -1;
    auto it = watched.find({t.raw(), t.numel()});
    return it == watched.end() ? -1 : it->second;
  }

  Tensor& grad_of(int64_t id) { return id >= 0 ? nodes[size_t(id)].grad : leaves[leaf_index(id)].grad; }
  const Shape& shape_of(int64_t id) const { return id >= 0 ? nodes[size_t(id)].shape : leaves[leaf_index(id)].shape; }

  // Adds g to the gradient of `id`. Stored gradients are never changed in place: a backward may hand the same
  // tensor to several inputs (an addition passes dy to both sides).
  void accumulate(int64_t id, const Tensor& g) {
    PIG_CHECK(g.numel() == shape_numel(shape_of(id)), "autograd: a gradient of shape ", shape_str(g.shape()),
              " for a value of shape ", shape_str(shape_of(id)));
    Tensor gf = g.dtype() == DType::F32 ? g : g.as_f32();
    Tensor& acc = grad_of(id);
    if (!acc.defined())
      acc = gf.reshape(shape_of(id));
    else
      acc = ops::add(acc, gf.reshape(shape_of(id)));
  }

  void restart() {
    nodes.clear();
    serial = g_next_serial++;
  }
};

Tape::Tape() : impl_(std::make_unique<Impl>()) {}
Tape::~Tape() {
  if (g_tape == this) g_tape = nullptr;
}

void Tape::watch(const Tensor& t) {
  PIG_CHECK(t.dtype() == DType::F32, "autograd: a trained parameter must be float32, got ", dtype_name(t.dtype()));
  auto key = std::make_pair(static_cast<const void*>(t.raw()), t.numel());
  if (impl_->watched.count(key)) return;
  impl_->leaves.push_back({t.shape(), {}});
  impl_->watched[key] = Impl::leaf_id(impl_->leaves.size() - 1);
}

Tensor Tape::input(const Tensor& t) {
  Impl::Node n;
  n.shape = t.shape();
  n.keep = true;
  impl_->nodes.push_back(std::move(n));
  Tensor out = t;
  out.set_grad_tag({impl_->serial, int64_t(impl_->nodes.size() - 1)});
  return out;
}

void Tape::retain(const Tensor& t) {
  int64_t id = impl_->id_of(t);
  PIG_CHECK(id >= 0, "autograd: retain() of a value that was not recorded");
  impl_->nodes[size_t(id)].keep = true;
}

void Tape::backward(const Tensor& y, const Tensor& dy) {
  const std::vector<std::pair<Tensor, Tensor>> roots{{y, dy}};
  backward(roots);
}

void Tape::backward(const std::vector<std::pair<Tensor, Tensor>>& roots) {
  Impl& I = *impl_;
  PIG_CHECK(!roots.empty(), "autograd: backward() from no value");
  int64_t start = -1;
  Paused paused;
  for (const auto& [y, dy] : roots) {
    const int64_t id = I.id_of(y);
    PIG_CHECK(id >= 0, "autograd: backward() from a value that was not recorded (no trained input reaches it)");
    PIG_CHECK(dy.numel() == y.numel(), "autograd: backward() with a gradient of shape ", shape_str(dy.shape()),
              " for a value of shape ", shape_str(y.shape()));
    I.accumulate(id, dy.clone());
    start = std::max(start, id);
  }
  for (int64_t i = start; i >= 0; --i) {
    Impl::Node& n = I.nodes[size_t(i)];
    if (n.grad.defined() && n.backward) {
      Grads g(n.inputs.size());
      n.backward(n.grad, g);
      for (size_t j = 0; j < n.inputs.size(); ++j)
        if (n.inputs[j] != -1 && g[j].defined()) I.accumulate(n.inputs[j], g[j]);
    }
    n.backward = nullptr;  // frees what the node saved
    if (!n.keep) n.grad = Tensor();
  }
  // Tags of this recording stay valid for gradient() on inputs and retained values until clear().
}

Tensor Tape::gradient(const Tensor& t) const {
  int64_t id = impl_->id_of(t);
  if (id == -1) return Tensor();
  const Tensor& g = id >= 0 ? impl_->nodes[size_t(id)].grad : impl_->leaves[Impl::leaf_index(id)].grad;
  return g.defined() ? g.reshape(t.shape()) : g;
}

void Tape::clear() { impl_->restart(); }

void Tape::zero_grad() {
  for (auto& l : impl_->leaves) l.grad = Tensor();
}

size_t Tape::size() const { return impl_->nodes.size(); }

Recording::Recording(Tape& tape) : previous_(g_tape), previous_paused_(g_paused) {
  g_tape = &tape;
  g_paused = false;
}
Recording::~Recording() {
  g_tape = previous_;
  g_paused = previous_paused_;
}

Paused::Paused() : previous_(g_paused) { g_paused = true; }
Paused::~Paused() { g_paused = previous_; }

bool needs_grad(const Tensor& t) { return g_tape && !g_paused && g_tape->impl().id_of(t) != -1; }

bool any_needs_grad(std::initializer_list<const Tensor*> ts) {
  if (!g_tape || g_paused) return false;
  for (const Tensor* t : ts)
    if (t && g_tape->impl().id_of(*t) != -1) return true;
  return false;
}

Tensor saved(const Tensor& t) {
  Tensor s = t;
  s.set_grad_tag({});
  return s;
}

void record(Tensor& out, const std::vector<const Tensor*>& inputs, BackwardFn backward) {
  PIG_CHECK(g_tape, "autograd: record() with no tape recording");
  Tape::Impl& I = g_tape->impl();
  Tape::Impl::Node n;
  n.shape = out.shape();
  n.backward = std::move(backward);
  for (const Tensor* t : inputs) n.inputs.push_back(t ? I.id_of(*t) : -1);
  I.nodes.push_back(std::move(n));
  out.set_grad_tag({I.serial, int64_t(I.nodes.size() - 1)});
}

void record(Tensor& out, std::initializer_list<const Tensor*> inputs, BackwardFn backward) {
  record(out, std::vector<const Tensor*>(inputs), std::move(backward));
}

}  // namespace pigment::ops::autograd
