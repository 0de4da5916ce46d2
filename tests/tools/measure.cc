// pigment-measure: numbers the CLI tests assert on, measured by the harness rather than read by eye.
//   pigment-measure psnr A.png B.png      PSNR in dB of two 8-bit images of one size (inf when equal)
//   pigment-measure stats A.png           "size WxH white W rough R": its size, the fraction of pixels whose channels are all >= 240,
//                                         and the mean |difference| of horizontally adjacent values (uniform noise:
//                                         white ~0.0002, rough ~85; an emoji on white: a large white share, rough
//                                         a few units)
//   pigment-measure rss -- CMD [ARGS...]  runs CMD, passes its exit status on, and prints its peak resident set
//                                         size in KiB (getrusage of the child: ru_maxrss) on the last line of stderr
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "io/image.h"

namespace {

int psnr(const char* a_path, const char* b_path) {
  const pigment::Image a = pigment::to_rgb(pigment::read_image(a_path)), b = pigment::to_rgb(pigment::read_image(b_path));
  PIG_CHECK(a.width == b.width && a.height == b.height, "psnr: ", a_path, " is ", a.width, "x", a.height, " but ",
            b_path, " is ", b.width, "x", b.height);
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const double d = double(a.pixels[i]) - b.pixels[i];
    se += d * d;
  }
  const double mse = se / double(a.pixels.size());
  if (mse == 0) std::printf("inf\n");
  else std::printf("%.3f\n", 10 * std::log10(255.0 * 255.0 / mse));
  return 0;
}

int stats(const char* path) {
  const pigment::Image a = pigment::to_rgb(pigment::read_image(path));
  PIG_CHECK(a.width >= 2 && a.height >= 1, "stats: ", path, " is too small");
  size_t white = 0;
  double rough = 0;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x) {
      const uint8_t* p = &a.pixels[(size_t(y) * size_t(a.width) + size_t(x)) * 3];
      if (p[0] >= 240 && p[1] >= 240 && p[2] >= 240) ++white;
      if (x + 1 < a.width)
        for (int c = 0; c < 3; ++c) rough += std::abs(double(p[c]) - double(p[c + 3]));
    }
  std::printf("size %dx%d white %.4f rough %.3f\n", a.width, a.height, double(white) / (double(a.width) * a.height),
              rough / (3.0 * double(a.width - 1) * a.height));
  return 0;
}

int rss(char** argv) {
  const pid_t pid = fork();
  PIG_CHECK(pid >= 0, "rss: fork failed");
  if (pid == 0) {
    execvp(argv[0], argv);
    std::fprintf(stderr, "rss: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  PIG_CHECK(wait4(pid, &status, 0, &ru) == pid, "rss: wait4 failed");
  std::fprintf(stderr, "peak_rss_kib %ld\n", ru.ru_maxrss);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::strcmp(argv[1], "psnr") == 0) return psnr(argv[2], argv[3]);
    if (argc == 3 && std::strcmp(argv[1], "stats") == 0) return stats(argv[2]);
    if (argc >= 4 && std::strcmp(argv[1], "rss") == 0 && std::strcmp(argv[2], "--") == 0) return rss(argv + 3);
    std::fprintf(stderr, "usage: pigment-measure psnr A.png B.png | pigment-measure stats A.png | pigment-measure rss -- CMD [ARGS...]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
