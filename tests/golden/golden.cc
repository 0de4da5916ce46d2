// The golden-case frame (golden.h): reading a case, comparing tensors, ids and texts, the runner registry.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <iostream>
#include <map>

#include "golden.h"

namespace pigment::golden {

namespace {
std::map<std::string, Runner>& registry() {
  static std::map<std::string, Runner> r;
  return r;
}
}  // namespace

Register::Register(const std::string& prefix, Runner run) { registry()[prefix] = std::move(run); }

const Runner* find_runner(const std::string& case_name) {
  const Runner* best = nullptr;
  size_t best_len = 0;
  for (const auto& [prefix, run] : registry())
    if (case_name.rfind(prefix, 0) == 0 && prefix.size() >= best_len) {
      best = &run;
      best_len = prefix.size();
    }
  return best;
}

// Python's json module writes Infinity, -Infinity and NaN, which JSON does not have: outside strings they become
// ±1e308 (as good as infinite for every config value that uses them) and null.
std::string python_json_to_json(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) out += text[++i];
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    if (text.compare(i, 8, "Infinity") == 0) {
      out += "1e308";
      i += 7;
    } else if (text.compare(i, 3, "NaN") == 0) {
      out += "null";
      i += 2;
    } else {
      out += ch;
    }
  }
  return out;
}

Case::Case(const fs::path& dir) : dir_(fs::absolute(dir).lexically_normal()) {
  if (dir_.filename().empty()) dir_ = dir_.parent_path();
  std::ifstream f(dir_ / "case.json");
  PIG_CHECK(f, (dir_ / "case.json").string(), ": cannot open");
  try {
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    spec_ = nlohmann::json::parse(python_json_to_json(text));
  } catch (const std::exception& e) {
    fail((dir_ / "case.json").string(), ": invalid JSON: ", e.what());
  }
  name_ = spec_.value("case", dir_.parent_path().filename().string() + "/" + dir_.filename().string());
  if (fs::exists(dir_ / "tensors.safetensors")) tensors_ = SafeTensors::open((dir_ / "tensors.safetensors").string());
}

bool Case::has(const std::string& t) const { return tensors_ && tensors_->contains(t); }

Tensor Case::tensor(const std::string& n) const {
  PIG_CHECK(tensors_, name_, ": case has no tensors.safetensors");
  return tensors_->get(n).as_f32();
}

std::vector<std::string> Case::tensor_names() const {
  std::vector<std::string> v;
  if (tensors_)
    for (const auto& e : tensors_->entries()) v.push_back(e.name);
  return v;
}

bool Case::compare(const std::string& name, const Tensor& actual) {
  const auto& ts = spec_["tensors"];
  PIG_CHECK(ts.contains(name), name_, ": case.json lists no tensor '", name, "'");
  const auto& t = ts[name];
  return compare(name, actual, t.value("atol", 0.0), t.value("rtol", 0.0));
}

bool Case::compare(const std::string& name, const Tensor& actual, double atol, double rtol) {
  ++compared_;
  Tensor g = tensor(name);
  // The shapes must be equal, not only the element counts: a transposed result of the same size is a failure.
  if (g.shape() != actual.shape()) {
    count_failure(name);
    std::printf("%-60s FAIL: shape %s, expected %s\n", name.c_str(), shape_str(actual.shape()).c_str(),
                shape_str(g.shape()).c_str());
    return false;
  }
  Tensor a = actual.as_f32();
  double max_abs = 0, max_rel = 0;
  int64_t bad = 0;
  const float *pa = a.f32(), *pg = g.f32();
  for (int64_t i = 0; i < g.numel(); ++i) {
    double d = std::fabs(double(pa[i]) - pg[i]);
    if (std::isnan(pa[i]) != std::isnan(pg[i])) d = INFINITY;
    if (std::isnan(pa[i]) && std::isnan(pg[i])) d = 0;
    max_abs = std::max(max_abs, d);
    if (pg[i] != 0) max_rel = std::max(max_rel, d / std::fabs(pg[i]));
    if (!(d <= atol + rtol * std::fabs(pg[i]))) ++bad;
  }
  bool ok = bad == 0;
  if (!ok) count_failure(name);
  std::printf("%-60s max_abs=%.3e max_rel=%.3e %s", name.c_str(), max_abs, max_rel, ok ? "PASS" : "FAIL");
  if (!ok) std::printf(" (%lld of %lld outside atol=%g rtol=%g)", (long long)bad, (long long)g.numel(), atol, rtol);
  std::printf("\n");
  return ok;
}

bool Case::compare_ids(const std::string& label, const std::vector<int64_t>& actual,
                       const std::vector<int64_t>& expected) {
  ++compared_;
  bool ok = actual == expected;
  if (!ok) {
    count_failure(label);
    size_t i = 0;
    while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
    std::printf("%-60s FAIL: first difference at %zu (got %lld, expected %lld; lengths %zu vs %zu)\n", label.c_str(), i,
                i < actual.size() ? (long long)actual[i] : -1LL, i < expected.size() ? (long long)expected[i] : -1LL,
                actual.size(), expected.size());
  } else {
    std::printf("%-60s exact (%zu ids) PASS\n", label.c_str(), actual.size());
  }
  return ok;
}

bool Case::compare_text(const std::string& label, const std::string& actual, const std::string& expected) {
  ++compared_;
  bool ok = actual == expected;
  if (!ok) {
    count_failure(label);
    std::printf("%-60s FAIL: got \"%s\", expected \"%s\"\n", label.c_str(), actual.c_str(), expected.c_str());
  } else {
    std::printf("%-60s exact PASS\n", label.c_str());
  }
  return ok;
}

void Case::failure(const std::string& label, const std::string& why) {
  ++compared_;
  count_failure(label);
  std::printf("%-60s FAIL: %s\n", label.c_str(), why.c_str());
}

}  // namespace pigment::golden

