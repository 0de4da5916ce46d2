// Golden cases train/vae_grad, train/controlnet_grad, train/hypernetwork_grad: losses and gradients of the VAE, of a
// ControlNet feeding a frozen UNet, and of an A1111 hypernetwork in one cross-attention, through pigment's autograd
// tape on the inference model code (models/).
#include <cmath>
#include <map>
#include <memory>
#include <regex>
#include <string>

#include "golden.h"
#include "models/controlnet.h"
#include "models/hypernetwork.h"
#include "models/model_config.h"
#include "models/transformer2d.h"
#include "models/unet.h"
#include "models/vae.h"
#include "ops/autograd.h"
#include "ops/backward.h"
#include "ops/ops.h"
#include "sampling/scheduler.h"
#include "train_util.h"
#include "training/diffusion_objective.h"

namespace pigment::golden {
namespace {

using ops::autograd::Recording;
using ops::autograd::Tape;

// The first match of `re` (group 1) in any of the producer's calls, or in the description.
std::string from_producer(const Case& c, const std::string& re) {
  std::smatch m;
  const std::regex r(re);
  for (const auto& call : c.spec()["producer"].value("calls", nlohmann::json::array())) {
    const std::string text = call.get<std::string>();
    if (std::regex_search(text, m, r)) return m[1];
  }
  const std::string d = c.spec().value("description", "");
  PIG_CHECK(std::regex_search(d, m, r), c.name(), ": no ", re, " in the producer's calls or the description");
  return m[1];
}

Tensor scalar(const Case& c, const std::string& name, double v) {
  return Tensor::from_vector({1}, {float(v)}).reshape(c.tensor(name).shape());
}

Weights open_weights(const fs::path& file) {
  SafeTensors st = SafeTensors::open(file.string());
  auto map = std::make_shared<TensorMap>();
  for (const auto& e : st.entries()) (*map)[e.name] = st.get(e.name);
  return Weights(map, file.string());
}

// vae_grad: dist = encode(x); z = mean + std·noise; recon = decode(z);
// loss = mse(recon, x) + w_kl · mean_b(kl_b), kl_b = 0.5 Σ_{c,h,w}(mean² + var − 1 − logvar), var = exp(logvar).
void run_vae_grad(Case& c) {
  fs::path model_dir = c.golden_root() / c.spec()["producer"]["model_dir"].get<std::string>();
  Weights w = open_weights(model_dir / "diffusion_pytorch_model.safetensors");
  Vae vae = Vae::load(ModelConfig::load(model_dir.string()), w);
  std::map<std::string, Tensor> params(w.all().begin(), w.all().end());
  const double kl_weight = std::stod(from_producer(c, R"(\+ ([0-9.eE+-]+) \* dist\.kl\(\)\.mean\(\))"));
  const Tensor x = c.tensor("x"), noise = c.tensor("noise");

  Tape tape;
  for (const auto& [name, t] : params) tape.watch(t);
  Tensor recon, kl_terms;
  LatentDistribution dist;
  {
    Recording rec(tape);
    dist = vae.encode(x);
    Tensor z = dist.sample(noise);
    c.compare("z", z);
    recon = vae.decode(z);
    // The KL terms per element, with ops so that the tape carries their gradient back to mean and logvar.
    Tensor var = ops::exp(dist.logvar());
    kl_terms = ops::sub(ops::add(ops::mul(dist.mean(), dist.mean()), var), dist.logvar());
    kl_terms = ops::add(kl_terms, Tensor::full({1}, -1.f));
  }
  c.compare("latent_mean", dist.mean());
  c.compare("latent_logvar", dist.logvar());
  c.compare("recon", recon);

  const int64_t B = kl_terms.dim(0), per = kl_terms.numel() / B;
  std::vector<float> kl;
  double kl_mean = 0;
  const float* kt = kl_terms.f32();
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t i = 0; i < per; ++i) s += kt[b * per + i];
    kl.push_back(float(0.5 * s));
    kl_mean += 0.5 * s / double(B);
  }
  c.compare("kl", Tensor::from_vector({B}, kl));
  const double mse = ops::mse(recon, x);
  c.compare("mse", scalar(c, "mse", mse));
  c.compare("loss", scalar(c, "loss", mse + kl_weight * kl_mean));

  // d loss / d recon from the MSE; d loss / d (each KL term) = w_kl · 0.5 / B.
  tape.backward({recon, kl_terms},
                {ops::mse_backward(recon, x), Tensor::full(kl_terms.shape(), float(kl_weight * 0.5 / double(B)))});
  compare_gradients(c, tape, params);
}

// controlnet_grad: the ControlNet (trained) feeds its residuals into the frozen UNet; loss = mse(pred, target).
void run_controlnet_grad(Case& c) {
  const auto& spec = c.spec();
  const auto dirs = spec["producer"]["model_dirs"].get<std::vector<std::string>>();
  fs::path cn_dir, unet_dir;
  for (const auto& d : dirs) (d.find("controlnet") != std::string::npos ? cn_dir : unet_dir) = c.golden_root() / d;
  PIG_CHECK(!cn_dir.empty() && !unet_dir.empty(), c.name(), ": model_dirs should name a ControlNet and a UNet");
  Weights w = load_diffusers_weights(cn_dir.string());
  ControlNet controlnet(ControlNetConfig::load((cn_dir / "config.json").string()), w);
  UNet unet = UNet::load(unet_dir.string());
  std::map<std::string, Tensor> params(w.all().begin(), w.all().end());

  SchedulerConfig sc = SchedulerConfig::from_json(spec["producer"]["scheduler_config"].dump());
  training::ObjectiveOptions oo;
  oo.prediction = training::prediction_from_name(sc.prediction_type);
  training::DiffusionObjective objective(schedule::TrainSchedule::from_config(sc), oo);
  const float scale = std::stof(from_producer(c, R"(conditioning_scale=([0-9.]+))"));

  const Tensor x0 = c.tensor("x0"), noise = c.tensor("noise"), ehs = c.tensor("encoder_hidden_states");
  const Tensor cond = c.tensor("controlnet_cond");
  std::vector<int> ts;
  for (float v : c.tensor("timesteps").to_vector()) ts.push_back(int(v));
  const std::vector<float> tf(ts.begin(), ts.end());
  const Tensor noisy = objective.add_noise(x0, noise, ts), target = objective.target(x0, noise, ts);

  Tape tape;
  for (const auto& [name, t] : params) tape.watch(t);
  Tensor pred;
  {
    Recording rec(tape);
    ControlNetOutput res = controlnet.forward(noisy, tf, ehs, cond, scale);
    UNetExtras extras;
    extras.down_block_additional_residuals = res.down_block_residuals;
    extras.mid_block_additional_residual = res.mid_block_residual;
    pred = unet.forward(noisy, tf, ehs, extras);
  }
  c.compare("pred", pred);
  training::DiffusionObjective::Loss loss = objective.loss(pred, target, ts);
  c.compare("loss", scalar(c, "loss", loss.value));
  tape.backward(pred, loss.dpred);
  compare_gradients(c, tape, params, {"grad_norms.rest"});

  // The other parameters: the L2 norm of each gradient, in the case's order.
  const auto names = spec["grad_norms_rest_names"].get<std::vector<std::string>>();
  std::vector<float> norms;
  for (const auto& name : names) {
    auto it = params.find(name);
    if (it == params.end()) {
      c.failure("grad_norms.rest", "no ControlNet parameter '" + name + "'");
      return;
    }
    Tensor g = tape.gradient(it->second);
    double s = 0;
    if (g.defined())
      for (float v : g.to_vector()) s += double(v) * double(v);
    norms.push_back(float(std::sqrt(s)));
  }
  c.compare("grad_norms.rest", Tensor::from_vector({int64_t(norms.size())}, norms));
}

// hypernetwork_grad: an A1111 hypernetwork's modules trained through one frozen cross-attention of the UNet;
// loss = mean(out ⊙ loss_weights).
void run_hypernetwork_grad(Case& c) {
  auto net = std::make_shared<const Hypernetwork>(
      Hypernetwork::load((c.golden_root() / from_producer(c, R"(h\.load\('([^']+)'\))")).string()));
  const float multiplier = std::stof(from_producer(c, R"(set_multiplier\(([0-9.]+)\))"));
  // "attn2 of models/unet_sd1 down_blocks.0.attentions.0.transformer_blocks.0"
  std::smatch m;
  const std::string d = c.spec()["description"];
  PIG_CHECK(std::regex_search(d, m, std::regex(R"((attn\d) of (\S+) (down_blocks\.(\d+)\.[\w.]*\w))")), c.name(),
            ": the description does not name the attention layer");
  const std::string attn_name = m[1], model = m[2], block_path = m[3];
  const size_t block = std::stoul(m[4]);
  fs::path unet_dir = c.golden_root() / model;
  UNetConfig cfg = UNetConfig::load((unet_dir / "config.json").string());
  Weights uw = load_diffusers_weights(unet_dir.string());
  const int heads = cfg.num_attention_heads.at(block);
  const int64_t dim = cfg.block_out_channels.at(block);
  Attention attn(uw.sub(block_path + "." + attn_name), dim, cfg.cross_attention_dim.at(block), heads, dim / heads);

  const Tensor context = c.tensor("context"), x = c.tensor("x"), lw = c.tensor("loss_weights");
  std::map<std::string, Tensor> params = net->parameters();
  Tape tape;
  for (const auto& [name, t] : params) tape.watch(t);
  UNetHooks hooks;
  hooks.attention_context = hypernetwork_hook({{net, multiplier}});
  Tensor out;
  {
    Recording rec(tape);
    out = attn.forward(x, &context, hooks);
  }
  c.compare("attention_out", out);
  const double n = double(lw.numel());
  c.compare("loss", scalar(c, "loss", double(ops::sum_all(ops::mul(out, lw))) / n));
  tape.backward(out, ops::scale(lw, float(1.0 / n)));
  compare_gradients(c, tape, params);
}

Register reg_vae("train/vae_grad", run_vae_grad);
Register reg_controlnet("train/controlnet_grad", run_controlnet_grad);
Register reg_hypernetwork("train/hypernetwork_grad", run_hypernetwork_grad);

}  // namespace
}  // namespace pigment::golden
