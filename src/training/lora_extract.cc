#include "training/lora_extract.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/file_hash.h"
#include "io/safetensors.h"
#include "models/model_family.h"
#include "training/lora.h"

// LAPACK (Debian liblapack-dev): the divide-and-conquer SVD, column-major.
extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
                        const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork,
                        int* info);

namespace pigment::training {

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string python_float(int v) { return std::to_string(v) + ".0"; }  // str(float(v)) for an integer v

}  // namespace

Svd svd(const std::vector<double>& a, int64_t m, int64_t n) {
  PIG_CHECK(m > 0 && n > 0 && int64_t(a.size()) == m * n, "svd: expected a ", m, "x", n, " matrix, got ", a.size(),
            " values");
  PIG_CHECK(m < (int64_t(1) << 30) && n < (int64_t(1) << 30) && m * n < (int64_t(1) << 31),
            "svd: the matrix is too large (", m, "x", n, ")");
  // A row-major m×n matrix is the column-major n×m matrix aᵀ. dgesdd gives aᵀ = U' S V'ᵀ, so a = V' S U'ᵀ: the
  // column-major U' (n×k) read row-major is U'ᵀ = vt [k, n], and the column-major V'ᵀ (k×m) read row-major is
  // V' = u [m, k].
  Svd r;
  r.m = m, r.n = n, r.k = std::min(m, n);
  std::vector<double> work_a = a;
  r.s.resize(size_t(r.k));
  r.vt.resize(size_t(r.k * n));
  r.u.resize(size_t(m * r.k));
  const int M = int(n), N = int(m), K = int(r.k);
  const char jobz = 'S';
  std::vector<int> iwork(size_t(8 * K));
  int info = 0, lwork = -1;
  double query = 0;
  dgesdd_(&jobz, &M, &N, work_a.data(), &M, r.s.data(), r.vt.data(), &M, r.u.data(), &K, &query, &lwork,
          iwork.data(), &info);
  PIG_CHECK(info == 0, "svd: LAPACK dgesdd workspace query failed (info ", info, ")");
  lwork = int(query);
  std::vector<double> work(size_t(std::max(lwork, 1)));
  dgesdd_(&jobz, &M, &N, work_a.data(), &M, r.s.data(), r.vt.data(), &M, r.u.data(), &K, work.data(), &lwork,
          iwork.data(), &info);
  PIG_CHECK(info == 0, "svd: LAPACK dgesdd did not converge on a ", m, "x", n, " matrix (info ", info, ")");
  return r;
}

double quantile(std::vector<double> v, double q) {
  PIG_CHECK(!v.empty(), "quantile of no values");
  PIG_CHECK(q >= 0 && q <= 1, "quantile: q must be in [0, 1], got ", q);
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + lo + 1, v.end());
  return a + (pos - double(lo)) * (b - a);
}

LowRankPair low_rank_pair(const Tensor& diff, int rank, double clamp_quantile) {
  PIG_CHECK(diff.ndim() == 2 || diff.ndim() == 4, "LoRA extraction: expected a 2-D or 4-D weight, got ",
            shape_str(diff.shape()));
  PIG_CHECK(rank > 0, "LoRA extraction: the rank must be positive, got ", rank);
  const int64_t out = diff.dim(0), in = diff.dim(1);
  const int64_t kh = diff.ndim() == 4 ? diff.dim(2) : 1, kw = diff.ndim() == 4 ? diff.dim(3) : 1;
  const int64_t cols = in * kh * kw;
  const int r = int(std::min<int64_t>({rank, in, out}));
  const Tensor f = diff.as_f32();
  std::vector<double> a(f.f32(), f.f32() + f.numel());
  const Svd d = svd(a, out, cols);
  // up = U[:, :r] diag(S[:r]), down = Vᵀ[:r, :]
  std::vector<double> up(size_t(out * r)), down(size_t(r * cols));
  for (int64_t i = 0; i < out; ++i)
    for (int j = 0; j < r; ++j) up[size_t(i * r + j)] = d.u[size_t(i * d.k + j)] * d.s[size_t(j)];
  std::copy(d.vt.begin(), d.vt.begin() + int64_t(r) * cols, down.begin());
  // Clamp both to ±(the quantile of their values together).
  std::vector<double> all;
  if (clamp_quantile < 1) {
    all = up;
    all.insert(all.end(), down.begin(), down.end());
  }
  // (1: no clamping; kohya's quantile 1 would still clamp the negative values below −max)
  const double hi = clamp_quantile >= 1 ? HUGE_VAL : quantile(std::move(all), clamp_quantile), lo = -hi;
  auto clamp = [&](double x) { return std::min(std::max(x, lo), hi); };  // torch.clamp (max wins if lo > hi)
  LowRankPair p;
  p.rank = r;
  p.up = diff.ndim() == 2 ? Tensor::empty({out, r}) : Tensor::empty({out, r, 1, 1});
  p.down = diff.ndim() == 2 ? Tensor::empty({r, in}) : Tensor::empty({r, in, kh, kw});
  for (size_t i = 0; i < up.size(); ++i) p.up.f32()[i] = float(clamp(up[i]));
  for (size_t i = 0; i < down.size(); ++i) p.down.f32()[i] = float(clamp(down[i]));
  return p;
}

std::vector<std::pair<std::string, int>> lora_extract_targets(const std::string& component, const TensorMap& weights,
                                                              const LoraExtractOptions& o) {
  std::vector<std::pair<std::string, int>> out;
  for (const auto& [key, w] : weights) {
    if (!ends_with(key, ".weight") || (w.ndim() != 2 && w.ndim() != 4)) continue;
    const std::string module = key.substr(0, key.size() - 7);
    const bool pointwise = w.ndim() == 2 || (w.dim(2) == 1 && w.dim(3) == 1);
    int rank = 0;
    if (component == "unet") {
      // kohya's UNET_TARGET_REPLACE_MODULE (Transformer2DModel), and with conv_dim also ResnetBlock2D,
      // Downsample2D and Upsample2D, in which linear and 1x1 layers get the rank and 3x3 ones the conv rank.
      if (contains(module, ".attentions.") && pointwise) rank = o.rank;
      const bool conv_block =
          contains(module, ".resnets.") || contains(module, ".downsamplers.") || contains(module, ".upsamplers.");
      if (o.conv_rank > 0 && conv_block) rank = pointwise ? o.rank : o.conv_rank;
    } else {
      // CLIPAttention and CLIPMLP: every linear layer of the encoder's attention and MLP.
      if (w.ndim() == 2 && contains(module, "encoder.layers.") &&
          (contains(module, ".self_attn.") || contains(module, ".mlp.")))
        rank = o.rank;
    }
    if (rank > 0) out.emplace_back(module, rank);
  }
  return out;
}

ExtractedLora extract_lora(const std::map<std::string, const TensorMap*>& base,
                           const std::map<std::string, const TensorMap*>& tuned, const LoraExtractOptions& o) {
  PIG_CHECK(o.rank > 0, "lora extract: --rank must be positive, got ", o.rank);
  PIG_CHECK(o.conv_rank >= 0, "lora extract: --conv-rank must not be negative, got ", o.conv_rank);
  PIG_CHECK(o.clamp_quantile > 0 && o.clamp_quantile <= 1, "lora extract: --clamp-quantile must be in (0, 1], got ",
            o.clamp_quantile);
  PIG_CHECK(o.min_diff >= 0, "lora extract: --min-diff must not be negative, got ", o.min_diff);
  PIG_CHECK(o.save_dtype == DType::F32 || o.save_dtype == DType::F16 || o.save_dtype == DType::BF16,
            "lora extract: the saved dtype must be f32, f16 or bf16");
  ExtractedLora out;
  struct Job {
    std::string component, module;
    int rank;
    Tensor diff;
  };
  auto diffs_of = [&](const std::string& component) {
    std::vector<Job> jobs;
    auto b = base.find(component), t = tuned.find(component);
    if (b == base.end() || t == tuned.end()) return jobs;
    for (const auto& [module, rank] : lora_extract_targets(component, *b->second, o)) {
      const std::string key = module + ".weight";
      auto tw = t->second->find(key);
      PIG_CHECK(tw != t->second->end(), "lora extract: the tuned model's ", component, " has no ", key,
                " (a model of another architecture?)");
      const Tensor bw = b->second->at(key).as_f32(), tw32 = tw->second.as_f32();
      PIG_CHECK(bw.shape() == tw32.shape(), "lora extract: ", component, ".", key, " is ", shape_str(bw.shape()),
                " in the base model but ", shape_str(tw32.shape()), " in the tuned one");
      Tensor d = Tensor::empty(bw.shape());
      for (int64_t i = 0; i < d.numel(); ++i) d.f32()[i] = tw32.f32()[i] - bw.f32()[i];
      jobs.push_back({component, module, rank, d});
    }
    return jobs;
  };
  std::vector<Job> jobs = diffs_of("text_encoder");
  for (const Job& j : jobs)
    for (int64_t i = 0; i < j.diff.numel(); ++i)
      out.text_encoder_max_diff = std::max(out.text_encoder_max_diff, double(std::fabs(j.diff.f32()[i])));
  out.text_encoder_different = out.text_encoder_max_diff > o.min_diff;
  if (!out.text_encoder_different) jobs.clear();
  std::vector<Job> unet = diffs_of("unet");
  PIG_CHECK(!unet.empty(), "lora extract: no UNet layer to extract (is the base a Stable Diffusion model?)");
  jobs.insert(jobs.end(), unet.begin(), unet.end());

  for (const Job& j : jobs) {
    const LowRankPair p = low_rank_pair(j.diff, j.rank, o.clamp_quantile);
    const std::string name = LoraNetwork::kohya_name(j.module, j.component == "unet" ? "lora_unet_" : "lora_te_");
    out.tensors[name + ".lora_up.weight"] = p.up.to(o.save_dtype);
    out.tensors[name + ".lora_down.weight"] = p.down.to(o.save_dtype);
    out.tensors[name + ".alpha"] = Tensor::full({}, float(p.rank));
    (j.component == "unet" ? out.unet_modules : out.text_encoder_modules)++;
  }
  out.metadata["ss_network_module"] = "networks.lora";
  out.metadata["ss_network_dim"] = std::to_string(o.rank);
  out.metadata["ss_network_alpha"] = python_float(o.rank);
  out.metadata["ss_network_args"] =
      o.conv_rank > 0 ? "{\"conv_dim\": \"" + std::to_string(o.conv_rank) + "\", \"conv_alpha\": \"" +
                            python_float(o.conv_rank) + "\"}"
                      : "{}";
  return out;
}

ExtractedLora extract_lora(const LoadedModel& base, const LoadedModel& tuned, const LoraExtractOptions& o) {
  PIG_CHECK(base.family() != Family::SDXL && tuned.family() != Family::SDXL,
            "lora extract: SDXL models are not supported yet (SD1.x and SD2.x are)");
  PIG_CHECK(base.family() == tuned.family(), "lora extract: the base model is ", family_name(base.family()),
            " but the tuned model is ", family_name(tuned.family()));
  std::map<std::string, const TensorMap*> b, t;
  for (const char* c : {"unet", "text_encoder"}) {
    PIG_CHECK(base.has(c) && tuned.has(c), "lora extract: both models need a ", c);
    b[c] = base.component(c).tensors.get();
    t[c] = tuned.component(c).tensors.get();
  }
  ExtractedLora out = extract_lora(b, t, o);
  const bool v2 = base.family() == Family::SD2;
  out.metadata["ss_v2"] = v2 ? "True" : "False";
  out.metadata["ss_base_model_version"] = v2 ? (base.prediction_type == "v_prediction" ? "sd_v2_v" : "sd_v2") : "sd_v1";
  out.metadata["ss_training_started_by"] = "pigment lora extract";
  return out;
}

void write_extracted_lora(const std::string& path, const ExtractedLora& lora) {
  NamedTensors t(lora.tensors.begin(), lora.tensors.end());
  std::map<std::string, std::string> meta = lora.metadata;
  // kohya's sshs_model_hash covers the data after the header, which the metadata does not change.
  write_safetensors(path, t, meta);
  meta["sshs_model_hash"] = addnet_hash(path);
  write_safetensors(path, t, meta);
}

}  // namespace pigment::training
