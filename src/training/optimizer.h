// Optimizers over named float32 parameters, updated in place, with PyTorch's semantics (torch 1.13
// torch.optim.AdamW / SGD, torch.nn.utils.clip_grad_norm_) so that a training run matches the reference
// scripts step for step. State is keyed by parameter name, so a checkpoint can save and restore it exactly.
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/pickle_writer.h"

namespace pigment::training {

// A trainable parameter. `value` shares memory with the model's weight (Tensor copies share memory), so the
// optimizer's in-place update is the model's update. An undefined `grad` means "no gradient this step": the
// parameter is skipped, as PyTorch skips p.grad is None (its state, step count included, does not advance).
struct Param {
  std::string name;
  Tensor value;  // float32, writable (not a view of a memory-mapped file: clone those)
  Tensor grad;   // float32, same shape as value, or undefined (clip_grad_norm scales it in place)
  // This parameter's learning rate is lr_scale × the optimizer's (a torch param group whose base lr is that
  // multiple of the default one, under the same LambdaLR schedule: e.g. kohya's --text_encoder_lr).
  double lr_scale = 1.0;
};

// Optimizer state as name → tensor, for checkpoints: "<param>.<state>" (e.g. "conv_in.weight.exp_avg") plus
// "<param>.step" (int64 [1]) per parameter that has state.
using StateDict = std::map<std::string, Tensor>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of every parameter that has a gradient.
  virtual void step(std::span<Param> params) = 0;
  // The learning rate of the next step (LR schedules set it before each step).
  virtual void set_lr(double lr) = 0;
  virtual double lr() const = 0;
  // The state's own tensors, no copy (the next step changes them): what a checkpoint streams to its file, so that
  // saving a full fine-tuning run's AdamW state (8 bytes per parameter) does not need that much again.
  virtual StateDict state_view() const = 0;
  // A deep copy of the state, and its restoration (replaces all state, copying it: `state` may be views of a
  // mapped file; shapes are checked on the next step).
  StateDict state() const;
  virtual void load_state(const StateDict& state) = 0;
  // The torch.optim class ("AdamW", "SGD") and its state_dict() as torch 1.13 writes it (A1111's .optim files),
  // index i being the position of the parameter's name in `names` (the order the parameters were given to it).
  virtual std::string torch_class() const = 0;
  virtual pickle::Object torch_state_dict(const std::vector<std::string>& names) const = 0;
  // The constructor call with its non-default arguments, as kohya's ss_optimizer metadata names it.
  virtual std::string describe() const = 0;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// torch.optim.AdamW (amsgrad off), per element at the parameter's step k = 1, 2, ...:
//   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;  p -= (lr/(1-b1^k)) m / (sqrt(v)/sqrt(1-b2^k) + eps)
// State per parameter: "exp_avg" (m), "exp_avg_sq" (v), "step".
class AdamW : public Optimizer {
 public:
  explicit AdamW(AdamWOptions options = {});
  void step(std::span<Param> params) override;
  void set_lr(double lr) override { options_.lr = lr; }
  double lr() const override { return options_.lr; }
  StateDict state_view() const override;
  void load_state(const StateDict& state) override;
  const AdamWOptions& options() const { return options_; }
  std::string torch_class() const override { return "AdamW"; }
  // {'state': {i: {'step': 0-d float tensor, 'exp_avg', 'exp_avg_sq'}}, 'param_groups': [{'lr', 'betas', 'eps',
  // 'weight_decay', 'amsgrad', 'foreach', 'maximize', 'capturable', 'differentiable', 'params': [0 … n-1]}]}.
  // Parameters without state (no step yet) are left out of 'state', as torch does.
  pickle::Object torch_state_dict(const std::vector<std::string>& names) const override;
  std::string describe() const override;

 private:
  struct Slot {
    Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  AdamWOptions options_;
  std::map<std::string, Slot> slots_;
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  // needs momentum > 0 and dampening 0, as PyTorch requires
};

// torch.optim.SGD: g += wd p; buf = g on the first step, else buf = momentum buf + (1-dampening) g;
// g = nesterov ? g + momentum buf : buf; p -= lr g. State per parameter: "momentum_buffer", "step".
class SGD : public Optimizer {
 public:
  explicit SGD(SGDOptions options = {});
  void step(std::span<Param> params) override;
  void set_lr(double lr) override { options_.lr = lr; }
  double lr() const override { return options_.lr; }
  StateDict state_view() const override;
  void load_state(const StateDict& state) override;
  const SGDOptions& options() const { return options_; }
  std::string torch_class() const override { return "SGD"; }
  // {'state': {i: {'momentum_buffer': tensor or None}}, 'param_groups': [{'lr', 'momentum', 'dampening',
  // 'weight_decay', 'nesterov', 'maximize', 'foreach', 'differentiable', 'params': [0 … n-1]}]}.
  pickle::Object torch_state_dict(const std::vector<std::string>& names) const override;
  std::string describe() const override;

 private:
  struct Slot {
    Tensor momentum_buffer;  // undefined until the first step with momentum
    int64_t step = 0;
  };
  SGDOptions options_;
  std::map<std::string, Slot> slots_;
};

// The optimizer of kohya's --optimizer_type (case-insensitive): AdamW (the default), SGD, SGDNesterov (torch's SGD
// with nesterov=True and, as kohya, momentum 0.9 unless given), at learning rate `lr`. `args` are kohya's
// --optimizer_args, "key=value" each (several may share a string, separated by spaces): AdamW takes betas=B1,B2,
// eps, weight_decay (default adamw.weight_decay; adamw gives the other defaults too), amsgrad=False; SGD takes
// momentum, dampening, weight_decay, nesterov=True|False. An unknown type (AdamW8bit and kohya's other names
// included), an unknown key, a repeated key or a value that does not read is an error naming it.
std::unique_ptr<Optimizer> make_optimizer(const std::string& type, const std::vector<std::string>& args, double lr,
                                          const AdamWOptions& adamw = {});
// The type's canonical spelling ("sgdnesterov" → "SGDNesterov"); an error for an unsupported one.
std::string optimizer_type_name(const std::string& type);

// torch.nn.utils.clip_grad_norm_(params, max_norm, 2): the total L2 norm over all defined gradients (the 2-norm
// of the per-parameter 2-norms), then every gradient times min(1, max_norm / (total + 1e-6)). Returns the total
// norm before clipping (0 when no parameter has a gradient).
float clip_grad_norm(std::span<Param> params, double max_norm);

}  // namespace pigment::training
