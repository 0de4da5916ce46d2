// Golden runner for "schedulers/": every scheduler case goes through make_scheduler by its diffusers class name:
// set_timesteps tables (timesteps, sigmas, init_noise_sigma, rejected configs) and full sampling loops with the
// synthetic model, comparing every step and every noise draw. "_schedules" checks the training betas / ᾱ.
#include <cmath>
#include <cstdio>
#include <regex>

#include "golden.h"
#include "ops/ops.h"
#include "sampling/brownian_tree.h"
#include "sampling/noise_schedule.h"
#include "sampling/rng.h"
#include "sampling/scheduler.h"

namespace pigment::golden {
namespace {

// Forwards to a real generator and keeps every randn draw, so the runner can compare the sampler's noise.
class RecordingGenerator : public Generator {
 public:
  explicit RecordingGenerator(std::unique_ptr<Generator> inner) : inner_(std::move(inner)) {}
  Tensor randn(const Shape& shape) override {
    Tensor t = inner_->randn(shape);
    draws.push_back(t.clone());
    return t;
  }
  Tensor rand(const Shape& shape) override { return inner_->rand(shape); }
  std::vector<Tensor> draws;

 private:
  std::unique_ptr<Generator> inner_;
};

// The cases' synthetic model, model(x_in, t) = a · x_in · cos(t / b) + c (the cosine in double, applied in float32),
// with a, b and c read from the case's "synthetic_model" text: another model is refused, not silently replaced.
struct SyntheticModel {
  float a = 0, c = 0;
  double b = 1;

  static SyntheticModel from_case(const nlohmann::json& spec) {
    PIG_CHECK(spec.contains("synthetic_model") && spec["synthetic_model"].is_string(),
              "scheduler case without a synthetic_model description");
    const std::string text = spec["synthetic_model"].get<std::string>();
    static const std::regex form(
        R"(model\(x_in, t\) = ([0-9.eE+-]+) \* x_in \* cos\(float\(t\) / ([0-9.eE+-]+)\) \+ ([0-9.eE+-]+))");
    std::smatch m;
    PIG_CHECK(std::regex_search(text, m, form), "scheduler case: synthetic_model '", text,
              "' is not of the form model(x_in, t) = a * x_in * cos(float(t) / b) + c");
    SyntheticModel sm;
    sm.a = std::stof(m[1].str());
    sm.b = std::stod(m[2].str());
    sm.c = std::stof(m[3].str());
    return sm;
  }

  Tensor operator()(const Tensor& x_in, double t) const {
    const float k = float(std::cos(t / b));
    Tensor y = ops::scale(ops::scale(x_in.as_f32(), a), k);
    float* p = y.f32();
    for (int64_t i = 0; i < y.numel(); ++i) p[i] += c;
    return y;
  }
};

std::string class_name(const nlohmann::json& producer) {
  std::string cls = producer.value("class", "");
  const auto dot = cls.rfind('.');
  return dot == std::string::npos ? cls : cls.substr(dot + 1);
}

bool registered(const std::string& cls) {
  for (const auto& n : scheduler_names())
    if (n == cls) return true;
  return false;
}

// The case's config plus the producer's extra_config and step kwargs (eta lands in SchedulerConfig::eta).
SchedulerConfig make_config(const nlohmann::json& config, const nlohmann::json& producer,
                            const nlohmann::json& step_kwargs) {
  nlohmann::json j = config;
  for (const auto* part : {&producer["extra_config"], &step_kwargs})
    if (part->is_object())
      for (auto it = part->begin(); it != part->end(); ++it)
        if (!j.contains(it.key()) || part == &step_kwargs) j[it.key()] = it.value();
  return SchedulerConfig::from_json(j.dump());
}

Tensor vec_tensor(const std::vector<double>& v) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector({int64_t(f.size())}, f);
}

void check_scalar(Case& c, const std::string& label, double actual, double expected, double rtol) {
  const bool ok = std::fabs(actual - expected) <= 1e-6 + rtol * std::fabs(expected);
  if (ok)
    std::printf("%-60s %.9g PASS\n", label.c_str(), actual);
  else
    c.failure(label, "got " + std::to_string(actual) + ", expected " + std::to_string(expected));
}

void run_schedules(Case& c) {
  static const std::regex meaning_re(R"('beta_start': ([0-9.e-]+), 'beta_end': ([0-9.e-]+), 'beta_schedule': '(\w+)')");
  for (const auto& name : c.tensor_names()) {
    const auto dot = name.find('.');
    if (dot == std::string::npos || name.substr(dot + 1) != "betas") continue;
    std::smatch m;
    const std::string meaning = c.spec()["tensors"][name].value("meaning", "");
    PIG_CHECK(std::regex_search(meaning, m, meaning_re), c.name(), ": cannot read the schedule of '", name, "'");
    SchedulerConfig cfg;
    cfg.beta_start = std::stod(m[1].str());
    cfg.beta_end = std::stod(m[2].str());
    cfg.beta_schedule = m[3].str();
    cfg.num_train_timesteps = int(c.tensor(name).numel());
    auto train = schedule::TrainSchedule::from_config(cfg);
    const std::string prefix = name.substr(0, dot);
    c.compare(name, Tensor::from_vector({int64_t(train.betas.size())}, train.betas));
    if (c.has(prefix + ".alphas_cumprod"))
      c.compare(prefix + ".alphas_cumprod",
                Tensor::from_vector({int64_t(train.alphas_cumprod.size())}, train.alphas_cumprod));
  }
}

void run_tables(Case& c, const std::string& cls) {
  const auto& spec = c.spec();
  std::vector<std::string> errors;
  if (spec.contains("errors"))
    for (const auto& e : spec["errors"]) errors.push_back(e.value("key", ""));
  const nlohmann::json no_kwargs = nlohmann::json::object();
  for (const auto& tab : spec.value("set_timesteps_tables", nlohmann::json::array())) {
    const std::string key = tab.at("key");
    const int n = tab.at("N");
    const bool must_fail = std::find(errors.begin(), errors.end(), key) != errors.end();
    std::unique_ptr<Scheduler> s;
    std::string why;
    try {
      s = make_scheduler(cls, make_config(tab.at("config"), spec["producer"], spec["producer"].value("step_kwargs", no_kwargs)));
      s->set_timesteps(n);
    } catch (const Error& e) {
      why = e.what();
      s.reset();
    }
    if (must_fail) {
      if (s) c.failure(key + " (rejected config)", "accepted, expected an error");
      else std::printf("%-60s rejected PASS (%s)\n", (key + " (rejected config)").c_str(), why.c_str());
      continue;
    }
    if (!s) {
      c.failure(key, "error: " + why);
      continue;
    }
    if (c.has(key + ".timesteps")) c.compare(key + ".timesteps", vec_tensor(s->timesteps()));
    if (c.has(key + ".sigmas")) c.compare(key + ".sigmas", vec_tensor(s->sigmas()));
    if (tab.contains("init_noise_sigma") && tab["init_noise_sigma"].is_number())
      check_scalar(c, key + ".init_noise_sigma", s->init_noise_sigma(), tab["init_noise_sigma"].get<double>(), 1e-6);
    if (tab.contains("len_timesteps") && tab["len_timesteps"].is_number() && int(s->timesteps().size()) != tab["len_timesteps"].get<int>())
      c.failure(key + ".len_timesteps", "got " + std::to_string(s->timesteps().size()));
  }
}

void run_loops(Case& c, const std::string& cls) {
  const auto& spec = c.spec();
  if (spec.value("loops", nlohmann::json::array()).empty()) return;
  const SyntheticModel synthetic_model = SyntheticModel::from_case(spec);
  const Tensor latents = c.tensor("latents");
  for (const auto& loop : spec.value("loops", nlohmann::json::array())) {
    const std::string key = loop.at("key");
    const auto step_kwargs = loop.value("step_kwargs", spec["producer"].value("step_kwargs", nlohmann::json::object()));
    std::unique_ptr<Scheduler> s;
    try {
      s = make_scheduler(cls, make_config(loop.at("config"), spec["producer"], step_kwargs));
      s->set_timesteps(loop.at("N").get<int>());
    } catch (const Error& e) {
      c.failure(key, std::string("error: ") + e.what());
      continue;
    }
    std::vector<double> want_ts;
    for (const auto& t : loop.at("timesteps")) want_ts.push_back(t.get<double>());
    bool ts_ok = want_ts.size() == s->timesteps().size();
    for (size_t i = 0; ts_ok && i < want_ts.size(); ++i)
      ts_ok = std::fabs(want_ts[i] - s->timesteps()[i]) <= 1e-4 + 1e-6 * std::fabs(want_ts[i]);
    if (!ts_ok) {
      c.failure(key + ".timesteps", "loop timesteps differ (" + std::to_string(s->timesteps().size()) + " vs " +
                                        std::to_string(want_ts.size()) + ")");
      continue;
    }
    // Samplers that draw nothing have no seed recorded; any generator will do (the draw count is checked).
    const auto& seed = loop.at("generator_seed");
    const uint64_t seed_value =
        seed.is_string() ? std::stoull(seed.get<std::string>()) : seed.is_number() ? seed.get<uint64_t>() : 0;
    RecordingGenerator gen(make_generator("cpu", seed_value));
    // Noise that does not come from the generator (DPM++ SDE's Brownian tree) is reported by the sampler.
    std::vector<Tensor> tree_noise, tree_increments;
    s->set_noise_observer([&](const std::string& what, const Tensor& v) {
      (what == "noise" ? tree_noise : tree_increments).push_back(v.clone());
    });
    Tensor x = ops::scale(latents, float(s->init_noise_sigma()));
    const auto ts = s->timesteps();
    try {
      for (size_t i = 0; i < ts.size(); ++i) {
        Tensor x_in = s->scale_model_input(x, ts[i]);
        Tensor eps = synthetic_model(x_in, ts[i]);
        x = s->step(eps, ts[i], x, &gen);
        char name[32];
        std::snprintf(name, sizeof name, ".step%02zu", i);
        if (c.has(key + name)) c.compare(key + name, x);
        else c.failure(key + name, "no golden tensor for this step");
      }
    } catch (const Error& e) {
      c.failure(key, std::string("error: ") + e.what());
      continue;
    }
    const int want_draws = loop["noise_draws"].is_number() ? loop["noise_draws"].get<int>() : -1;
    const size_t drawn = gen.draws.size() + tree_noise.size();
    if (want_draws >= 0 && int(drawn) != want_draws)
      c.failure(key + ".noise_draws", "drew " + std::to_string(drawn) + " times, expected " +
                                          std::to_string(want_draws));
    // A loop whose noise equals another loop's (same seed, same σ) is held to that loop's tensors.
    const std::string noise_key = loop.value("noise_same_as", key);
    const std::vector<Tensor>& noise = gen.draws.empty() ? tree_noise : gen.draws;
    for (size_t i = 0; i < noise.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, ".noise%02zu", i);
      if (c.has(noise_key + name)) c.compare(noise_key + name, noise[i]);
      else if (loop.value("noise_stored", false) || noise_key != key) c.failure(key + name, "no golden noise tensor");
    }
    for (size_t i = 0; i < tree_increments.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, ".bm_inc%02zu", i);
      if (c.has(noise_key + name)) c.compare(noise_key + name, tree_increments[i]);
    }
  }
}

// The Brownian tree on its own (DPM++ SDE cases): SeedSequence test vectors, then per loop the tree built from the
// recorded interval and entropy: the root's W, every recorded query's increment and tiling, and for the traced loop
// every split's seed and every node's W.
void run_brownian(Case& c) {
  const auto& spec = c.spec();
  for (const auto& v : spec.value("seedsequence_test_vectors", nlohmann::json::array())) {
    const auto& e = v.at("entropy");
    const uint64_t entropy = e.is_string() ? std::stoull(e.get<std::string>()) : e.get<uint64_t>();
    std::vector<uint64_t> spawn;
    for (const auto& k : v.at("spawn_key")) spawn.push_back(k.get<uint64_t>());
    std::vector<int64_t> want, got;
    for (const auto& w : v.at("words")) want.push_back(w.get<int64_t>());
    for (uint32_t w : seed_sequence_state(entropy, spawn, v.at("n_words").get<int>())) got.push_back(w);
    c.compare_ids("seedsequence(" + e.dump() + ", " + v.at("spawn_key").dump() + ")", got, want);
  }
  for (const auto& loop : spec.value("loops", nlohmann::json::array())) {
    if (!loop.contains("brownian_tree")) continue;
    const std::string key = loop.at("key");
    const auto& bt = loop["brownian_tree"];
    Shape shape;
    for (const auto& d : bt.at("shape")) shape.push_back(d.get<int64_t>());
    const auto& tol = bt.at("bm_tolerance");
    const double atol = tol.at("atol"), rtol = tol.at("rtol");
    try {
      BrownianTree tree(bt.at("t0").get<double>(), bt.at("t1").get<double>(), shape, bt.at("entropy").get<uint64_t>());
      if (tree.start() != bt.at("root_start").get<double>() || tree.end() != bt.at("root_end").get<double>())
        c.failure(key + ".tree_interval", "rounded interval differs");
      if (c.has(key + ".bm_root_W")) c.compare(key + ".bm_root_W", tree.root(), atol, rtol);
      for (const auto& q : loop.value("brownian_queries", nlohmann::json::array())) {
        char name[32];
        std::snprintf(name, sizeof name, ".bm_inc%02d", q.at("draw").get<int>());
        const double s = q.at("s"), s_next = q.at("s_next");
        const auto pieces = tree.pieces(std::min(s, s_next), std::max(s, s_next));
        if (int(pieces.size()) != q.at("pieces").get<int>())
          c.failure(key + name + ".pieces", "tiled by " + std::to_string(pieces.size()) + " nodes, expected " +
                                                std::to_string(q.at("pieces").get<int>()));
        if (c.has(key + name)) c.compare(key + name, tree.increment(s, s_next), atol, rtol);  // the tree alone
      }
      if (!loop.contains("brownian_trace")) continue;
      const auto& tr = loop["brownian_trace"];
      const uint64_t entropy = bt.at("entropy").get<uint64_t>();
      int bad_seeds = 0, bad_mids = 0;
      for (const auto& sp : tr.at("splits")) {  // start, end, mid, spawn_key, depth, W_seed, made_by_draw
        const uint64_t k = sp[3].get<uint64_t>();
        const int depth = sp[4].get<int>();
        if (seed_sequence_state(entropy, {k, uint64_t(depth)}, 4)[0] != sp[5].get<uint32_t>()) ++bad_seeds;
        const auto iv = tree.node_interval(k, depth);
        if (iv.first != sp[0].get<double>() || iv.second != sp[1].get<double>() ||
            round_6_decimals(0.5 * (iv.first + iv.second)) != sp[2].get<double>())
          ++bad_mids;
      }
      if (bad_seeds || bad_mids)
        c.failure(key + ".brownian_trace.splits", std::to_string(bad_seeds) + " seeds and " + std::to_string(bad_mids) +
                                                      " intervals differ");
      else
        std::printf("%-60s %zu splits PASS\n", (key + ".brownian_trace.splits").c_str(), tr.at("splits").size());
      for (const auto& n : tr.at("nodes")) {  // node, start, end, spawn_key, depth
        char name[32];
        std::snprintf(name, sizeof name, ".bm_node%03d", n[0].get<int>());
        if (!c.has(key + name)) continue;
        const auto iv = tree.node_interval(n[3].get<uint64_t>(), n[4].get<int>());
        if (iv.first != n[1].get<double>() || iv.second != n[2].get<double>())
          c.failure(key + name, "node interval differs");
        c.compare(key + name, tree.node(n[3].get<uint64_t>(), n[4].get<int>()), atol, rtol);
      }
    } catch (const Error& e) {
      c.failure(key + ".brownian_tree", std::string("error: ") + e.what());
    }
  }
}

void run_scheduler_case(Case& c) {
  if (c.name() == "schedulers/_schedules") return run_schedules(c);
  const std::string cls = class_name(c.spec().at("producer"));
  if (!registered(cls)) {
    c.failure(c.name(), "unsupported: scheduler '" + cls + "' is not registered");
    return;
  }
  run_tables(c, cls);
  run_loops(c, cls);
  if (c.spec().contains("brownian_tree_algorithm")) run_brownian(c);
}

Register reg("schedulers/", run_scheduler_case);

}  // namespace
}  // namespace pigment::golden
