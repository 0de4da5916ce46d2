// Golden runner for "rng/": PyTorch CPU and CUDA generator draws, fresh and sequential, and diffusers'
// randn_tensor batch latents.
#include <algorithm>
#include <map>
#include <regex>

#include "golden.h"
#include "ops/ops.h"
#include "sampling/rng.h"

namespace pigment::golden {
namespace {

Shape parse_shape(const std::string& s) {
  Shape shape;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t x = s.find('x', pos);
    if (x == std::string::npos) x = s.size();
    shape.push_back(std::stoll(s.substr(pos, x - pos)));
    pos = x + 1;
  }
  return shape;
}

Tensor draw(Generator& g, const std::string& kind, const Shape& shape) {
  if (kind == "randn") return g.randn(shape);
  if (kind == "rand") return g.rand(shape);
  fail("rng case: unknown draw kind '", kind, "'");
}

void run_cpu_fresh(Case& c) {
  static const std::regex re(R"(^(randn|rand)_s(\d+)_([0-9x]+)$)");
  for (const auto& name : c.tensor_names()) {
    std::smatch m;
    if (!std::regex_match(name, m, re)) continue;
    auto g = make_generator("cpu", std::stoull(m[2].str()));
    c.compare(name, draw(*g, m[1].str(), parse_shape(m[3].str())));
  }
}

void run_cpu_sequential(Case& c) {
  static const std::regex re(R"(^draw(\d+)_(randn|rand)_([0-9x]+)$)");
  std::map<int, std::string> draws;
  for (const auto& name : c.tensor_names()) {
    std::smatch m;
    if (std::regex_match(name, m, re)) draws[std::stoi(m[1].str())] = name;
  }
  auto g = make_generator("cpu", std::stoull(c.spec().at("seed").get<std::string>()));
  int expect = 0;
  for (const auto& [i, name] : draws) {
    PIG_CHECK(i == expect, c.name(), ": draw ", expect, " is missing");
    ++expect;
    std::smatch m;
    std::regex_match(name, m, re);
    c.compare(name, draw(*g, m[2].str(), parse_shape(m[3].str())));
  }
}

void run_cuda_fresh(Case& c) {
  static const std::regex re(R"(^(manual_seed_default|randn|rand)\.seed(\d+)\.([0-9x]+)$)");
  for (const auto& name : c.tensor_names()) {
    std::smatch m;
    if (!std::regex_match(name, m, re)) continue;
    auto g = make_generator("cuda", std::stoull(m[2].str()));
    const std::string kind = m[1].str() == "rand" ? "rand" : "randn";
    c.compare(name, draw(*g, kind, parse_shape(m[3].str())));
  }
}

void run_cuda_sequential(Case& c) {
  static const std::regex re(R"(^randn_sequence\.seed(\d+)\.draw(\d+)\.([0-9x]+)$)");
  std::map<uint64_t, std::map<int, std::string>> by_seed;
  for (const auto& name : c.tensor_names()) {
    std::smatch m;
    if (std::regex_match(name, m, re)) by_seed[std::stoull(m[1].str())][std::stoi(m[2].str())] = name;
  }
  for (auto& [seed, draws] : by_seed) {
    auto g = make_generator("cuda", seed);
    int expect = 0;
    for (auto& [i, name] : draws) {
      PIG_CHECK(i == expect, c.name(), ": draw ", expect, " of seed ", seed, " is missing");
      ++expect;
      std::smatch m;
      std::regex_match(name, m, re);
      c.compare(name, g->randn(parse_shape(m[3].str())));
    }
  }
}

void run_randn_tensor(Case& c) {
  const auto& seeds = c.spec().at("seeds");
  if (c.has("batch_list_of_generators")) {
    Shape shape = c.tensor("batch_list_of_generators").shape();
    PIG_CHECK(int64_t(seeds.size()) == shape[0], c.name(), ": one seed per batch element expected");
    Shape one = shape;
    one[0] = 1;
    std::vector<Tensor> parts;
    for (const auto& s : seeds) parts.push_back(make_generator("cpu", std::stoull(s.get<std::string>()))->randn(one));
    c.compare("batch_list_of_generators", ops::concat(parts, 0));
  }
  if (c.has("batch_single_generator")) {
    Shape shape = c.tensor("batch_single_generator").shape();
    auto g = make_generator("cpu", std::stoull(seeds.at(0).get<std::string>()));
    c.compare("batch_single_generator", g->randn(shape));
  }
}

Register reg_cpu("rng/torch_cpu_generator", run_cpu_fresh);
Register reg_cpu_seq("rng/torch_cpu_sequential", run_cpu_sequential);
Register reg_cuda("rng/torch_cuda_generator", run_cuda_fresh);
Register reg_cuda_seq("rng/torch_cuda_sequential", run_cuda_sequential);
Register reg_randn_tensor("rng/diffusers_randn_tensor", run_randn_tensor);

}  // namespace
}  // namespace pigment::golden
