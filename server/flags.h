#pragma once

// A small command-line parser for the daemon and its CLI: `--name value` or `--name=value`,
// typed destinations, generated --help. Kept here to avoid a flags library dependency and to
// allow the dashed names users expect (--metrics-listen).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace visionserve {

class FlagParser {
 public:
  explicit FlagParser(std::string usage) : usage_(std::move(usage)) {}
  void String(const std::string& name, std::string* dest, const std::string& help);
  void Int(const std::string& name, int64_t* dest, const std::string& help);
  void Bool(const std::string& name, bool* dest, const std::string& help);  // --x, --x=false

  // Parses argv[1..]; non-flag arguments go to `positional`. "--help" sets help_requested().
  absl::Status Parse(int argc, char** argv, std::vector<std::string>* positional);
  bool help_requested() const { return help_; }
  // Parse() plus the usual handling: on an error prints "<program>: <error>" to stderr and
  // returns 2, on --help prints Help() to stdout and returns 0; nullopt means carry on.
  std::optional<int> ParseOrExitCode(int argc, char** argv, std::vector<std::string>* positional,
                                     const std::string& program);
  std::string Help() const;

 private:
  struct Flag {
    std::string name, help, def;
    bool is_bool = false;
    std::function<absl::Status(const std::string&)> set;
  };
  std::string usage_;
  std::vector<Flag> flags_;
  bool help_ = false;
};

}  // namespace visionserve
