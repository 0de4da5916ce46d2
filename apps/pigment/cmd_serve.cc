// pigment serve: a model kept loaded behind AUTOMATIC1111's HTTP API (/sdapi/v1), OpenAI's images endpoint and the
// page in web/. One generation at a time from a FIFO queue; SIGTERM / SIGINT finish cleanly (exit 0).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "command.h"
#include "core/threading.h"
#include "serve.h"

namespace pigment::cli {
namespace {

namespace fs = std::filesystem;

struct ServeOptions {
  std::string listen = "127.0.0.1:7860", auth, cors, precision = "auto", prediction, web_dir;
  std::vector<std::string> model_configs;
  double max_body_mb = 64;
  int threads = 0;
};
ServeOptions so;
serve::Config cfg;

void setup(CLI::App& c) {
  c.add_option("-m,--model", cfg.model,
               "model to load at start: .safetensors/.ckpt file or diffusers folder (default: pigment's own model)");
  c.add_option("--listen", so.listen, "HOST:PORT to listen on (PORT 0: any free port, printed)")->capture_default_str();
  c.add_option("--model-dir,--ckpt-dir", cfg.model_dir, "folder of models listed by /sdapi/v1/sd-models and switchable");
  c.add_option("--lora-dir", cfg.folders.lora_dir, "folder of LoRA files for <lora:NAME:WEIGHT> in prompts");
  c.add_option("--embedding-dir", cfg.folders.embedding_dir, "folder of textual-inversion embeddings");
  c.add_option("--hypernetwork-dir", cfg.folders.hypernetwork_dir, "folder of hypernetworks for <hypernet:NAME:W>");
  c.add_option("--control-net-dir", cfg.control_net_dir, "folder of ControlNet models (listed; not yet used by the API)");
  c.add_option("--api-auth", so.auth, "user:password[,user2:password2]: HTTP Basic authentication on every endpoint");
  c.add_option("--cors-allow-origins", so.cors, "comma-separated origins allowed by CORS ('*' for any)");
  c.add_option("--max-queue", cfg.max_queue, "jobs that may wait; more are answered 503")->capture_default_str();
  c.add_option("--max-pixels", cfg.limits.max_pixels, "largest width x height a request may ask for (hires included)")
      ->capture_default_str();
  c.add_option("--max-steps", cfg.limits.max_steps, "most sampling steps per request")->capture_default_str();
  c.add_option("--max-batch", cfg.limits.max_batch, "most images per request (n_iter x batch_size)")
      ->capture_default_str();
  c.add_option("--timeout", cfg.timeout_s, "seconds a job may wait and run before it is stopped with 504 (0 = none)")
      ->capture_default_str();
  c.add_option("--max-body-mb", so.max_body_mb, "largest request body in MiB (413 beyond, before it is read)")
      ->capture_default_str();
  c.add_option("--web-dir", so.web_dir, "folder served at / (default: web/ of the install or the source tree)");
  c.add_option("--tokenizer", cfg.pipeline.tokenizer, "CLIP tokenizer (as pigment generate --tokenizer)");
  c.add_option("--vae", cfg.pipeline.vae, "external VAE file");
  c.add_option("--model-config", so.model_configs, "COMPONENT=PATH: a diffusers config.json (as pigment generate)");
  c.add_option("--prediction", so.prediction, "eps, v or sample (x0) (default: inferred from the model)");
  c.add_option("--precision", so.precision,
               "auto (default: fast where the CPU has AMX or AVX-512 BF16, else exact; exact under --low-memory), "
               "exact, fast or int8 (as pigment generate)")
      ->check(CLI::IsMember({"auto", "exact", "fast", "int8", "fp32"}))
      ->capture_default_str();
  c.add_flag("--low-memory", cfg.pipeline.low_memory, "least memory: weights streamed, VAE decoded in tiles");
  c.add_option("--lora-apply", cfg.lora_apply, "merge or runtime")
      ->check(CLI::IsMember({"merge", "runtime"}))
      ->capture_default_str();
  c.add_option("-t,--threads", so.threads, "threads (0 = all cores)")->capture_default_str();
  c.add_flag("-q,--quiet", cfg.quiet, "no request log");
}

// web/ beside the install prefix (<prefix>/share/pigment/web) or in the source tree of build/bin/pigment.
std::string find_web_dir() {
  if (const char* env = std::getenv("PIGMENT_WEB_DIR"); env && *env) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path bin = exe.parent_path();
  for (const fs::path& p : {bin.parent_path() / "share" / "pigment" / "web", bin.parent_path().parent_path() / "web"})
    if (fs::is_directory(p, ec)) return p.string();
  return "";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!item.empty()) out.push_back(item);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

int run() {
  // SIGTERM / SIGINT go to one thread that shuts down in order; every other thread (OpenMP's, httplib's, all
  // started after this) blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // --listen
  size_t colon = so.listen.rfind(':');
  PIG_CHECK(colon != std::string::npos && colon > 0, "--listen expects HOST:PORT, got '", so.listen, "'");
  cfg.host = so.listen.substr(0, colon);
  try {
    size_t used = 0;
    cfg.port = std::stoi(so.listen.substr(colon + 1), &used);
    PIG_CHECK(used == so.listen.size() - colon - 1, "");
  } catch (const std::exception&) {
    fail("--listen: '", so.listen.substr(colon + 1), "' is not a port number");
  }
  PIG_CHECK(cfg.port >= 0 && cfg.port <= 65535, "--listen: port must be between 0 and 65535");
  for (const auto& item : split(so.auth, ',')) {
    size_t c = item.find(':');
    PIG_CHECK(c != std::string::npos && c > 0, "--api-auth expects user:password[,user2:password2]");
    cfg.auth.emplace_back(item.substr(0, c), item.substr(c + 1));
  }
  cfg.cors_origins = split(so.cors, ',');
  PIG_CHECK(cfg.max_queue >= 1, "--max-queue must be at least 1");
  PIG_CHECK(cfg.limits.max_pixels >= 64, "--max-pixels must be at least 64");
  PIG_CHECK(cfg.limits.max_steps >= 1, "--max-steps must be at least 1");
  PIG_CHECK(cfg.limits.max_batch >= 1, "--max-batch must be at least 1");
  PIG_CHECK(cfg.timeout_s >= 0, "--timeout must be 0 (none) or positive");
  PIG_CHECK(so.max_body_mb > 0, "--max-body-mb must be positive");
  cfg.max_body = size_t(so.max_body_mb * 1024 * 1024);
  for (const char* d : {"--model-dir", "--lora-dir", "--embedding-dir", "--hypernetwork-dir", "--control-net-dir"}) {
    const std::string& v = std::string(d) == "--model-dir"      ? cfg.model_dir
                           : std::string(d) == "--lora-dir"     ? cfg.folders.lora_dir
                           : std::string(d) == "--embedding-dir" ? cfg.folders.embedding_dir
                           : std::string(d) == "--hypernetwork-dir" ? cfg.folders.hypernetwork_dir
                                                                    : cfg.control_net_dir;
    PIG_CHECK(v.empty() || fs::is_directory(v), d, ": ", v, " is not a folder");
  }
  cfg.web_dir = so.web_dir.empty() ? find_web_dir() : so.web_dir;
  PIG_CHECK(so.web_dir.empty() || fs::is_directory(so.web_dir), "--web-dir: ", so.web_dir, " is not a folder");
  cfg.pipeline.precision = so.precision == "auto" && cfg.pipeline.low_memory  // as pigment generate
                               ? ops::Precision::Fp32
                               : ops::parse_precision(so.precision.c_str());
  cfg.pipeline.load.prediction = so.prediction;
  for (const auto& mc : so.model_configs) {
    size_t eq = mc.find('=');
    PIG_CHECK(eq != std::string::npos && eq > 0, "--model-config expects COMPONENT=PATH, got '", mc, "'");
    cfg.pipeline.load.config_paths[mc.substr(0, eq)] = mc.substr(eq + 1);
  }
  if (so.threads > 0) set_num_threads(so.threads);


  serve::Engine engine(cfg);
  serve::HttpServer http(engine);
  std::atomic<bool> stop_requested{false}, done{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (done) return;
    stop_requested = true;
    std::fprintf(stderr, "pigment serve: %s: answering queued jobs, stopping the running one, exiting\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    engine.shutdown();
    // The listener may not be up yet (a signal during the model load): stop it as soon as it is.
    while (!done) {
      http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  int status = 0;
  try {
    engine.start();
    const auto model = engine.current_model();
    std::fprintf(stderr, "pigment serve: model %s; queue %d; %s\n", model.title.c_str(), cfg.max_queue,
                 cfg.web_dir.empty() ? "no web/ folder" : ("web page from " + cfg.web_dir).c_str());
    if (!stop_requested) status = http.run();
  } catch (...) {
    done = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    throw;
  }
  done = true;
  if (!stop_requested) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  engine.shutdown();
  std::fprintf(stderr, "pigment serve: stopped\n");
  return status;
}

RegisterCommand reg("serve", "keep a model loaded and serve the AUTOMATIC1111 HTTP API (/sdapi/v1) and a web page",
                    setup, run);

}  // namespace
}  // namespace pigment::cli
