#include "training/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/threading.h"

namespace pigment::training {
namespace {

Param make_param(const std::string& name, std::vector<float> value, std::vector<float> grad) {
  Param p{name, Tensor::from_vector({int64_t(value.size())}, value), {}};
  if (!grad.empty()) p.grad = Tensor::from_vector({int64_t(grad.size())}, grad);
  return p;
}

// The AdamW update written out in double precision, independently of the float32 kernel.
struct AdamRef {
  double p, m = 0, v = 0;
  void step(double g, int k, const AdamWOptions& o) {
    p *= 1 - o.lr * o.weight_decay;
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g * g;
    p -= o.lr / (1 - std::pow(o.beta1, k)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(o.beta2, k)) + o.eps);
  }
};

TEST(AdamW, MatchesTheFormulaOverSeveralSteps) {
  AdamWOptions o{.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1};
  AdamW opt(o);
  std::vector<float> start = {0.5f, -1.25f, 2.0f, 0.0f};
  std::vector<Param> params = {make_param("w", start, {0, 0, 0, 0})};
  std::vector<AdamRef> ref;
  for (float x : start) ref.push_back({x});
  for (int k = 1; k <= 5; ++k) {
    std::vector<float> g = {0.3f * k, -0.7f, 1e-3f / k, 2.5f - k};
    params[0].grad = Tensor::from_vector({4}, g);
    opt.step(params);
    for (int i = 0; i < 4; ++i) ref[i].step(g[i], k, o);
  }
  auto got = params[0].value.to_vector();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], ref[i].p, 1e-6) << "element " << i;
  // The state says how far it got.
  StateDict s = opt.state();
  EXPECT_EQ(*s.at("w.step").data<int64_t>(), 5);
  EXPECT_NEAR(s.at("w.exp_avg").to_vector()[1], ref[1].m, 1e-6);
  EXPECT_NEAR(s.at("w.exp_avg_sq").to_vector()[0], ref[0].v, 1e-6);
}

// A parameter with lr_scale s moves as under an optimizer whose lr is s × lr (a torch param group), and its
// neighbour with the default scale as under lr itself.
TEST(AdamW, LrScaleActsAsAParamGroup) {
  AdamWOptions o{.lr = 1e-2, .weight_decay = 0.1};
  AdamW mixed(o);
  AdamWOptions scaled = o;
  scaled.lr = 0.25 * o.lr;
  AdamW plain(o), quarter(scaled);
  std::vector<Param> both = {make_param("te", {0.5f, -1.f}, {}), make_param("unet", {2.f, 0.25f}, {})};
  both[0].lr_scale = 0.25;
  std::vector<Param> a = {make_param("te", {0.5f, -1.f}, {})}, b = {make_param("unet", {2.f, 0.25f}, {})};
  for (int k = 1; k <= 3; ++k) {
    for (auto* p : {&both[0], &a[0]}) p->grad = Tensor::from_vector({2}, {0.3f * k, -0.7f});
    for (auto* p : {&both[1], &b[0]}) p->grad = Tensor::from_vector({2}, {1.5f, 0.2f / k});
    mixed.step(both);
    quarter.step(a);
    plain.step(b);
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(both[0].value.f32()[i], a[0].value.f32()[i]);
    EXPECT_EQ(both[1].value.f32()[i], b[0].value.f32()[i]);
  }
  EXPECT_NE(a[0].value.f32()[0], 0.5f);
}

TEST(AdamW, UpdatesTheSharedWeightInPlace) {
  Tensor weight = Tensor::from_vector({2}, {1.0f, -1.0f});
  std::vector<Param> params = {{"w", weight, Tensor::from_vector({2}, {1.0f, -1.0f})}};
  AdamW(AdamWOptions{.lr = 0.1, .weight_decay = 0}).step(params);
  // The first step moves every element by lr against the sign of its gradient.
  EXPECT_NEAR(weight.to_vector()[0], 0.9f, 1e-6);
  EXPECT_NEAR(weight.to_vector()[1], -0.9f, 1e-6);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  AdamW opt;
  std::vector<Param> params = {make_param("a", {1.0f}, {0.5f}), make_param("b", {2.0f}, {})};
  opt.step(params);
  opt.step(params);
  EXPECT_EQ(params[1].value.to_vector()[0], 2.0f);
  StateDict s = opt.state();
  EXPECT_EQ(s.count("b.exp_avg"), 0u);
  EXPECT_EQ(*s.at("a.step").data<int64_t>(), 2);
  // A parameter that gets its first gradient later starts at its own step 1 (bias correction as in PyTorch).
  params[1].grad = Tensor::from_vector({1}, {1.0f});
  opt.step(params);
  EXPECT_EQ(*opt.state().at("b.step").data<int64_t>(), 1);
  EXPECT_NEAR(params[1].value.to_vector()[0], 2.0f * (1 - 1e-5) - 1e-3, 1e-6);
}

TEST(AdamW, RejectsAGradientOfTheWrongShape) {
  AdamW opt;
  std::vector<Param> params = {make_param("w", {1, 2, 3}, {1, 2})};
  EXPECT_THROW(opt.step(params), Error);
}

// Saving the state after some steps and loading it into a fresh optimizer continues bit for bit.
TEST(AdamW, StateRoundTripResumesExactly) {
  auto grads = [](int k) { return std::vector<float>{0.1f * k, -0.2f, 0.05f * k * k}; };
  AdamW a;
  std::vector<Param> pa = {make_param("w", {1, 2, 3}, {})};
  for (int k = 1; k <= 3; ++k) {
    pa[0].grad = Tensor::from_vector({3}, grads(k));
    a.step(pa);
  }
  StateDict saved = a.state();
  std::vector<Param> pb = {{"w", pa[0].value.clone(), {}}};
  AdamW b;
  b.load_state(saved);
  for (int k = 4; k <= 6; ++k) {
    pa[0].grad = Tensor::from_vector({3}, grads(k));
    pb[0].grad = pa[0].grad.clone();
    a.step(pa);
    b.step(pb);
  }
  EXPECT_EQ(pa[0].value.to_vector(), pb[0].value.to_vector());
  // The exported state is a copy: stepping on does not change it.
  EXPECT_EQ(*saved.at("w.step").data<int64_t>(), 3);
  EXPECT_THROW(b.load_state({{"w.bogus", Tensor::zeros({3})}}), Error);
}

// state_view() is the state itself (a checkpoint streams it to its file without a copy): the same values as the
// copy that state() makes, in the same memory as the optimizer's, so it follows later steps and the copy does not.
TEST(AdamW, StateViewIsTheLiveStateAndStateACopyOfIt) {
  AdamW a;
  std::vector<Param> p = {make_param("w", {1, 2, 3}, {0.1f, -0.2f, 0.3f})};
  a.step(p);
  const StateDict view = a.state_view(), copy = a.state();
  ASSERT_EQ(view.size(), copy.size());
  for (const auto& [k, t] : copy) {
    ASSERT_TRUE(view.count(k)) << k;
    EXPECT_EQ(view.at(k).to_vector(), t.to_vector()) << k;
    EXPECT_NE(view.at(k).raw(), t.raw()) << k;
  }
  const std::vector<float> m1 = copy.at("w.exp_avg").to_vector();
  a.step(p);
  EXPECT_EQ(copy.at("w.exp_avg").to_vector(), m1);
  EXPECT_NE(view.at("w.exp_avg").to_vector(), m1);
  EXPECT_EQ(view.at("w.exp_avg").to_vector(), a.state().at("w.exp_avg").to_vector());

  SGD s(SGDOptions{.lr = 0.1, .momentum = 0.9});
  s.step(p);
  const StateDict sv = s.state_view(), sc = s.state();
  EXPECT_EQ(sv.at("w.momentum_buffer").to_vector(), sc.at("w.momentum_buffer").to_vector());
  EXPECT_NE(sv.at("w.momentum_buffer").raw(), sc.at("w.momentum_buffer").raw());
}

TEST(AdamW, SameBitsOnAnyThreadCount) {
  const int64_t n = 300000;
  std::vector<float> w(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    w[i] = std::sin(0.001f * i);
    g[i] = std::cos(0.0007f * i);
  }
  std::vector<float> results[2];
  for (int threads : {1, 4}) {
    ScopedNumThreads scope(threads);
    AdamW opt;
    std::vector<Param> params = {make_param("w", w, g)};
    opt.step(params);
    opt.step(params);
    results[threads == 4] = params[0].value.to_vector();
  }
  EXPECT_EQ(results[0], results[1]);
}

TEST(SGD, PlainWithWeightDecay) {
  SGD opt(SGDOptions{.lr = 0.1, .weight_decay = 0.5});
  std::vector<Param> params = {make_param("w", {2.0f}, {1.0f})};
  opt.step(params);
  EXPECT_NEAR(params[0].value.to_vector()[0], 2.0 - 0.1 * (1.0 + 0.5 * 2.0), 1e-6);
  EXPECT_EQ(opt.state().count("w.momentum_buffer"), 0u);
}

// Momentum with PyTorch's semantics: the buffer starts as the first gradient (not as (1-dampening) g).
TEST(SGD, MomentumAndNesterov) {
  for (bool nesterov : {false, true}) {
    SGDOptions o{.lr = 0.1, .momentum = 0.9, .dampening = 0, .weight_decay = 0, .nesterov = nesterov};
    SGD opt(o);
    std::vector<Param> params = {make_param("w", {1.0f}, {})};
    double p = 1, buf = 0;
    const double gs[] = {1.0, -0.5, 0.25};
    for (int k = 0; k < 3; ++k) {
      params[0].grad = Tensor::from_vector({1}, {float(gs[k])});
      opt.step(params);
      buf = k == 0 ? gs[k] : 0.9 * buf + gs[k];
      p -= 0.1 * (nesterov ? gs[k] + 0.9 * buf : buf);
    }
    EXPECT_NEAR(params[0].value.to_vector()[0], p, 1e-6) << "nesterov " << nesterov;
    EXPECT_NEAR(opt.state().at("w.momentum_buffer").to_vector()[0], buf, 1e-6);
  }
  EXPECT_THROW(SGD(SGDOptions{.momentum = 0, .nesterov = true}), Error);
}

TEST(SGD, DampeningAndResume) {
  SGDOptions o{.lr = 0.05, .momentum = 0.5, .dampening = 0.25};
  SGD a(o);
  std::vector<Param> pa = {make_param("w", {1.0f, -1.0f}, {0.5f, 2.0f})};
  a.step(pa);
  a.step(pa);  // buf = 0.5 g + 0.75 g
  EXPECT_NEAR(a.state().at("w.momentum_buffer").to_vector()[1], 2.0 * 1.25, 1e-6);
  SGD b(o);
  b.load_state(a.state());
  std::vector<Param> pb = {{"w", pa[0].value.clone(), pa[0].grad.clone()}};
  a.step(pa);
  b.step(pb);
  EXPECT_EQ(pa[0].value.to_vector(), pb[0].value.to_vector());
}

// The message make_optimizer throws for type + args, or "" when it makes one.
std::string make_error(const std::string& type, const std::vector<std::string>& args) {
  try {
    make_optimizer(type, args, 1e-3);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// kohya's --optimizer_type / --optimizer_args: names in any case, key=value settings that reach torch's arguments.
TEST(MakeOptimizer, KohyaNamesAndArguments) {
  EXPECT_EQ(optimizer_type_name("adamw"), "AdamW");
  EXPECT_EQ(optimizer_type_name("sgdnesterov"), "SGDNesterov");
  auto adamw = make_optimizer("AdamW", {"betas=0.8,0.95 eps=1e-6", "weight_decay=0"}, 2e-3);
  const AdamWOptions& ao = dynamic_cast<AdamW&>(*adamw).options();
  EXPECT_EQ(ao.lr, 2e-3);
  EXPECT_EQ(ao.beta1, 0.8);
  EXPECT_EQ(ao.beta2, 0.95);
  EXPECT_EQ(ao.eps, 1e-6);
  EXPECT_EQ(ao.weight_decay, 0);
  EXPECT_EQ(adamw->describe(), "torch.optim.adamw.AdamW(betas=(0.8, 0.95),eps=1e-06,weight_decay=0)");
  // AdamW's defaults come from the caller (--adam-weight-decay); the arguments win.
  EXPECT_EQ(dynamic_cast<AdamW&>(*make_optimizer("adamw", {}, 1, AdamWOptions{.weight_decay = 0.3})).options().weight_decay,
            0.3);
  auto sgd = make_optimizer("SGD", {"momentum=0.9", "weight_decay=0.01", "nesterov=True"}, 0.5);
  const SGDOptions& so = dynamic_cast<SGD&>(*sgd).options();
  EXPECT_EQ(so.lr, 0.5);
  EXPECT_EQ(so.momentum, 0.9);
  EXPECT_EQ(so.weight_decay, 0.01);
  EXPECT_TRUE(so.nesterov);
  EXPECT_EQ(sgd->torch_class(), "SGD");
  // SGDNesterov: torch's SGD with nesterov=True and, as kohya sets it, momentum 0.9 unless given.
  auto nag = make_optimizer("SGDNesterov", {}, 0.1);
  EXPECT_TRUE(dynamic_cast<SGD&>(*nag).options().nesterov);
  EXPECT_EQ(dynamic_cast<SGD&>(*nag).options().momentum, 0.9);
  EXPECT_EQ(dynamic_cast<SGD&>(*make_optimizer("SGDNesterov", {"momentum=0.5"}, 0.1)).options().momentum, 0.5);
  EXPECT_EQ(dynamic_cast<SGD&>(*make_optimizer("SGD", {}, 0.1)).options().momentum, 0);
}

TEST(MakeOptimizer, BadTypesAndArgumentsAreNamed) {
  EXPECT_NE(make_error("AdamW8bit", {}).find("AdamW8bit is not supported"), std::string::npos);
  EXPECT_NE(make_error("Lion", {}).find("Lion is not supported"), std::string::npos);
  EXPECT_NE(make_error("SGD", {"momentum=0.9 betas=0.9,0.99"}).find("unknown key 'betas'"), std::string::npos);
  EXPECT_NE(make_error("AdamW", {"momentum=0.9"}).find("unknown key 'momentum'"), std::string::npos);
  EXPECT_NE(make_error("SGD", {"momentum"}).find("expected key=value, got 'momentum'"), std::string::npos);
  EXPECT_NE(make_error("SGD", {"momentum=fast"}).find("momentum=fast"), std::string::npos);
  EXPECT_NE(make_error("SGD", {"momentum=0.9", "momentum=0.8"}).find("'momentum' is given twice"), std::string::npos);
  EXPECT_NE(make_error("SGD", {"nesterov=maybe"}).find("True or False"), std::string::npos);
  EXPECT_NE(make_error("SGD", {"nesterov=True"}), "");  // nesterov needs momentum (torch)
  EXPECT_NE(make_error("SGDNesterov", {"nesterov=False"}), "");
  EXPECT_NE(make_error("AdamW", {"betas=0.9"}).find("two numbers"), std::string::npos);
  EXPECT_NE(make_error("AdamW", {"amsgrad=True"}).find("amsgrad"), std::string::npos);
  EXPECT_EQ(make_error("AdamW", {"amsgrad=False"}), "");
}

// The value of key `k` (a string, or an integer when k is a number) in a pickled dict.
const pickle::Object& get(const pickle::Object& dict, const std::string& k) {
  for (const auto& [key, value] : dict.entries())
    if ((key.kind() == pickle::Object::Kind::Str && key.s() == k) ||
        (key.kind() == pickle::Object::Kind::Int && std::to_string(key.i()) == k))
      return value;
  throw std::runtime_error("no key " + k);
}

// torch.optim.SGD.state_dict() (A1111's .optim): a momentum buffer per stepped parameter, torch 1.13's group keys.
TEST(SGD, TorchStateDict) {
  SGD opt(SGDOptions{.lr = 0.1, .momentum = 0.9});
  std::vector<Param> params = {make_param("a", {1.0f}, {0.5f}), make_param("b", {1.0f}, {})};
  opt.step(params);
  const pickle::Object sd = opt.torch_state_dict({"a", "b"});
  const pickle::Object& state = get(sd, "state");
  EXPECT_EQ(state.entries().size(), 1u);
  EXPECT_EQ(get(get(state, "0"), "momentum_buffer").tensor_value().to_vector(), std::vector<float>{0.5f});
  const pickle::Object& group = get(sd, "param_groups").items()[0];
  EXPECT_EQ(get(group, "momentum").f(), 0.9);
  EXPECT_FALSE(get(group, "nesterov").b());
  EXPECT_EQ(get(group, "params").items().size(), 2u);
  EXPECT_THROW(opt.torch_state_dict({"b"}), Error);
}

TEST(ClipGradNorm, ScalesAllGradientsByTheTotalNorm) {
  std::vector<Param> params = {make_param("a", {0, 0}, {3.0f, 0.0f}), make_param("b", {0}, {4.0f}),
                               make_param("c", {0}, {})};
  float total = clip_grad_norm(params, 1.0);
  EXPECT_FLOAT_EQ(total, 5.0f);
  const float coef = 1.0f / (5.0f + 1e-6f);
  EXPECT_FLOAT_EQ(params[0].grad.to_vector()[0], 3.0f * coef);
  EXPECT_FLOAT_EQ(params[1].grad.to_vector()[0], 4.0f * coef);
  EXPECT_FALSE(params[2].grad.defined());
  // Below the limit nothing changes; the norm is still returned.
  EXPECT_NEAR(clip_grad_norm(params, 10.0), 1.0f, 1e-5);
  EXPECT_FLOAT_EQ(params[1].grad.to_vector()[0], 4.0f * coef);
}

TEST(ClipGradNorm, NoGradientsGiveZero) {
  std::vector<Param> params = {make_param("a", {1}, {})};
  EXPECT_EQ(clip_grad_norm(params, 1.0), 0.0f);
}

}  // namespace
}  // namespace pigment::training
