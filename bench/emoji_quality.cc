// emoji_quality: how well a text-to-image model draws emoji, measured on pigment's emoji data set without any
// downloaded network (docs/emoji_quality.md).
//
//   emoji_quality -m MODEL --data DIR --out OUT [--n-train 200] [--n-heldout 0] [--n-chinese 100] [--prompts FILE]
//                 [--steps 20] [--cfg 7] [--sampler "Euler a"] [--seed 0] [--select-seed 0] [--size 0]
//                 [--tokenizer PATH] [--model-config COMPONENT=PATH ...] [--vae FILE] [--lora FILE[:W] ...]
//                 [--embedding FILE ...] [--train-caption name|random] [--prompt-syntax] [--no-baseline]
//                 [--no-vae-oracle] [--references-only] [--custom-only]
//
// DIR is what `pigment dataset emoji --out DIR` wrote (metadata.jsonl with each emoji's file, names, captions and
// split). One picture is generated per prompt, at the data set's size, in these groups:
//   train    --n-train emoji of the training split, drawn at random (--select-seed), each prompted with its name
//            ("red apple"; --train-caption random: one of its caption lines instead)
//   heldout  the held-out emoji (all, or --n-heldout of them), prompted with their names: never trained on
//   chinese  --n-chinese training emoji with a CLDR Chinese name, prompted with it ("红苹果")
//   custom   --prompts FILE: lines "TARGET<TAB>PROMPT", TARGET an emoji's file stem ("1f34e") or the emoji itself
//            (for a textual-inversion token or a LoRA: "1f34e<TAB><my-apple>")
// (--custom-only: the custom group alone, no references: for comparing fine-tunings, bench/emoji_finetune.sh)
// and as the baseline, unconditional pictures (empty prompt, CFG 0: the model's own unconditional prediction),
// one per prompt position with the same seeds (picture i of every group uses seed + i), so each group's baseline
// is the first n unconditional pictures scored against that group's targets. The VAE oracle group (on unless
// --no-vae-oracle) is the train group's real pictures through the model's VAE (encode, decode): the best the
// model's latent space allows. Two references need no model: real_degraded (the train group's real pictures moved
// by 2 pixels and blurred: what a nearly exact drawing scores) and real_other (real pictures of other training emoji
// scored against the train group's targets: perfect pictures that ignore the prompt).
//
// Features (imaging/image_features.h): colour histogram of the non-white pixels, 8×8 colour thumbnail, 8×8
// foreground mask, quadrant gradient-orientation histograms and a few global shape/colour numbers — 362 numbers,
// standardised over all real emoji, each block weighted equally. Per group it reports
//   top-1 / top-5  the share of pictures whose nearest real emoji (Euclidean, among ALL emoji of the data set) is
//                  the prompted one / whose prompted emoji is among the 5 nearest (ties count against)
//   FD             Fréchet distance between the generated pictures' features and the prompted emoji's real ones
//   FD-all         the same against all real emoji
// Writes OUT/<group>/NNNN_<stem>.png, OUT/unconditional/NNNN.png and OUT/results.json; prints a table.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "imaging/frechet_distance.h"
#include "imaging/image_features.h"
#include "imaging/resize.h"
#include "io/image.h"
#include "models/lora.h"
#include "models/textual_inversion.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "core/threading.h"

using namespace pigment;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Emoji {
  std::string file, stem, emoji, name, zh_name, split;
  std::vector<std::string> captions;
};

struct Item {
  std::string prompt;
  size_t target = 0;  // index into the emoji list
};

struct Group {
  explicit Group(std::string n) : name(std::move(n)) {}
  std::string name;
  std::vector<Item> items;
  std::vector<FeatureVector> features;  // standardised, one per generated picture
  std::vector<Retrieval> retrieval;
};

struct Scores {
  int n = 0;
  double top1 = 0, top5 = 0, mean_rank = 0, median_rank = 0;
  std::optional<double> fd, fd_all;
};

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<Emoji> read_metadata(const std::string& dir) {
  const fs::path path = fs::path(dir) / "metadata.jsonl";
  std::ifstream f(path);
  PIG_CHECK(f, path.string(), ": cannot open (give the folder `pigment dataset emoji --out DIR` wrote)");
  std::vector<Emoji> out;
  std::string line;
  int line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
      Emoji e;
      e.file = j.at("file").get<std::string>();
      e.emoji = j.value("emoji", "");
      e.name = j.at("name").get<std::string>();
      e.zh_name = j.value("zh_name", "");
      e.split = j.at("split").get<std::string>();
      e.captions = j.value("captions", std::vector<std::string>{});
      if (e.captions.empty()) e.captions.push_back(e.name);
      e.stem = fs::path(e.file).stem().string();
      out.push_back(std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      fail(path.string(), ":", line_no, ": ", ex.what());
    }
  }
  PIG_CHECK(out.size() >= 2, path.string(), ": needs at least two emoji, found ", out.size());
  return out;
}

// Fisher–Yates with a fixed generator, so the same seed picks the same emoji with any standard library.
std::vector<size_t> shuffled(std::vector<size_t> v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng() % i)]);
  return v;
}

std::vector<size_t> pick(const std::vector<size_t>& pool, int n, uint64_t seed) {
  std::vector<size_t> s = shuffled(pool, seed);
  if (n > 0 && size_t(n) < s.size()) s.resize(size_t(n));
  return s;
}

Scores score(const std::vector<Retrieval>& r, const std::vector<FeatureVector>& generated,
             const std::vector<FeatureVector>& targets_real, const FeatureGaussian* all_real) {
  Scores s;
  s.n = int(r.size());
  if (r.empty()) return s;
  std::vector<int> ranks;
  for (const auto& x : r) {
    s.top1 += x.rank == 0;
    s.top5 += x.rank < 5;
    s.mean_rank += x.rank;
    ranks.push_back(x.rank);
  }
  s.top1 /= s.n, s.top5 /= s.n, s.mean_rank /= s.n;
  std::sort(ranks.begin(), ranks.end());
  s.median_rank = ranks.size() % 2 ? ranks[ranks.size() / 2]
                                   : 0.5 * (ranks[ranks.size() / 2 - 1] + ranks[ranks.size() / 2]);
  if (generated.size() >= 2) {
    const FeatureGaussian g = fit_gaussian(generated);
    if (targets_real.size() >= 2) s.fd = frechet_distance(fit_gaussian(targets_real), g);
    if (all_real) s.fd_all = frechet_distance(*all_real, g);
  }
  return s;
}

nlohmann::ordered_json to_json(const Scores& s) {
  nlohmann::ordered_json j;
  j["n"] = s.n;
  j["top1"] = s.top1;
  j["top5"] = s.top5;
  j["mean_rank"] = s.mean_rank;
  j["median_rank"] = s.median_rank;
  j["fd"] = s.fd ? nlohmann::ordered_json(*s.fd) : nlohmann::ordered_json();
  j["fd_all"] = s.fd_all ? nlohmann::ordered_json(*s.fd_all) : nlohmann::ordered_json();
  return j;
}

std::string fmt_fd(const std::optional<double>& v) {
  char buf[32];
  if (!v) return "-";
  std::snprintf(buf, sizeof buf, "%.2f", *v);
  return buf;
}

std::string numbered(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04zu", i);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  CLI::App app{"emoji_quality: retrieval and Fréchet distance of generated emoji, in colour/shape feature space"};
  std::string model, data, out, tokenizer, vae, prompts_file, sampler = "Euler a", schedule, train_caption = "name";
  std::vector<std::string> model_configs, loras, embeddings;
  int n_train = 200, n_heldout = 0, n_chinese = 100, steps = 20, size = 0;
  double cfg = 7.0;
  uint64_t seed = 0, select_seed = 0;
  bool prompt_syntax = false, no_baseline = false, no_vae_oracle = false, references_only = false, custom_only = false;
  app.add_option("-m,--model", model, "model file or diffusers folder (anything pigment generate loads)");
  app.add_option("--data", data, "the emoji data set folder (with metadata.jsonl)")->required();
  app.add_option("--out", out, "output folder: generated pictures and results.json")->required();
  app.add_option("--tokenizer", tokenizer, "tokenizer folder or file (as pigment generate --tokenizer)");
  app.add_option("--model-config", model_configs, "COMPONENT=PATH: a component's config.json (repeatable)");
  app.add_option("--vae", vae, "an external VAE file");
  app.add_option("--lora", loras, "FILE[:WEIGHT]: apply a LoRA (repeatable)");
  app.add_option("--embedding", embeddings, "a textual-inversion embedding, used by its file name (repeatable)");
  app.add_option("--n-train", n_train, "training emoji to prompt (0: all; default 200)");
  app.add_option("--n-heldout", n_heldout, "held-out emoji to prompt (0: all, the default)");
  app.add_option("--n-chinese", n_chinese, "training emoji to prompt by Chinese name (0: all; default 100)");
  app.add_option("--prompts", prompts_file, "extra group 'custom': lines TARGET<TAB>PROMPT");
  app.add_option("--train-caption", train_caption, "name (the emoji-test name, default) or random (a caption line)")
      ->check(CLI::IsMember({"name", "random"}));
  app.add_option("--steps", steps, "sampling steps (default 20)");
  app.add_option("--cfg", cfg, "classifier-free guidance scale (default 7)");
  app.add_option("--sampler", sampler, "sampler (A1111 label or scheduler name; default 'Euler a')");
  app.add_option("--schedule", schedule, "A1111 schedule type (default: the sampler's own)");
  app.add_option("--seed", seed, "seed of picture 0 of every group; picture i uses seed + i (default 0)");
  app.add_option("--select-seed", select_seed, "which emoji the groups draw (default 0)");
  app.add_option("--size", size, "picture side (default: the data set's)");
  app.add_flag("--prompt-syntax", prompt_syntax, "read A1111 prompt syntax (default: prompts are literal text)");
  app.add_flag("--no-baseline", no_baseline, "skip the unconditional pictures");
  app.add_flag("--no-vae-oracle", no_vae_oracle, "skip the VAE round trip of the real pictures");
  app.add_flag("--custom-only", custom_only, "only the --prompts group: no train/heldout/chinese groups, no references");
  app.add_flag("--references-only", references_only, "no model: only the real_degraded and real_other references");
  CLI11_PARSE(app, argc, argv);

  try {
    PIG_CHECK(references_only || !model.empty(), "give the model to measure with -m MODEL (or --references-only)");
    PIG_CHECK(!custom_only || !prompts_file.empty(), "--custom-only needs --prompts FILE");
    const auto t_start = Clock::now();
    const std::vector<Emoji> emoji = read_metadata(data);
    // Real pictures and their features; the standardisation is fitted on all of them.
    std::vector<Image> real;
    std::vector<FeatureVector> raw;
    for (const auto& e : emoji) {
      real.push_back(read_image((fs::path(data) / e.file).string()));
      raw.push_back(image_features(real.back()));
    }
    if (size == 0) size = real[0].width;
    const FeatureStandardizer standardizer = FeatureStandardizer::fit(raw);
    const std::vector<FeatureVector> gallery = standardizer.apply(raw);
    const FeatureGaussian all_real = fit_gaussian(gallery);
    std::fprintf(stderr, "read %zu real emoji (%dx%d) and their features in %.1f s\n", emoji.size(), real[0].width,
                 real[0].height, since(t_start));

    // The groups.
    std::vector<size_t> train_pool, heldout_pool, chinese_pool;
    for (size_t i = 0; i < emoji.size(); ++i) {
      if (emoji[i].split == "train") train_pool.push_back(i);
      if (emoji[i].split == "heldout") heldout_pool.push_back(i);
      if (emoji[i].split == "train" && !emoji[i].zh_name.empty()) chinese_pool.push_back(i);
    }
    std::vector<Group> groups;
    // The training emoji in a random order: the first n_train are prompted, the next n_train are "other" real
    // pictures for the real_other reference.
    const std::vector<size_t> train_order = pick(train_pool, 0, select_seed);
    const size_t n_train_used = n_train > 0 ? std::min(train_order.size(), size_t(n_train)) : train_order.size();
    {
      Group g("train");
      std::mt19937_64 caption_rng(select_seed ^ 0x5eedULL);
      for (size_t k = 0; k < n_train_used; ++k) {
        const size_t i = train_order[k];
        const auto& c = emoji[i].captions;
        std::string p = train_caption == "name" ? emoji[i].name : c[size_t(caption_rng() % c.size())];
        g.items.push_back({p, i});
      }
      groups.push_back(std::move(g));
    }
    {
      Group g("heldout");
      for (size_t i : n_heldout > 0 ? pick(heldout_pool, n_heldout, select_seed + 1) : heldout_pool)
        g.items.push_back({emoji[i].name, i});
      groups.push_back(std::move(g));
    }
    {
      Group g("chinese");
      for (size_t i : pick(chinese_pool, n_chinese, select_seed + 2)) g.items.push_back({emoji[i].zh_name, i});
      groups.push_back(std::move(g));
    }
    if (!prompts_file.empty()) {
      Group g("custom");
      std::ifstream f(prompts_file);
      PIG_CHECK(f, prompts_file, ": cannot open");
      std::string line;
      int line_no = 0;
      while (std::getline(f, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        const size_t tab = line.find('\t');
        PIG_CHECK(tab != std::string::npos, prompts_file, ":", line_no, ": expected TARGET<TAB>PROMPT");
        const std::string target = line.substr(0, tab);
        auto it = std::find_if(emoji.begin(), emoji.end(),
                               [&](const Emoji& e) { return e.stem == target || e.emoji == target; });
        PIG_CHECK(it != emoji.end(), prompts_file, ":", line_no, ": '", target, "' is no emoji of ", data);
        g.items.push_back({line.substr(tab + 1), size_t(it - emoji.begin())});
      }
      groups.push_back(std::move(g));
    }
    if (custom_only) groups.erase(groups.begin(), groups.end() - 1);  // the custom group alone
    // The train group, which the VAE oracle and the two references draw from (none with --custom-only).
    const Group* train_group = custom_only ? nullptr : &groups[0];
    size_t most = 0;
    for (const auto& g : groups) most = std::max(most, g.items.size());

    fs::create_directories(out);
    std::vector<FeatureVector> uncond;
    double gen_s = 0;
    int generated = 0;
    std::optional<Group> oracle;
    if (!references_only) {
      // The model.
      const auto t_load = Clock::now();
      PipelineOptions po;
      po.model = model;
      po.tokenizer = tokenizer;
      po.vae = vae;
      for (const auto& mc : model_configs) {
        const size_t eq = mc.find('=');
        PIG_CHECK(eq != std::string::npos && eq > 0, "--model-config expects COMPONENT=PATH, got '", mc, "'");
        po.load.config_paths[mc.substr(0, eq)] = mc.substr(eq + 1);
      }
      StableDiffusion sd = StableDiffusion::load(po);
      if (!loras.empty()) {
        std::vector<LoraChoice> choices;
        for (const auto& arg : loras) {
          const size_t colon = arg.rfind(':');
          std::string file = arg;
          float weight = 1;
          if (colon != std::string::npos && colon > 0 && !fs::exists(arg)) {
            file = arg.substr(0, colon);
            weight = std::stof(arg.substr(colon + 1));
          }
          choices.emplace_back(LoraFile::load(file), weight);
        }
        for (const auto& u : sd.set_loras(choices)) std::fprintf(stderr, "warning: LoRA key matches no layer: %s\n", u.c_str());
      }
      if (!embeddings.empty()) {
        std::vector<Embedding> es;
        for (const auto& e : embeddings) es.push_back(load_embedding(e));
        sd.set_embeddings(es);
      }
      std::fprintf(stderr, "loaded %s in %.1f s\n", model.c_str(), since(t_load));

      GenerateRequest base;
      base.width = base.height = size;
      base.steps = steps;
      base.cfg_scale = cfg;
      base.sampler = sampler;
      base.schedule = schedule;
      base.a1111_syntax = prompt_syntax;
      sd.check_request(base);

      const auto t_gen = Clock::now();
      auto generate = [&](const std::string& prompt, double guidance, uint64_t s, const fs::path& file) {
        GenerateRequest r = base;
        r.prompt = prompt;
        r.cfg_scale = guidance;
        r.seed = s;
        Image img = sd.generate(r).image;
        fs::create_directories(file.parent_path());
        write_png(file.string(), img, {{"prompt", prompt}});
        ++generated;
        return standardizer.apply(image_features(img));
      };
      for (auto& g : groups) {
        const auto t = Clock::now();
        for (size_t i = 0; i < g.items.size(); ++i) {
          const Item& it = g.items[i];
          g.features.push_back(generate(it.prompt, cfg, seed + i,
                                        fs::path(out) / g.name / (numbered(i) + "_" + emoji[it.target].stem + ".png")));
          g.retrieval.push_back(retrieve(g.features.back(), gallery, it.target));
        }
        std::fprintf(stderr, "%s: %zu pictures in %.1f s\n", g.name.c_str(), g.items.size(), since(t));
      }
      if (!no_baseline) {
        const auto t = Clock::now();
        for (size_t i = 0; i < most; ++i)
          uncond.push_back(generate("", 0.0, seed + i, fs::path(out) / "unconditional" / (numbered(i) + ".png")));
        std::fprintf(stderr, "unconditional: %zu pictures in %.1f s\n", most, since(t));
      }
      gen_s = since(t_gen);

      // The VAE oracle: the train group's real pictures, encoded and decoded.
      if (!no_vae_oracle && train_group && !train_group->items.empty()) {
        const auto t = Clock::now();
        oracle.emplace("vae_oracle");
        fs::create_directories(fs::path(out) / "vae_oracle");
        for (size_t i = 0; i < train_group->items.size(); ++i) {
          const size_t target = train_group->items[i].target;
          Image src = real[target];
          if (src.width != size || src.height != size)
            src = resize_image(to_rgb(src), size, size, ImageFilter::Bilinear);
          const Tensor latents = sd.vae().encode(image_to_tensor(src)).mode();
          const Tensor decoded = sd.vae().decode(latents);
          Image img = tensor_to_image(ops::add(ops::scale(decoded, 0.5f), Tensor::full({1}, 0.5f)));
          write_png((fs::path(out) / "vae_oracle" / (numbered(i) + "_" + emoji[target].stem + ".png")).string(), img);
          oracle->items.push_back({"", target});
          oracle->features.push_back(standardizer.apply(image_features(img)));
          oracle->retrieval.push_back(retrieve(oracle->features.back(), gallery, target));
        }
        std::fprintf(stderr, "vae oracle: %zu pictures in %.1f s\n", oracle->items.size(), since(t));
      }
    }

    // The metric's own ceiling: the train group's real pictures, moved by (2, 1) pixels (white comes in) and blurred
    // (bilinear down to half size and back): what a nearly perfect but not pixel-exact drawing scores.
    Group degraded("real_degraded");
    for (const auto& it : train_group ? train_group->items : std::vector<Item>{}) {
      const Image src = to_rgb(real[it.target]);
      Image moved = src;
      std::fill(moved.pixels.begin(), moved.pixels.end(), uint8_t(255));
      for (int y = 1; y < moved.height; ++y)
        for (int x = 2; x < moved.width; ++x)
          for (int c = 0; c < 3; ++c)
            moved.pixels[(size_t(y) * moved.width + x) * 3 + c] = src.at(x - 2, y - 1, c);
      const Image half = resize_image(moved, moved.width / 2, moved.height / 2, ImageFilter::Bilinear);
      const Image blurred = resize_image(half, moved.width, moved.height, ImageFilter::Bilinear);
      degraded.items.push_back({"", it.target});
      degraded.features.push_back(standardizer.apply(image_features(blurred)));
      degraded.retrieval.push_back(retrieve(degraded.features.back(), gallery, it.target));
    }

    // The other reference: real pictures of other training emoji than the prompted ones, scored against the
    // prompted ones. Perfect pictures that ignore the prompt: retrieval at chance, FD at its sampling floor.
    Group other("real_other");
    for (size_t k = 0; train_group && k < train_group->items.size() && n_train_used + k < train_order.size(); ++k) {
      const size_t i = train_order[n_train_used + k];
      other.items.push_back({"", train_group->items[k].target});
      other.features.push_back(gallery[i]);
      other.retrieval.push_back(retrieve(gallery[i], gallery, train_group->items[k].target));
    }

    // Scores.
    nlohmann::ordered_json j;
    j["model"] = model;
    j["data"] = data;
    j["emoji"] = emoji.size();
    j["settings"] = {{"size", size},           {"steps", steps},   {"cfg", cfg},
                     {"sampler", sampler},     {"schedule", schedule}, {"seed", seed},
                     {"select_seed", select_seed}, {"train_caption", train_caption},
                     {"prompt_syntax", prompt_syntax}, {"loras", loras}, {"embeddings", embeddings}};
    j["features"] = {{"dims", image_feature_dims()}};
    for (const auto& b : image_feature_blocks()) j["features"]["blocks"][b.name] = b.size;
    j["chance"] = {{"top1", 1.0 / double(emoji.size())}, {"top5", std::min(1.0, 5.0 / double(emoji.size()))}};
    j["seconds"] = {{"generation", gen_s}, {"pictures", generated}, {"total", since(t_start)}};

    std::printf("%-13s %7s %7s %7s %9s %9s | %-31s\n", "group", "prompts", "top-1", "top-5", "FD", "FD-all",
                "unconditional top-1 top-5 FD FD-all");
    auto print_row = [&](const std::string& name, const Scores& s, const Scores* b) {
      std::printf("%-13s %7d %6.1f%% %6.1f%% %9s %9s", name.c_str(), s.n, 100 * s.top1, 100 * s.top5,
                  fmt_fd(s.fd).c_str(), fmt_fd(s.fd_all).c_str());
      if (b)
        std::printf(" | %6.1f%% %6.1f%% %9s %9s", 100 * b->top1, 100 * b->top5, fmt_fd(b->fd).c_str(),
                    fmt_fd(b->fd_all).c_str());
      std::printf("\n");
    };
    for (const auto& g : groups) {
      if (g.features.empty()) continue;
      std::vector<FeatureVector> targets;
      for (const auto& it : g.items) targets.push_back(gallery[it.target]);
      const Scores s = score(g.retrieval, g.features, targets, &all_real);
      nlohmann::ordered_json gj = to_json(s);
      std::optional<Scores> b;
      std::vector<Retrieval> base_r;
      if (!uncond.empty()) {
        std::vector<FeatureVector> base_f(uncond.begin(), uncond.begin() + long(g.items.size()));
        for (size_t i = 0; i < g.items.size(); ++i) base_r.push_back(retrieve(base_f[i], gallery, g.items[i].target));
        b = score(base_r, base_f, targets, &all_real);
        gj["unconditional"] = to_json(*b);
        if (b->top5 > 0) gj["top5_over_unconditional"] = s.top5 / b->top5;
      }
      nlohmann::ordered_json items = nlohmann::ordered_json::array();
      for (size_t i = 0; i < g.items.size(); ++i) {
        nlohmann::ordered_json it;
        it["prompt"] = g.items[i].prompt;
        it["target"] = emoji[g.items[i].target].stem;
        it["name"] = emoji[g.items[i].target].name;
        it["rank"] = g.retrieval[i].rank;
        it["nearest"] = emoji[g.retrieval[i].nearest].stem;
        it["nearest_name"] = emoji[g.retrieval[i].nearest].name;
        if (!base_r.empty()) it["unconditional_rank"] = base_r[i].rank;
        items.push_back(it);
      }
      gj["items"] = items;
      j["groups"][g.name] = gj;
      print_row(g.name, s, b ? &*b : nullptr);
    }
    for (const Group* g : {oracle ? &*oracle : nullptr, &degraded, &other}) {
      if (!g || g->items.empty()) continue;
      std::vector<FeatureVector> targets;
      for (const auto& it : g->items) targets.push_back(gallery[it.target]);
      const Scores s = score(g->retrieval, g->features, targets, &all_real);
      j["groups"][g->name] = to_json(s);
      print_row(g->name, s, nullptr);
    }
    std::printf("chance: top-1 %.2f%%, top-5 %.2f%% (%zu emoji); %d pictures in %.1f s (%.2f s each)\n",
                100.0 / double(emoji.size()), 100.0 * std::min(1.0, 5.0 / double(emoji.size())), emoji.size(),
                generated, gen_s, generated ? gen_s / generated : 0.0);
    std::ofstream jf(fs::path(out) / "results.json");
    jf << j.dump(2) << "\n";
    PIG_CHECK(jf, out, "/results.json: write failed");
    std::printf("wrote %s\n", (fs::path(out) / "results.json").string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
