// pigment serve's engine: the loaded model, the FIFO job queue and its one worker thread, progress with live
// previews, interrupt / skip / timeout, and model switching between jobs.
#include <ctime>
#include <filesystem>

#include "default_model.h"
#include "io/file_hash.h"
#include "models/controlnet_loader.h"
#include "pipelines/generation_run.h"
#include "pipelines/memory_mode.h"
#include "serve.h"

namespace pigment::cli::serve {
namespace {

namespace fs = std::filesystem;

// Thrown from the progress callback to leave the sampling loop.
struct StopSampling {
  enum Why { Interrupt, Skip, Timeout } why;
};

std::string timestamp_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return buf;
}

bool is_model_path(const fs::path& p) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) return fs::exists(p / "model_index.json", ec);
  std::string ext = p.extension().string();
  return fs::is_regular_file(p, ec) && (ext == ".safetensors" || ext == ".ckpt");
}

}  // namespace

HttpError http_error(int status, const std::string& detail) { return HttpError(status, json{{"detail", detail}}); }

HttpError field_error(const std::string& field, const std::string& msg, const std::string& type) {
  return HttpError(422, json{{"detail", json::array({json{{"loc", json::array({"body", field})}, {"msg", msg},
                                                         {"type", type}}})}});
}

void Job::wait() {
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return finished; });
  if (error) std::rethrow_exception(error);
}

Engine::Engine(Config config) : config_(std::move(config)) {
  options_ = json{{"sd_model_checkpoint", ""},
                  {"sd_checkpoint_hash", nullptr},
                  {"CLIP_stop_at_last_layers", 1},
                  {"eta_noise_seed_delta", 0},
                  {"randn_source", "GPU"},
                  {"show_progress_every_n_steps", 10},
                  {"live_previews_enable", true},
                  {"show_progress_type", "Full"},
                  {"samples_format", "png"},
                  {"sd_vae", "Automatic"},
                  {"sd_lora", "None"},
                  {"emphasis", "Original"}};
}

Engine::~Engine() {
  shutdown();
}

void Engine::start() {
  if (config_.model.empty()) config_.model = default_model_path();
  load(config_.model);
  thread_ = std::thread([this] { worker(); });
}

void Engine::load(const std::string& path) {
  PipelineOptions po = config_.pipeline;
  po.model = path;
  sd_.reset();  // the old model's memory goes before the new one comes
  memory_phase_boundary();
  controlnets_.clear();
  sd_ = std::make_unique<StableDiffusion>(StableDiffusion::load(po));
  std::string hash;
  {
    std::lock_guard lock(m_);
    if (auto it = hashes_.find(path); it != hashes_.end()) hash = it->second;
  }
  if (hash.empty()) hash = model_short_hash(path);
  ModelEntry e;
  e.filename = fs::absolute(path).string();
  e.model_name = fs::path(path).filename().replace_extension().string();
  e.hash = hash;
  std::string rel = fs::path(path).filename().string();
  if (!config_.model_dir.empty()) {
    std::error_code ec;
    fs::path r = fs::relative(fs::absolute(path), fs::absolute(config_.model_dir), ec);
    if (!ec && !r.empty() && r.native().rfind("..", 0) != 0) rel = r.string();
  }
  e.title = hash.empty() ? rel : rel + " [" + hash + "]";
  std::lock_guard lock(m_);
  hashes_[e.filename] = hash;
  current_ = e;
  options_["sd_model_checkpoint"] = e.title;
  options_["sd_checkpoint_hash"] = hash.empty() ? json(nullptr) : json(hash);
}

std::vector<ModelEntry> Engine::models() {
  std::vector<std::string> paths;
  {
    std::lock_guard lock(m_);
    paths.push_back(current_.filename);
  }
  if (!config_.model.empty()) paths.push_back(fs::absolute(config_.model).string());
  std::error_code ec;
  if (!config_.model_dir.empty() && fs::is_directory(config_.model_dir, ec)) {
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(config_.model_dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (is_model_path(it->path())) {
        found.push_back(fs::absolute(it->path()).string());
        if (it->is_directory()) it.disable_recursion_pending();
      }
    }
    std::sort(found.begin(), found.end());
    paths.insert(paths.end(), found.begin(), found.end());
  }
  std::vector<ModelEntry> out;
  std::lock_guard lock(m_);
  for (const auto& p : paths) {
    if (std::any_of(out.begin(), out.end(), [&](const ModelEntry& e) { return e.filename == p; })) continue;
    ModelEntry e;
    e.filename = p;
    e.model_name = fs::path(p).filename().replace_extension().string();
    std::string rel = fs::path(p).filename().string();
    if (!config_.model_dir.empty()) {
      fs::path r = fs::relative(p, fs::absolute(config_.model_dir), ec);
      if (!ec && !r.empty() && r.native().rfind("..", 0) != 0) rel = r.string();
    }
    if (auto it = hashes_.find(p); it != hashes_.end()) e.hash = it->second;
    e.title = e.hash.empty() ? rel : rel + " [" + e.hash + "]";
    out.push_back(e);
  }
  return out;
}

ModelEntry Engine::current_model() {
  std::lock_guard lock(m_);
  return current_;
}

std::optional<ModelEntry> Engine::find_model(const std::string& name) {
  auto all = models();
  // A1111's order: the title, then the name, then the file name, then the hash.
  for (const auto& e : all)
    if (e.title == name) return e;
  for (const auto& e : all)
    if (e.model_name == name) return e;
  for (const auto& e : all)
    if (fs::path(e.filename).filename().string() == name || e.filename == name) return e;
  for (const auto& e : all) {
    std::string title_name = e.title.substr(0, e.title.find(" ["));
    if (title_name == name) return e;
  }
  for (const auto& e : all)
    if (!e.hash.empty() && e.hash == name) return e;
  return std::nullopt;
}

void Engine::switch_model(const std::string& name) {
  auto e = find_model(name);
  if (!e) throw field_error("sd_model_checkpoint", "no model '" + name + "' (GET /sdapi/v1/sd-models lists them)");
  if (e->filename == current_model().filename && sd_) return;
  const std::string previous = current_model().filename;
  try {
    load(e->filename);
  } catch (const std::exception& err) {
    if (!config_.quiet) std::fprintf(stderr, "error: loading %s: %s\n", e->filename.c_str(), err.what());
    load(previous);
    throw http_error(422, std::string("sd_model_checkpoint: cannot load '") + name + "': " + err.what());
  }
  if (!config_.quiet) std::fprintf(stderr, "loaded %s\n", e->filename.c_str());
}

json Engine::options() {
  std::lock_guard lock(m_);
  return options_;
}

void Engine::set_options(const json& body) {
  if (!body.is_object()) throw http_error(400, "options: the body must be a JSON object");
  json checked = json::object();
  for (const auto& [k, v] : body.items()) {
    if (k == "CLIP_stop_at_last_layers") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 12)
        throw field_error(k, "must be an integer between 1 and 12");
    } else if (k == "eta_noise_seed_delta") {
      if (!v.is_number_integer()) throw field_error(k, "must be an integer");
      if (v.get<int64_t>() != 0) throw field_error(k, "pigment supports only 0 (no seed offset for ancestral noise)");
    } else if (k == "randn_source") {
      if (!v.is_string() || (v != "GPU" && v != "CPU")) throw field_error(k, "must be GPU or CPU");
    } else if (k == "show_progress_every_n_steps") {
      if (!v.is_number_integer()) throw field_error(k, "must be an integer");
    } else if (k == "live_previews_enable") {
      if (!v.is_boolean()) throw field_error(k, "must be true or false");
    } else if (k == "sd_model_checkpoint") {
      if (!v.is_string()) throw field_error(k, "must be a string");
      if (!find_model(v.get<std::string>()))
        throw field_error(k, "no model '" + v.get<std::string>() + "' (GET /sdapi/v1/sd-models lists them)");
    }
    checked[k] = v;
  }
  if (checked.contains("sd_model_checkpoint")) {
    const std::string name = checked["sd_model_checkpoint"];
    auto job = submit("options", [this, name](Job&) { switch_model(name); });
    job->wait();
    checked.erase("sd_model_checkpoint");
  }
  std::lock_guard lock(m_);
  for (const auto& [k, v] : checked.items()) options_[k] = v;
}

std::shared_ptr<Job> Engine::submit(const std::string& kind, std::function<void(Job&)> work) {
  auto job = std::make_shared<Job>();
  job->kind = kind;
  job->work = std::move(work);
  if (config_.timeout_s > 0)
    job->deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(config_.timeout_s));
  {
    std::lock_guard lock(m_);
    if (stopping_) throw http_error(503, "the server is shutting down");
    if (int(queue_.size()) >= config_.max_queue)
      throw http_error(503, "the queue is full (" + std::to_string(config_.max_queue) + " jobs wait); try again later");
    queue_.push_back(job);
  }
  cv_.notify_all();
  return job;
}

int Engine::queued() {
  std::lock_guard lock(m_);
  return int(queue_.size());
}

void Engine::interrupt() {
  std::lock_guard lock(m_);
  if (running_) running_->interrupted = true;
  progress_.interrupted = running_ != nullptr;
}

void Engine::skip() {
  std::lock_guard lock(m_);
  if (running_) running_->skipped = true;
  progress_.skipped = running_ != nullptr;
}

void Engine::shutdown() {
  std::deque<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard lock(m_);
    stopping_ = true;
    dropped.swap(queue_);
    if (running_) running_->interrupted = true;
  }
  cv_.notify_all();
  for (auto& job : dropped) {
    std::lock_guard lock(job->m);
    job->error = std::make_exception_ptr(http_error(503, "the server is shutting down"));
    job->finished = true;
    job->cv.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Engine::worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      job = queue_.front();
      queue_.pop_front();
      running_ = job;
      progress_ = ProgressState{};
      progress_.job = job->kind;
      progress_.job_timestamp = timestamp_now();
      progress_.started = std::chrono::steady_clock::now();
      progress_.job_count = 1;
    }
    try {
      if (std::chrono::steady_clock::now() >= job->deadline)
        throw http_error(504, "the job waited longer than the server's --timeout of " +
                                  std::to_string(int(config_.timeout_s)) + " s");
      job->work(*job);
    } catch (...) {
      job->error = std::current_exception();
    }
    {
      std::lock_guard lock(m_);
      running_.reset();
      progress_ = ProgressState{};
    }
    std::lock_guard lock(job->m);
    job->finished = true;
    job->cv.notify_all();
  }
}

std::vector<std::pair<std::string, std::string>> controlnet_models(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const fs::path& p = e.path();
    std::string ext = p.extension().string();
    if ((e.is_regular_file(ec) && (ext == ".safetensors" || ext == ".pth" || ext == ".ckpt" || ext == ".bin")) ||
        (e.is_directory(ec) && fs::exists(p / "config.json", ec)))
      out.emplace_back(e.is_directory(ec) ? p.filename().string() : p.stem().string(), p.string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ControlNet units: loaded once per model, the control map fitted to the output size; their infotext entries go to
// the recipe.
std::vector<ControlUnit> Engine::control_units(const GenerationRequest& g, const std::vector<ControlRequest>& control,
                                               RecipeContext& recipe) {
  std::vector<ControlUnit> units;
  for (size_t i = 0; i < control.size(); ++i) {
    const ControlRequest& c = control[i];
    auto& net = controlnets_[c.model_path];
    try {
      if (!net)
        net = std::make_shared<const ControlNet>(load_controlnet(c.model_path, sd_->base_component("unet").config));
      ControlUnit u;
      u.net = net;
      u.image = prepare_control_image(c.image, g.gen.width, g.gen.height, c.module, c.resize);
      u.strength = c.weight;
      u.start = c.start;
      u.end = c.end;
      u.guess_mode = c.control_mode == 2;
      units.push_back(std::move(u));
    } catch (const Error& e) {
      controlnets_.erase(c.model_path);
      throw http_error(422, std::string("alwayson_scripts.controlnet: ") + e.what());
    }
    ControlRecipe cr;
    cr.module = c.module.name;
    cr.model = c.model_name;
    cr.weight = c.weight;
    cr.threshold_a = c.module.low;
    cr.threshold_b = c.module.high;
    cr.start = c.start;
    cr.end = c.end;
    cr.resize = c.resize;
    cr.control_mode = c.control_mode;
    recipe.extra.emplace_back("ControlNet " + std::to_string(i), control_infotext(cr));
  }
  return units;
}

GenerationOutput Engine::generate(const GenerationRequest& g, Job& job, const std::vector<ControlRequest>& control) {
  GenerationOutput out;
  Adapters adapters;
  try {
    adapters = load_adapters(g, config_.folders);
  } catch (const Error& e) {
    throw http_error(422, e.what());
  }
  const ModelEntry model = current_model();
  RecipeContext recipe;
  recipe.model_path = model.filename;
  recipe.model_hash = model.hash;
  recipe.vae_path = config_.pipeline.vae;
  std::vector<ControlUnit> units = control_units(g, control, recipe);
  out.model_name = model.model_name;
  out.model_hash = model.hash;

  // The library path `pigment generate` runs too (pipelines/generation_run.h): adapters set on the model (replacing
  // the previous request's), model-dependent checks (sizes in latent units, the mask) before any work, the seed.
  PreparedGeneration prepared;
  try {
    prepared = prepare_generation(*sd_, g, adapters, std::move(units), std::move(recipe));
  } catch (const Error& e) {
    throw http_error(422, e.what());
  }
  out.warnings = prepared.warnings;
  int every = 10;
  bool previews = true;
  {
    std::lock_guard lock(m_);
    every = options_.value("show_progress_every_n_steps", 10);
    previews = options_.value("live_previews_enable", true);
    progress_.job_count = g.batch_count;
    out.job_timestamp = progress_.job_timestamp;
  }
  for (int b = 0; b < g.batch_count; ++b) {
    const GenerateRequest r = prepared.image_request(b);
    job.skipped = false;
    {
      std::lock_guard lock(m_);
      progress_.job_no = b;
      progress_.sampling_step = 0;
      progress_.skipped = false;
    }
    Tensor last;  // the latents after the latest step, for previews and interrupted runs
    auto probe = [&](const std::string& name, const Tensor& t) {
      if (name.find("latents.step") != std::string::npos) last = t;
    };
    auto progress = [&](const StepProgress& p) {
      {
        std::lock_guard lock(m_);
        progress_.sampling_step = p.step;
        progress_.sampling_steps = p.total;
        progress_.pass = p.pass;
        progress_.passes = p.passes;
      }
      if (job.interrupted) throw StopSampling{StopSampling::Interrupt};
      if (job.skipped) throw StopSampling{StopSampling::Skip};
      if (std::chrono::steady_clock::now() >= job.deadline) throw StopSampling{StopSampling::Timeout};
      if (previews && every > 0 && p.step % every == 0 && p.step < p.total && last.defined()) {
        Image preview = sd_->decode_latents(last);
        auto png = encode_png(preview);
        std::string b64 = base64_encode(std::string(png.begin(), png.end()));
        std::lock_guard lock(m_);
        progress_.current_image = std::move(b64);
      }
    };
    Image image;
    bool stop = false;
    try {
      image = sd_->generate(r, progress, probe).image;
    } catch (const StopSampling& s) {
      if (s.why == StopSampling::Timeout)
        throw http_error(504, "the job ran longer than the server's --timeout of " +
                                  std::to_string(int(config_.timeout_s)) + " s");
      // A1111 keeps what an interrupted or skipped image has reached: the current latents, decoded.
      if (last.defined()) image = sd_->decode_latents(last);
      stop = s.why == StopSampling::Interrupt;
    } catch (const Error& e) {
      throw http_error(422, e.what());
    }
    if (image.width > 0) {
      std::string text = format_infotext(prepared.infotext(b));
      auto png = encode_png(image, {{"parameters", text}});
      out.images.push_back({base64_encode(std::string(png.begin(), png.end())), text, r.seed});
    }
    if (stop) break;
  }
  return out;
}

json Engine::progress(bool skip_current_image) {
  std::lock_guard lock(m_);
  const ProgressState& p = progress_;
  double fraction = 0, eta = 0;
  if (!p.job.empty() && p.job_count > 0 && p.sampling_steps > 0) {
    double in_image = (double(p.pass - 1) + double(p.sampling_step) / p.sampling_steps) / std::max(p.passes, 1);
    fraction = std::min(1.0, (p.job_no + in_image) / p.job_count);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - p.started).count();
    if (fraction > 0) eta = elapsed / fraction - elapsed;
  }
  json state = {{"skipped", p.skipped},
                {"interrupted", p.interrupted},
                {"stopping_generation", false},
                {"job", p.job},
                {"job_count", p.job.empty() ? 0 : p.job_count},
                {"job_timestamp", p.job_timestamp.empty() ? timestamp_now() : p.job_timestamp},
                {"job_no", p.job_no},
                {"sampling_step", p.sampling_step},
                {"sampling_steps", p.sampling_steps},
                {"queued", int(queue_.size())}};
  json current = (!skip_current_image && !p.current_image.empty()) ? json(p.current_image) : json(nullptr);
  return json{{"progress", fraction}, {"eta_relative", eta}, {"state", state}, {"current_image", current},
              {"textinfo", nullptr}};
}

}  // namespace pigment::cli::serve
