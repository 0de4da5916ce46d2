// Golden cases train/*: losses and gradients of the tiny models through pigment's autograd tape, on the inference
// model code (models/), with the diffusion objective of training/.
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>

#include "golden.h"
#include "train_util.h"
#include "models/clip_text.h"
#include "models/model_config.h"
#include "models/unet.h"
#include "ops/autograd.h"
#include "sampling/scheduler.h"
#include "training/diffusion_objective.h"
#include "training/lora.h"
#include "training/optimizer.h"

namespace pigment::golden {
namespace {

using ops::autograd::Recording;
using ops::autograd::Tape;

std::vector<int> int_timesteps(const Tensor& t) {
  std::vector<int> out;
  for (float v : t.to_vector()) out.push_back(int(v));
  return out;
}

training::DiffusionObjective objective_of(const Case& c) {
  nlohmann::json p = c.spec()["producer"];
  // A case without its own schedule says whose it shares: "Loss as train/unet_eps_step: ...".
  std::smatch as;
  const std::string description = c.spec().value("description", "");
  if (!p.contains("scheduler_config") && std::regex_search(description, as, std::regex(R"(Loss as (train/\w+))"))) {
    std::ifstream f(c.golden_root() / std::string(as[1]) / "case.json");
    PIG_CHECK(f, c.name(), ": cannot read the case it names, ", std::string(as[1]));
    p = nlohmann::json::parse(f)["producer"];
  }
  PIG_CHECK(p.contains("scheduler_config"), c.name(), ": no scheduler_config for the noise schedule");
  SchedulerConfig sc = SchedulerConfig::from_json(p["scheduler_config"].dump());
  training::ObjectiveOptions o;
  o.prediction = training::prediction_from_name(sc.prediction_type);
  // A min-SNR case names its gamma in the producer's calls: "w = torch.stack([snr, 5.0 * torch.ones_like(...)]...".
  std::smatch m;
  for (const auto& call : p.value("calls", nlohmann::json::array())) {
    const std::string text = call.get<std::string>();
    if (std::regex_search(text, m, std::regex(R"(([0-9.]+) \* torch\.ones_like)"))) o.min_snr_gamma = std::stof(m[1]);
  }
  return training::DiffusionObjective(schedule::TrainSchedule::from_config(sc), o);
}

// One diffusion training step's forward and backward on a UNet: `hooks` adds adapters (LoRA); every tensor of
// `params` is watched.
void unet_step(Case& c, const UNet& unet, const std::map<std::string, Tensor>& params, const UNetHooks& hooks) {
  training::DiffusionObjective objective = objective_of(c);
  const Tensor x0 = c.tensor("x0"), noise = c.tensor("noise"), ehs = c.tensor("encoder_hidden_states");
  const std::vector<int> ts = int_timesteps(c.tensor("timesteps"));
  Tape tape;
  for (const auto& [name, t] : params) tape.watch(t);

  Tensor noisy = objective.add_noise(x0, noise, ts);
  if (c.has("noisy")) c.compare("noisy", noisy);
  Tensor target = objective.target(x0, noise, ts);
  if (c.has("target")) c.compare("target", target);
  if (c.has("snr")) c.compare("snr", Tensor::from_vector({int64_t(ts.size())}, objective.snr(ts)));
  if (c.has("weights"))
    c.compare("weights", Tensor::from_vector({int64_t(ts.size())}, objective.loss_weights(ts)));

  std::vector<float> tf(ts.begin(), ts.end());
  Tensor pred;
  {
    Recording rec(tape);
    UNetExtras extras;
    extras.hooks = hooks;
    pred = unet.forward(noisy, tf, ehs, extras);
  }
  if (c.has("pred")) c.compare("pred", pred);
  training::DiffusionObjective::Loss loss = objective.loss(pred, target, ts);
  if (c.has("per_sample_mse"))
    c.compare("per_sample_mse", Tensor::from_vector({int64_t(ts.size())}, loss.per_sample_mse));
  c.compare("loss", Tensor::from_vector({1}, {loss.value}).reshape(c.tensor("loss").shape()));
  tape.backward(pred, loss.dpred);
  compare_gradients(c, tape, params);
}

UNet load_unet(const Case& c) {
  return UNet::load((c.golden_root() / c.spec()["producer"]["model_dir"].get<std::string>()).string());
}

void run_unet_step(Case& c) {
  UNet unet = load_unet(c);
  std::map<std::string, Tensor> params(unet.weights().all().begin(), unet.weights().all().end());
  unet_step(c, unet, params, {});
}

void run_lora_grad(Case& c) {
  UNet unet = load_unet(c);
  const auto& spec = c.spec();
  training::LoraOptions o;
  o.rank = spec["rank"].get<int>();
  o.alpha = spec["alpha"].get<float>();
  std::vector<training::LoraNetwork::Module> modules;
  for (const auto& [module, keys] : spec["key_map"].items()) {
    const std::string k = training::LoraNetwork::kohya_name(module);
    PIG_CHECK(keys["kohya"][0].get<std::string>() == k + ".lora_down.weight", "key_map of ", module, " names ",
              keys["kohya"][0].get<std::string>(), ", pigment ", k);
    modules.push_back({module, c.tensor("lora." + k + ".lora_down.weight").clone(),
                       c.tensor("lora." + k + ".lora_up.weight").clone(), o.alpha / float(o.rank), o.alpha});
  }
  training::LoraNetwork lora(std::move(modules), o);
  std::map<std::string, Tensor> params;
  for (const auto& [name, t] : lora.parameters()) params[name] = t;
  unet_step(c, unet, params, lora.hooks());
}

Weights open_weights(const fs::path& file) {
  SafeTensors st = SafeTensors::open(file.string());
  auto map = std::make_shared<TensorMap>();
  for (const auto& e : st.entries()) (*map)[e.name] = st.get(e.name);
  return Weights(map, file.string());
}

void run_clip_grad(Case& c) {
  const auto& spec = c.spec();
  fs::path model_dir = c.golden_root() / spec["producer"]["model_dir"].get<std::string>();
  Weights w = open_weights(model_dir / "model.safetensors");
  ClipTextModel model = ClipTextModel::load(ModelConfig::load(model_dir.string()), w);
  std::map<std::string, Tensor> params(w.all().begin(), w.all().end());
  Tape tape;
  for (const auto& [name, t] : params) tape.watch(t);

  auto ids = spec["input_ids"].get<std::vector<std::vector<int64_t>>>();
  ClipOptions opt;
  opt.keep_hidden_states = true;
  ClipOutput out;
  {
    Recording rec(tape);
    out = model.forward(ids, opt);
  }
  tape.retain(out.hidden_states[0]);
  c.compare("last_hidden_state", out.last_hidden_state);
  // loss = mean(h ⊙ weights): d loss / d h = weights / numel.
  const Tensor lw = c.tensor("loss_weights");
  const float n = float(lw.numel());
  Tensor dh = ops::scale(lw, 1.f / n);
  c.compare("loss", Tensor::from_vector({1}, {float(double(ops::sum_all(ops::mul(out.last_hidden_state, lw))) / n)})
                        .reshape(c.tensor("loss").shape()));
  tape.backward(out.last_hidden_state, dh);
  const std::string table = "text_model.embeddings.token_embedding.weight";
  compare_gradients(c, tape, params, {"grad." + table + ".rows", "grad.inputs_embeds"});

  // The token-embedding table: only the rows of the ids present, in the order the case lists them.
  Tensor g = tape.gradient(params.at(table));
  std::vector<int64_t> rows;
  for (float v : c.tensor("token_embedding_grad_row_ids").to_vector()) rows.push_back(int64_t(v));
  c.compare("grad." + table + ".rows", ops::embedding(g, rows));
  // Gradient with respect to the token embeddings per position: the embedding output's (tok + pos passes it on).
  c.compare("grad.inputs_embeds", tape.gradient(out.hidden_states[0]));
}

// diffusers' textual_inversion.py step: new rows of the token table trained alone (AdamW acts element-wise, so
// training only the new rows gives the rows the script gets by updating the whole table and restoring the rest).
void run_textual_inversion_step(Case& c) {
  const auto& spec = c.spec();
  fs::path model_dir = c.golden_root() / spec["producer"]["model_dir"].get<std::string>();
  ClipTextModel model = ClipTextModel::load(ModelConfig::load(model_dir.string()),
                                            open_weights(model_dir / "model.safetensors"));
  const auto placeholder_ids = spec["placeholder_ids"].get<std::vector<int64_t>>();
  PIG_CHECK(placeholder_ids.front() == model.config().vocab_size, "placeholder ids do not follow the vocabulary");
  Tensor rows = c.tensor("new_rows.init").clone();
  // AdamW's settings are written in the description: "AdamW step ({'lr': 0.001, 'betas': (0.9, 0.999), ...})".
  const std::string d = spec["description"];
  auto number = [&](const std::string& re) {
    std::smatch m;
    PIG_CHECK(std::regex_search(d, m, std::regex(re)), "no ", re, " in the description");
    return std::stod(m[1]);
  };
  training::AdamWOptions ao;
  ao.lr = number(R"('lr': ([0-9.e-]+))");
  ao.beta1 = number(R"('betas': \(([0-9.e-]+),)");
  ao.beta2 = number(R"('betas': \([0-9.e-]+, ([0-9.e-]+)\))");
  ao.eps = number(R"('eps': ([0-9.e-]+))");
  ao.weight_decay = number(R"('weight_decay': ([0-9.e-]+))");

  Tape tape;
  tape.watch(rows);
  ClipOptions opt;
  opt.extra_rows = &rows;
  auto ids = spec["input_ids"].get<std::vector<std::vector<int64_t>>>();
  ClipOutput out;
  {
    Recording rec(tape);
    out = model.forward(ids, opt);
  }
  c.compare("last_hidden_state", out.last_hidden_state);
  const Tensor lw = c.tensor("loss_weights");
  const float n = float(lw.numel());
  c.compare("loss", Tensor::from_vector({1}, {float(double(ops::sum_all(ops::mul(out.last_hidden_state, lw))) / n)})
                        .reshape(c.tensor("loss").shape()));
  tape.backward(out.last_hidden_state, ops::scale(lw, 1.f / n));
  std::vector<training::Param> params{{"new_rows", rows, tape.gradient(rows)}};
  c.compare("grad.new_rows", params[0].grad);
  training::AdamW adamw(ao);
  adamw.step(params);
  c.compare("new_rows.after", rows);
}

Register reg_ti("train/textual_inversion_step", run_textual_inversion_step);
Register reg_unet_eps("train/unet_eps_step", run_unet_step);
Register reg_unet_v("train/unet_vpred_minsnr", run_unet_step);
Register reg_lora("train/lora_grad", run_lora_grad);
Register reg_clip("train/clip_text_grad", run_clip_grad);

}  // namespace
}  // namespace pigment::golden
