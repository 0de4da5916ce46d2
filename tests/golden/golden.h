// The golden-case runner's frame: a case directory of ../shared/golden (case.json + tensors.safetensors),
// a comparison that prints one line per tensor, and a registry of runners keyed by case-name prefix.
// Each group's runner lives in its own file here (clip.cc, unet.cc, schedulers.cc, ...) and calls only the
// public API of the layers it tests.
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace pigment::golden {

namespace fs = std::filesystem;

class Case {
 public:
  explicit Case(const fs::path& dir);

  const std::string& name() const { return name_; }  // e.g. "unet/unet_sd1"
  const fs::path& dir() const { return dir_; }
  const nlohmann::json& spec() const { return spec_; }
  fs::path golden_root() const { return dir_.parent_path().parent_path(); }  // .../golden
  fs::path models_dir() const { return golden_root() / "models"; }
  fs::path tokenizer_dir() const { return golden_root().parent_path() / "clip-tokenizer"; }

  bool has(const std::string& tensor) const;
  // A tensor of tensors.safetensors (float32 copy).
  Tensor tensor(const std::string& name) const;
  // Names of all tensors in the case file.
  std::vector<std::string> tensor_names() const;

  // Compares `actual` with golden tensor `name` using case.json's atol/rtol (or the given ones) and prints
  // "name  max_abs=…  max_rel=…  PASS|FAIL". The shapes must be equal (a transposed result of the same size fails).
  bool compare(const std::string& name, const Tensor& actual);
  bool compare(const std::string& name, const Tensor& actual, double atol, double rtol);
  // Exact comparison of integer sequences (token ids) or strings; prints one line.
  bool compare_ids(const std::string& label, const std::vector<int64_t>& actual, const std::vector<int64_t>& expected);
  bool compare_text(const std::string& label, const std::string& actual, const std::string& expected);
  // Records a failure that is not a tensor comparison (prints "label  FAIL: why").
  void failure(const std::string& label, const std::string& why);

  int compared() const { return compared_; }
  int failed() const { return failed_; }
  // The labels of the failed comparisons, in order (tests of the harness check which ones failed).
  const std::vector<std::string>& failed_labels() const { return failed_labels_; }

 private:
  fs::path dir_;
  std::string name_;
  nlohmann::json spec_;
  std::optional<SafeTensors> tensors_;
  int compared_ = 0, failed_ = 0;
  std::vector<std::string> failed_labels_;
  void count_failure(const std::string& label) {
    ++failed_;
    failed_labels_.push_back(label);
  }
};

using Runner = std::function<void(Case&)>;
// Registers a runner for every case whose name starts with `prefix` (the longest matching prefix wins).
struct Register {
  Register(const std::string& prefix, Runner run);
};
const Runner* find_runner(const std::string& case_name);

}  // namespace pigment::golden
