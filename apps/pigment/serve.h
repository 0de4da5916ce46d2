// pigment serve: the pieces of the HTTP server. The engine (serve_engine.cc) owns the loaded model and runs one job
// at a time from a FIFO queue on its own thread; the routes (serve_routes.cc) speak AUTOMATIC1111's /sdapi/v1 and
// OpenAI's images API over cpp-httplib and turn requests into GenerationRequests (pipelines/generation_request.h).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "imaging/control_preprocess.h"
#include "models/controlnet.h"
#include "pipelines/generation_request.h"
#include "pipelines/stable_diffusion.h"

namespace pigment::cli::serve {

using json = nlohmann::json;

struct Config {
  std::string model;  // "" = pigment's own default model
  std::string host = "127.0.0.1";
  int port = 7860;  // 0 = any free port (printed)
  std::string model_dir, control_net_dir, web_dir;
  AdapterFolders folders;
  std::vector<std::pair<std::string, std::string>> auth;  // user, password
  std::vector<std::string> cors_origins;
  int max_queue = 16;  // jobs waiting (the running one not counted)
  RequestLimits limits{2048ll * 2048, 150, 100};
  double timeout_s = 0;                 // 0 = none: a job waits and runs as long as it takes
  size_t max_body = 64ull << 20;        // bytes
  PipelineOptions pipeline;             // tokenizer, VAE, model configs, memory, precision (model set per load)
  std::string lora_apply = "merge";
  bool quiet = false;
};

// An answer other than 200: the status and its JSON body.
struct HttpError : std::exception {
  int status;
  json body;
  HttpError(int s, json b) : status(s), body(std::move(b)) {}
  const char* what() const noexcept override { return "http error"; }
};
// {"detail": "…"}, the FastAPI form of a one-line reason.
HttpError http_error(int status, const std::string& detail);
// 422 {"detail": [{"loc": ["body", field], "msg": …, "type": …}]}, as FastAPI answers a field that does not validate.
HttpError field_error(const std::string& field, const std::string& msg, const std::string& type = "value_error");

// One queued piece of work: a generation, or a model switch (which must not overlap one).
struct Job {
  std::string kind;  // "txt2img", "img2img", "openai", "options"
  std::function<void(Job&)> work;
  std::atomic<bool> interrupted{false}, skipped{false};
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::exception_ptr error;
  bool finished = false;
  std::mutex m;
  std::condition_variable cv;
  void wait();  // until the worker is done with it; rethrows its error
};

// What /sdapi/v1/progress reports, guarded by the engine's mutex.
struct ProgressState {
  std::string job;  // "" when idle
  std::string job_timestamp;
  int job_count = 0, job_no = 0;
  int sampling_step = 0, sampling_steps = 0, pass = 1, passes = 1;
  std::chrono::steady_clock::time_point started{};
  std::string current_image;  // base64 PNG of the latest preview, "" = none yet
  bool interrupted = false, skipped = false;
};

// A model the server can load: the -m model and the files / diffusers folders of --model-dir.
struct ModelEntry {
  std::string title, model_name, filename, hash;  // hash: A1111's 10-digit short hash, "" until known
};

// One unit of the ControlNet extension's alwayson_scripts.controlnet.args.
struct ControlRequest {
  std::string model_path, model_name;
  Image image;
  ControlPreprocess module;
  ControlResize resize = ControlResize::CropAndResize;
  double weight = 1, start = 0, end = 1;
  int control_mode = 0;  // 0 Balanced, 1 My prompt is more important, 2 ControlNet is more important (guess mode)
};
// ControlNet models of --control-net-dir: files (.safetensors, .pth, .ckpt, .bin) and diffusers folders, by name.
std::vector<std::pair<std::string, std::string>> controlnet_models(const std::string& dir);

struct Image64 {
  std::string png_base64, infotext;
  uint64_t seed = 0;
};

struct GenerationOutput {
  std::vector<Image64> images;
  std::string model_name, model_hash;
  std::string job_timestamp;
  std::vector<std::string> warnings;
};

class Engine {
 public:
  explicit Engine(Config config);
  ~Engine();
  // Loads the configured model and starts the worker thread.
  void start();

  // Queues a job; throws HttpError 503 when the queue is full or the server is stopping.
  std::shared_ptr<Job> submit(const std::string& kind, std::function<void(Job&)> work);
  // Answers queued jobs with 503, interrupts the running one, waits for the worker to finish.
  void shutdown();
  void interrupt();
  void skip();

  // Run on the worker thread (from a job): generate / switch the loaded model (by title, name, file or hash).
  GenerationOutput generate(const GenerationRequest& g, Job& job, const std::vector<ControlRequest>& control = {});
  void switch_model(const std::string& name);

  std::vector<ModelEntry> models();  // -m and --model-dir, hashes where known
  ModelEntry current_model();
  json options();                     // A1111's flat settings dict
  // Checks and applies an options POST (model switch queued as a job); throws HttpError.
  void set_options(const json& body);
  json progress(bool skip_current_image);
  const Config& config() const { return config_; }
  int queued();

 private:
  void worker();
  void load(const std::string& path);
  std::optional<ModelEntry> find_model(const std::string& name);
  std::vector<ControlUnit> control_units(const GenerationRequest& g, const std::vector<ControlRequest>& control,
                                         RecipeContext& recipe);

  Config config_;
  std::mutex m_;  // queue, progress, options and the current model's entry
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> running_;
  bool stopping_ = false;
  std::thread thread_;
  ProgressState progress_;
  json options_;
  ModelEntry current_;
  std::map<std::string, std::string> hashes_;  // path → short hash
  // Worker-thread state.
  std::unique_ptr<StableDiffusion> sd_;
  std::map<std::string, std::shared_ptr<const ControlNet>> controlnets_;  // loaded for the current model
};

// The HTTP side: routes, authentication, CORS, limits, static files. Blocks until stop(); returns the exit status.
class HttpServer {
 public:
  HttpServer(Engine& engine);
  ~HttpServer();
  // Binds (port 0: any free port), prints "listening on http://HOST:PORT", serves until stop().
  int run();
  void stop();
  bool running() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string base64_encode(const std::string& bytes);
// Strict: an optional data: URL prefix, the base64 alphabet, '=' padding; throws HttpError 400 naming `field`.
std::string base64_decode(const std::string& text, const std::string& field);

}  // namespace pigment::cli::serve
