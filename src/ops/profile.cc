#include "ops/profile.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace pigment::ops::profile {

namespace {
struct Row {
  int64_t calls = 0;
  double seconds = 0, cpu = 0, flops = 0;
};
struct Table {
  std::mutex mu;
  std::map<std::string, Row> rows;
  ~Table() {
    if (enabled() && !rows.empty()) std::fputs(table().c_str(), stderr);
  }
};
Table& the_table() {
  static Table t;
  return t;
}
bool env_enabled() {
  const char* e = std::getenv("PIGMENT_PROFILE");
  return e && *e && std::string(e) != "0";
}
}  // namespace

bool enabled() {
  static const bool on = env_enabled();
  return on;
}

double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

namespace {
std::atomic<double> g_flops{0};
}  // namespace
double flops_counted() { return g_flops.load(std::memory_order_relaxed); }
void count_flops(double flops) { g_flops.fetch_add(flops, std::memory_order_relaxed); }

void add(const std::string& row, double seconds, double cpu_seconds, double flops) {
  Table& t = the_table();
  std::lock_guard<std::mutex> lock(t.mu);
  Row& r = t.rows[row];
  ++r.calls;
  r.seconds += seconds;
  r.cpu += cpu_seconds;
  r.flops += flops;
}

void reset() {
  Table& t = the_table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.rows.clear();
}

std::string table() {
  Table& t = the_table();
  std::vector<std::pair<std::string, Row>> rows;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    rows.assign(t.rows.begin(), t.rows.end());
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0, total_cpu = 0;
  for (const auto& r : rows) total += r.second.seconds, total_cpu += r.second.cpu;
  std::string out = "PIGMENT_PROFILE: op time (nested ops counted twice)\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-52s %6s %9s %6s %9s %9s %8s %8s\n", "op", "calls", "total s", "%", "ms/call",
                "cpu s", "GFLOP/s", "G/cpu-s");
  out += line;
  for (const auto& [name, r] : rows) {
    std::snprintf(line, sizeof line, "%-52s %6lld %9.3f %6.1f %9.3f %9.3f %8s %8s\n", name.c_str(), (long long)r.calls,
                  r.seconds, total > 0 ? 100 * r.seconds / total : 0.0, 1e3 * r.seconds / double(r.calls), r.cpu,
                  r.flops > 0 ? std::to_string(int(r.flops / r.seconds / 1e9)).c_str() : "",
                  r.flops > 0 && r.cpu > 0 ? std::to_string(int(r.flops / r.cpu / 1e9)).c_str() : "");
    out += line;
  }
  std::snprintf(line, sizeof line, "%-52s %6s %9.3f %6s %9s %9.3f\n", "total", "", total, "", "", total_cpu);
  out += line;
  return out;
}

}  // namespace pigment::ops::profile
