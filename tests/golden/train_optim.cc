// train/adamw_step, train/adamw_clipnorm_step: torch.optim.AdamW for 3 steps on 8 tiny-UNet parameters from given
// gradients (with clip_grad_norm_ before every step in the second case): parameters after each step, the clipped
// gradients and total norms, and the optimizer state after the last step.
#include <regex>

#include "golden.h"
#include "training/optimizer.h"

namespace pigment::golden {
namespace {

using training::Param;

void run_adamw(Case& c) {
  const auto& spec = c.spec();
  const auto& kw = spec.at("producer").at("kwargs");
  PIG_CHECK(!kw.at("amsgrad").get<bool>(), c.name(), ": amsgrad is not supported");
  training::AdamWOptions o;
  o.lr = kw.at("lr").get<double>();
  o.beta1 = kw.at("betas").at(0).get<double>();
  o.beta2 = kw.at("betas").at(1).get<double>();
  o.eps = kw.at("eps").get<double>();
  o.weight_decay = kw.at("weight_decay").get<double>();
  training::AdamW opt(o);

  // Clipping: the max_norm of the clip_grad_norm_ call the producer lists, if any.
  std::optional<double> max_norm;
  static const std::regex clip_re(R"(clip_grad_norm_\([^)]*max_norm=([0-9.eE+-]+))");
  for (const auto& call : spec.at("producer").at("calls")) {
    std::smatch m;
    std::string s = call.get<std::string>();
    if (std::regex_search(s, m, clip_re)) max_norm = std::stod(m[1].str());
  }

  std::vector<Param> params;
  for (const auto& name : spec.at("params")) {
    const std::string n = name.get<std::string>();
    // Clones: Case::tensor may be a read-only view of the memory-mapped case file.
    params.push_back({n, c.tensor("param." + n + ".before").clone(), {}});
  }
  const int steps = spec.at("state_step").get<int>();
  for (int k = 1; k <= steps; ++k) {
    const std::string sk = "step" + std::to_string(k);
    for (Param& p : params) p.grad = c.tensor("grad." + sk + "." + p.name).clone();
    if (max_norm) {
      const float total = training::clip_grad_norm(params, *max_norm);
      c.compare("total_norm." + sk, Tensor::from_vector({1}, {total}));
      for (const Param& p : params) c.compare("grad_clipped." + sk + "." + p.name, p.grad);
    }
    opt.step(params);
    for (const Param& p : params) c.compare("param." + p.name + "." + sk, p.value);
  }
  const training::StateDict state = opt.state();
  for (const Param& p : params) {
    c.compare("state." + p.name + ".exp_avg", state.at(p.name + ".exp_avg"));
    c.compare("state." + p.name + ".exp_avg_sq", state.at(p.name + ".exp_avg_sq"));
    c.compare_ids("state." + p.name + ".step", {*state.at(p.name + ".step").data<int64_t>()}, {steps});
  }
}

Register reg("train/adamw", run_adamw);

}  // namespace
}  // namespace pigment::golden
