// Reverse-mode automatic differentiation over the op set.
//
// While a Tape records on a thread, every op of ops.h whose inputs need gradients (a watched parameter, a tape
// input, or the output of an op recorded before) appends one node: its output's shape and a closure that maps the
// output's gradient to the gradients of its inputs (ops/backward.h), holding only what that needs. Ops whose
// inputs need no gradient are not recorded at all, so a frozen weight costs no gradient memory and no
// weight-gradient work: a LoRA run computes activation gradients through the frozen UNet and weight gradients only
// for the LoRA matrices. Model code is the inference code, unchanged: recording happens inside the ops.
//
// Fused forward variants (linear with activation/residual, conv with residual, group_norm_silu) are recorded as
// their parts. Parameters are watched by their memory (data pointer and element count), so the model's own weight
// views are recognised without touching the model. Nodes are kept in creation order, a topological order, and
// backward() visits them in reverse, freeing each node's saved tensors as it goes.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pigment::ops::autograd {

class Tape {
 public:
  Tape();
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // Marks a parameter (float32, by its memory) as needing its gradient; gradient(t) then gives it after backward.
  void watch(const Tensor& t);
  // A tensor that needs a gradient as an input of the recorded computation (same memory, tagged).
  Tensor input(const Tensor& t);
  // Keeps the gradient of a recorded intermediate value (gradient(t) after backward); others are freed.
  void retain(const Tensor& t);

  // Back-propagates dy (shape of y) from the recorded value y. Not recording while it runs. The recorded nodes
  // are consumed: a second backward needs a new recording.
  void backward(const Tensor& y, const Tensor& dy);
  // The same from several values at once, in one pass over the nodes (a loss of several terms, e.g. the VAE's
  // reconstruction + KL); values no trained input reaches are skipped.
  void backward(const std::vector<Tensor>& ys, const std::vector<Tensor>& dys);
  // The gradient accumulated for a watched parameter, an input or a retained value (in its shape); undefined when
  // nothing reached it.
  Tensor gradient(const Tensor& t) const;
  // Drops the recorded nodes (and the gradients of inputs and retained values); a new recording starts.
  void clear();
  // Drops the gradients of the watched parameters; until then they accumulate over backward() calls (gradient
  // accumulation over micro-batches).
  void zero_grad();
  // Nodes recorded (for tests and memory accounting).
  size_t size() const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Makes `tape` the recording tape of this thread for the scope (nestable: the previous one comes back).
class Recording {
 public:
  explicit Recording(Tape& tape);
  ~Recording();
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

 private:
  Tape* previous_;
  bool previous_paused_;
};

// Stops recording for the scope (an op's own forward, work that needs no gradient).
class Paused {
 public:
  Paused();
  ~Paused();
  Paused(const Paused&) = delete;
  Paused& operator=(const Paused&) = delete;

 private:
  bool previous_;
};

// ---- for the ops ----
// True when a tape records on this thread and any of the tensors needs a gradient.
bool needs_grad(const Tensor& t);
bool any_needs_grad(std::initializer_list<const Tensor*> ts);
// The tensor without its tag: what a backward closure keeps (a tagged copy inside a node would tie the node to
// itself).
Tensor saved(const Tensor& t);
// Gradients of the inputs, in the order given to record(); leave an entry undefined for no gradient.
using Grads = std::vector<Tensor>;
using BackwardFn = std::function<void(const Tensor& dy, Grads& dinputs)>;
// Records `out` as computed from `inputs` (those that need no gradient are skipped when back-propagating; null
// pointers are allowed) and tags `out`.
void record(Tensor& out, std::initializer_list<const Tensor*> inputs, BackwardFn backward);
void record(Tensor& out, const std::vector<const Tensor*>& inputs, BackwardFn backward);

// ---- gradient checkpointing ----
using Segment = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
// Runs f(inputs) without keeping what its backward needs: it records only its outputs, as one computation whose
// backward runs f again on a tape of its own (watching the same parameters), back-propagates through it and hands
// on the gradients of the inputs and of the parameters f used. Memory: a segment's activations live only while its
// backward runs. f must be deterministic. Without a recording tape this is f(inputs).
std::vector<Tensor> checkpoint(const Segment& f, const std::vector<Tensor>& inputs);

}  // namespace pigment::ops::autograd
