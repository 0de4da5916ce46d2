// Subcommands of the pigment CLI. Each lives in its own cmd_<name>.cc and registers itself:
//   static RegisterCommand reg("inspect", "describe a checkpoint", setup, run);
// `setup` declares the subcommand's options on its CLI::App; `run` executes it after parsing and returns the exit
// status. A pigment::Error thrown from `run` becomes "error: <message>" on stderr and exit status 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace pigment::cli {

struct Command {
  std::string name, help;
  std::function<void(CLI::App&)> setup;
  std::function<int()> run;
};

struct RegisterCommand {
  RegisterCommand(std::string name, std::string help, std::function<void(CLI::App&)> setup, std::function<int()> run);
};

}  // namespace pigment::cli
