#include "training/ema.h"

#include <gtest/gtest.h>

#include <cmath>

namespace pigment::training {
namespace {

std::vector<Param> one_param(float v) { return {{"w", Tensor::from_vector({2}, {v, -v}), {}}}; }

TEST(Ema, DecayWarmsUpLikeDiffusers) {
  std::vector<Param> params = one_param(0);
  Ema ema(params, EmaOptions{.decay = 0.99});
  EXPECT_EQ(ema.decay_at(1), 0.0);  // the first update copies
  EXPECT_DOUBLE_EQ(ema.decay_at(2), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(ema.decay_at(11), 11.0 / 20.0);
  EXPECT_DOUBLE_EQ(ema.decay_at(100000), 0.99);  // capped at decay
  Ema delayed(params, EmaOptions{.decay = 0.99, .update_after_step = 5});
  EXPECT_EQ(delayed.decay_at(6), 0.0);
  EXPECT_DOUBLE_EQ(delayed.decay_at(7), 2.0 / 11.0);
  Ema power(params, EmaOptions{.decay = 0.999, .warmup = EmaOptions::Warmup::Power});
  EXPECT_NEAR(power.decay_at(9), 1 - std::pow(9.0, -2.0 / 3.0), 1e-12);
  Ema constant(params, EmaOptions{.decay = 0.9, .warmup = EmaOptions::Warmup::Constant});
  EXPECT_EQ(constant.decay_at(2), 0.9);
}

TEST(Ema, AveragesTheWeights) {
  std::vector<Param> params = one_param(1.0f);
  Ema ema(params, EmaOptions{.decay = 0.5, .warmup = EmaOptions::Warmup::Constant});
  // Step 1 copies (decay 0); later steps average with decay 0.5.
  params[0].value.f32()[0] = 3.0f;
  ema.update(params);
  EXPECT_FLOAT_EQ(ema.shadow().at("w").to_vector()[0], 3.0f);
  params[0].value.f32()[0] = 5.0f;
  ema.update(params);
  EXPECT_FLOAT_EQ(ema.shadow().at("w").to_vector()[0], 4.0f);
  params[0].value.f32()[0] = 0.0f;
  ema.update(params);
  EXPECT_FLOAT_EQ(ema.shadow().at("w").to_vector()[0], 2.0f);
  EXPECT_FLOAT_EQ(ema.shadow().at("w").to_vector()[1], -1.0f);
  EXPECT_EQ(ema.optimization_step(), 3);
  // The start was a copy: the model's weights are untouched until copy_to.
  EXPECT_EQ(params[0].value.to_vector()[0], 0.0f);
  ema.copy_to(params);
  EXPECT_FLOAT_EQ(params[0].value.to_vector()[0], 2.0f);
}

TEST(Ema, StateRoundTrip) {
  std::vector<Param> params = one_param(1.0f);
  Ema a(params, EmaOptions{.decay = 0.9});
  for (int k = 0; k < 4; ++k) {
    params[0].value.f32()[0] += 1.0f;
    a.update(params);
  }
  Ema b(params, EmaOptions{.decay = 0.9});
  b.load_state(a.state());
  EXPECT_EQ(b.optimization_step(), 4);
  params[0].value.f32()[1] = 7.0f;
  a.update(params);
  b.update(params);
  EXPECT_EQ(a.shadow().at("w").to_vector(), b.shadow().at("w").to_vector());
  EXPECT_THROW(b.load_state({{"w", Tensor::zeros({2})}}), Error);
}

// state_view() holds the averaged weights themselves (checkpoints stream them without a copy); state() copies.
TEST(Ema, StateViewIsTheLiveAverage) {
  std::vector<Param> params = one_param(1.0f);
  Ema a(params, EmaOptions{.decay = 0.9});
  params[0].value.f32()[0] += 1.0f;
  a.update(params);
  const StateDict view = a.state_view(), copy = a.state();
  EXPECT_EQ(view.at("shadow.w").raw(), a.shadow().at("w").raw());
  EXPECT_NE(copy.at("shadow.w").raw(), a.shadow().at("w").raw());
  EXPECT_EQ(view.at("shadow.w").to_vector(), copy.at("shadow.w").to_vector());
  EXPECT_EQ(*view.at("optimization_step").data<int64_t>(), 1);
}

TEST(Ema, UnknownParameterIsAnError) {
  std::vector<Param> params = one_param(1.0f);
  Ema ema(params);
  std::vector<Param> other = {{"v", Tensor::zeros({2}), {}}};
  EXPECT_THROW(ema.update(other), Error);
}

}  // namespace
}  // namespace pigment::training
