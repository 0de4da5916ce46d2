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
    // A computation with several outputs (a checkpointed segment) records one node per output; the last one holds
    // the backward of them all, which sees their gradients in order.
    int group = 1;
    std::function<void(const std::vector<Tensor>& dys, Grads& dinputs)> group_backward;
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
  Impl& I = *impl_;
  PIG_CHECK(I.id_of(y) >= 0, "autograd: backward() from a value that was not recorded (no trained input reaches it)");
  backward(std::vector<Tensor>{y}, std::vector<Tensor>{dy});
}

void Tape::backward(const std::vector<Tensor>& ys, const std::vector<Tensor>& dys) {
  Impl& I = *impl_;
  PIG_CHECK(ys.size() == dys.size(), "autograd: backward() with ", ys.size(), " values and ", dys.size(),
            " gradients");
  PIG_CHECK(!ys.empty(), "autograd: backward() from no value");
  Paused paused;
  int64_t start = -1;
  for (size_t k = 0; k < ys.size(); ++k) {
    const int64_t id = I.id_of(ys[k]);
    if (id < 0 || !dys[k].defined()) continue;
    PIG_CHECK(dys[k].numel() == ys[k].numel(), "autograd: backward() with a gradient of shape ",
              shape_str(dys[k].shape()), " for a value of shape ", shape_str(ys[k].shape()));
    I.accumulate(id, dys[k].clone());
    start = std::max(start, id);
  }
  for (int64_t i = start; i >= 0; --i) {
    Impl::Node& n = I.nodes[size_t(i)];
    Grads g(n.inputs.size());
    bool ran = false;
    if (n.group_backward) {
      std::vector<Tensor> dys_group;
      bool any = false;
      for (int64_t j = i - n.group + 1; j <= i; ++j) {
        Impl::Node& m = I.nodes[size_t(j)];
        any = any || m.grad.defined();
        dys_group.push_back(m.grad.defined() ? m.grad.reshape(m.shape) : Tensor());
      }
      if (any) n.group_backward(dys_group, g), ran = true;
      for (int64_t j = i - n.group + 1; j < i; ++j) I.nodes[size_t(j)].grad = Tensor();
      n.group_backward = nullptr;
    } else if (n.grad.defined() && n.backward) {
      n.backward(n.grad, g);
      ran = true;
    }
    if (ran)
      for (size_t j = 0; j < n.inputs.size(); ++j)
        if (n.inputs[j] != -1 && g[j].defined()) I.accumulate(n.inputs[j], g[j]);
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

namespace pigment::ops::autograd {

std::vector<Tensor> checkpoint(const Segment& f, const std::vector<Tensor>& inputs) {
  Tape* outer = g_tape;
  if (!outer || g_paused) return f(inputs);
  Tape::Impl& O = outer->impl();
  std::vector<bool> need;
  bool any = !O.leaves.empty();  // a segment may use watched parameters whatever its inputs
  for (const auto& t : inputs) {
    need.push_back(O.id_of(t) != -1);
    any = any || need.back();
  }
  if (!any) return f(inputs);
  std::vector<Tensor> outs;
  {
    Paused p;
    outs = f(inputs);
  }
  std::vector<Tensor> kept;
  for (const auto& t : inputs) kept.push_back(saved(t));
  auto backward = [f, kept, need, outer](const std::vector<Tensor>& dys, Grads& g) {
    Tape inner;
    Tape::Impl& In = inner.impl();
    In.leaves.clear();
    for (const auto& l : outer->impl().leaves) In.leaves.push_back({l.shape, Tensor()});
    In.watched = outer->impl().watched;
    std::vector<Tensor> xs;
    for (size_t i = 0; i < kept.size(); ++i) xs.push_back(need[i] ? inner.input(kept[i]) : kept[i]);
    std::vector<Tensor> ys;
    {
      Recording rec(inner);
      ys = f(xs);
    }
    PIG_CHECK(ys.size() == dys.size(), "autograd: a checkpointed segment gave ", ys.size(), " outputs, then ",
              dys.size());
    inner.backward(ys, dys);
    for (size_t i = 0; i < xs.size(); ++i)
      if (need[i]) g[i] = inner.gradient(xs[i]);
    Tape::Impl& Out = outer->impl();
    for (size_t k = 0; k < In.leaves.size(); ++k)
      if (In.leaves[k].grad.defined()) Out.accumulate(Tape::Impl::leaf_id(k), In.leaves[k].grad);
  };
  // One node per output; the last carries the segment's backward.
  std::vector<const Tensor*> ins;
  for (const auto& t : inputs) ins.push_back(&t);
  for (size_t k = 0; k < outs.size(); ++k) {
    const bool last = k + 1 == outs.size();
    Tape::Impl::Node n;
    n.shape = outs[k].shape();
    if (last) {
      n.group = int(outs.size());
      n.group_backward = backward;
      for (const Tensor* t : ins) n.inputs.push_back(O.id_of(*t));
    }
    O.nodes.push_back(std::move(n));
    outs[k].set_grad_tag({O.serial, int64_t(O.nodes.size() - 1)});
  }
  return outs;
}

}  // namespace pigment::ops::autograd
