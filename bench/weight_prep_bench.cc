// Where the per-call weight preparation of the oneDNN products goes (issue 7): for a few SD1.5 weights read from a
// memory-mapped f16 checkpoint, the product with its weight kept prepared vs prepared per call (file pages dropped
// after each use, as the default mode does), and the parts of a preparation: faulting the file pages back in and
// converting to the blocked f32 layout. Wall and process CPU time, median of REPS, minor faults per call. Where the
// CPU has a fast bf16 path, the same under --precision fast: bf16 copy kept vs converted per call (budget 1 byte).
//   [PIGMENT_PORTABLE_WEIGHT_PREP=1] weight_prep_bench MODEL.safetensors [REPS=7] [FILTER]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/file_pages.h"
#include "io/safetensors.h"
#include "ops/fast_products.h"
#include "ops/onednn.h"
#include "ops/precision.h"
#include "ops/ops.h"
#include "ops/profile.h"
#include "core/threading.h"

using namespace pigment;
using Clock = std::chrono::steady_clock;

namespace {
struct Sample {
  double wall, cpu, minflt, min_wall, min_cpu;
};
long minflt() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}
Sample measure(int reps, const std::function<void()>& f) {
  f();  // warm-up
  std::vector<double> w, c, m;
  for (int i = 0; i < reps; ++i) {
    const long f0 = minflt();
    const double c0 = ops::profile::process_cpu_seconds();
    const auto t0 = Clock::now();
    f();
    w.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    c.push_back(ops::profile::process_cpu_seconds() - c0);
    m.push_back(double(minflt() - f0));
  }
  auto med = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {med(w), med(c), med(m), *std::min_element(w.begin(), w.end()), *std::min_element(c.begin(), c.end())};
}
void report(const std::string& what, const Sample& s) {
  std::printf("  %-44s %8.2f ms wall %8.2f ms cpu %8.0f minflt (best %.2f ms wall, %.2f ms cpu)\n", what.c_str(),
              s.wall * 1e3, s.cpu * 1e3, s.minflt, s.min_wall * 1e3, s.min_cpu * 1e3);
}
Tensor random_tensor(Shape shape) {
  Tensor t = Tensor::empty(shape);
  float* p = t.f32();
  uint32_t s = 12345;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = float(int(s >> 9) - (1 << 22)) / float(1 << 22);
  }
  return t;
}
volatile uint64_t g_sink;
void touch(const Tensor& w) {
  const auto* p = static_cast<const unsigned char*>(w.raw());
  uint64_t s = 0;
  for (size_t i = 0; i < w.nbytes(); i += 4096) s += p[i];
  g_sink = s;
}
// Under Precision::Fast: the product with its bf16 weight kept, and converted per call.
void fast_kept_vs_per_call(const std::function<void()>& product, int reps, double gflop) {
  if (!ops::fast_precision_available()) return;
  ops::ScopedPrecision p(ops::Precision::Fast);
  const size_t was = ops::fast::bf16_weight_budget();
  ops::fast::set_bf16_weight_budget(size_t(16) << 30);
  ops::fast::new_weight_phase();
  product();  // first use: per call; kept from the second
  Sample a = measure(reps, product);
  report("fast, bf16 kept (" + std::to_string(int(gflop / a.wall)) + " GFLOP/s)", a);
  ops::fast::set_bf16_weight_budget(1);
  Sample b = measure(reps, product);
  report("fast, bf16 per call (" + std::to_string(int(gflop / b.wall)) + " GFLOP/s)", b);
  ops::fast::set_bf16_weight_budget(was);
}
}  // namespace

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors [REPS] [FILTER]\n", argv[0]);
    return 2;
  }
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::string filter = argc > 3 ? argv[3] : "";
  SafeTensors st = SafeTensors::open(argv[1]);
  const std::string u = "model.diffusion_model.";
  ops::set_release_weight_pages(true);
  ops::WeightCache keep(size_t(16) << 30), none(1);

  struct LinearCase {
    std::string name;
    int64_t M;
  };
  for (const LinearCase& lc : {LinearCase{"middle_block.1.transformer_blocks.0.ff.net.0.proj.weight", 512},
                               LinearCase{"input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", 8192},
                               LinearCase{"middle_block.1.transformer_blocks.0.ff.net.2.weight", 512},
                               LinearCase{"middle_block.1.transformer_blocks.0.attn2.to_k.weight", 154},
                               LinearCase{"input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight", 8192},
                               LinearCase{"input_blocks.7.1.transformer_blocks.0.attn1.to_q.weight", 512},
                               LinearCase{"middle_block.1.transformer_blocks.0.attn1.to_q.weight", 128},
                               LinearCase{"middle_block.0.emb_layers.1.weight", 2}}) {
    const Tensor w = st.get(u + lc.name);
    const std::string label = "linear " + std::to_string(w.dim(1)) + "->" + std::to_string(w.dim(0)) + " M" +
                              std::to_string(lc.M);
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    std::printf("%s (%s)\n", label.c_str(), lc.name.c_str());
    const Tensor x = random_tensor({lc.M, w.dim(1)});
    const double gflop = 2.0 * double(lc.M) * double(w.numel()) * 1e-9;
    ops::LinearOptions ok, on;
    ok.cache = &keep;
    on.cache = &none;
    Sample a = measure(reps, [&] { ops::linear(x, w, nullptr, ok); });
    report("kept (" + std::to_string(int(gflop / a.wall)) + " GFLOP/s)", a);
    Sample b = measure(reps, [&] { ops::linear(x, w, nullptr, on); });
    report("per call (" + std::to_string(int(gflop / b.wall)) + " GFLOP/s)", b);
    fast_kept_vs_per_call([&] { ops::linear(x, w, nullptr, ok); }, reps, gflop);
    report("fault pages in (touch after drop)", measure(reps, [&] {
             drop_file_pages(w.raw(), w.nbytes());
             touch(w);
           }));
    report("map pages in (MADV_POPULATE_READ after drop)", measure(reps, [&] {
             drop_file_pages(w.raw(), w.nbytes());
             populate_file_pages(w.raw(), w.nbytes());
           }));
    const dnnl::memory::desc plain({w.dim(1), w.dim(0)}, dnnl::memory::data_type::f32,
                                   dnnl::memory::format_tag::ba);
    // The layout the linear primitive wants.
    const dnnl::memory::desc any({w.dim(1), w.dim(0)}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
    const dnnl::memory::desc src({lc.M, w.dim(1)}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
    const dnnl::memory::desc dst({lc.M, w.dim(0)}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, any, dst), attr, ops::onednn::engine());
    std::vector<float> out(pd.weights_desc().get_size() / 4);
    touch(w);
    report("convert (pages present, warm dst)",
           measure(reps, [&] { ops::onednn::convert_to_blocked(w, plain, pd.weights_desc(), out.data()); }));
    report("convert (pages dropped, warm dst)", measure(reps, [&] {
             drop_file_pages(w.raw(), w.nbytes());
             ops::onednn::convert_to_blocked(w, plain, pd.weights_desc(), out.data());
           }));
    report("convert (pages dropped, mapped by MADV_POPULATE_READ)", measure(reps, [&] {
             drop_file_pages(w.raw(), w.nbytes());
             populate_file_pages(w.raw(), w.nbytes());
             ops::onednn::convert_to_blocked(w, plain, pd.weights_desc(), out.data());
           }));
  }

  struct ConvCase {
    std::string name;
    int64_t N, H;
  };
  for (const ConvCase& cc : {ConvCase{"middle_block.0.in_layers.2.weight", 2, 8},
                             ConvCase{"output_blocks.3.0.in_layers.2.weight", 2, 16},
                             ConvCase{"input_blocks.1.0.in_layers.2.weight", 2, 64}}) {
    if (!st.contains(u + cc.name)) continue;
    const Tensor w = st.get(u + cc.name);
    const std::string label = "conv2d 3x3 " + std::to_string(w.dim(1)) + "->" + std::to_string(w.dim(0)) + " @" +
                              std::to_string(cc.H) + " N" + std::to_string(cc.N);
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    std::printf("%s (%s)\n", label.c_str(), cc.name.c_str());
    const Tensor x = random_tensor({cc.N, w.dim(1), cc.H, cc.H});
    const double gflop = 2.0 * double(cc.N * cc.H * cc.H) * double(w.numel()) * 1e-9;
    ops::Conv2dOptions ok, on;
    ok.cache = &keep;
    on.cache = &none;
    Sample a = measure(reps, [&] { ops::conv2d(x, w, nullptr, ops::Conv2dParams::same(1), ok); });
    report("kept (" + std::to_string(int(gflop / a.wall)) + " GFLOP/s)", a);
    Sample b = measure(reps, [&] { ops::conv2d(x, w, nullptr, ops::Conv2dParams::same(1), on); });
    report("per call (" + std::to_string(int(gflop / b.wall)) + " GFLOP/s)", b);
    fast_kept_vs_per_call([&] { ops::conv2d(x, w, nullptr, ops::Conv2dParams::same(1), ok); }, reps, gflop);
    report("fault pages in (touch after drop)", measure(reps, [&] {
             drop_file_pages(w.raw(), w.nbytes());
             touch(w);
           }));
    report("map pages in (MADV_POPULATE_READ after drop)", measure(reps, [&] {
             drop_file_pages(w.raw(), w.nbytes());
             populate_file_pages(w.raw(), w.nbytes());
           }));
    using dnnl::memory;
    const bool wino = cc.H >= 32;
    const int64_t n1 = wino ? 1 : cc.N, O = w.dim(0), C = w.dim(1);
    const memory::desc x_any({n1, C, cc.H, cc.H}, memory::data_type::f32, memory::format_tag::any),
        w_any({O, C, 3, 3}, memory::data_type::f32, memory::format_tag::any),
        y_any({n1, O, cc.H, cc.H}, memory::data_type::f32, memory::format_tag::any),
        plain({O, C, 3, 3}, memory::data_type::f32, memory::format_tag::oihw);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                        wino ? dnnl::algorithm::convolution_winograd
                                             : dnnl::algorithm::convolution_direct,
                                        x_any, w_any, y_any, {1, 1}, {1, 1}, {1, 1}),
        attr, ops::onednn::engine());
    std::vector<float> out(pd.weights_desc().get_size() / 4);
    touch(w);
    report(std::string("convert ") + (wino ? "winograd " : "") + std::to_string(out.size() * 4 >> 20) + " MiB",
           measure(reps, [&] { ops::onednn::convert_to_blocked(w, plain, pd.weights_desc(), out.data()); }));
  }
  return 0;
}
