// The pigment command line: thin, over the library. Subcommands register themselves (command.h).
#include <cstdio>
#include <map>

#include "command.h"
#include "core/threading.h"

namespace pigment::cli {
namespace {
std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> c;
  return c;
}
}  // namespace

RegisterCommand::RegisterCommand(std::string name, std::string help, std::function<void(CLI::App&)> setup,
                                 std::function<int()> run) {
  commands()[name] = Command{name, std::move(help), std::move(setup), std::move(run)};
}

}  // namespace pigment::cli

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  using namespace pigment::cli;
  CLI::App app{"pigment: Stable Diffusion in C++"};
  app.require_subcommand(1);
  std::map<CLI::App*, Command*> subs;
  for (auto& [name, cmd] : commands()) {
    CLI::App* sub = app.add_subcommand(name, cmd.help);
    cmd.setup(*sub);
    subs[sub] = &cmd;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
    return app.exit(e);
  }
  for (auto& [sub, cmd] : subs) {
    if (!sub->parsed()) continue;
    try {
      return cmd->run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}
