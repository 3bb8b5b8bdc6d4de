#include "server/flags.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace visionserve {

void FlagParser::String(const std::string& name, std::string* dest, const std::string& help) {
  flags_.push_back({name, help, *dest, false, [dest](const std::string& v) {
                      *dest = v;
                      return absl::OkStatus();
                    }});
}

void FlagParser::Int(const std::string& name, int64_t* dest, const std::string& help) {
  flags_.push_back({name, help, absl::StrCat(*dest), false, [dest, name](const std::string& v) {
                      if (!absl::SimpleAtoi(v, dest)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, " wants an integer, got \"", v, "\""));
                      }
                      return absl::OkStatus();
                    }});
}

void FlagParser::Bool(const std::string& name, bool* dest, const std::string& help) {
  flags_.push_back({name, help, *dest ? "true" : "false", true, [dest, name](const std::string& v) {
                      if (v.empty() || v == "true" || v == "1") {
                        *dest = true;
                      } else if (v == "false" || v == "0") {
                        *dest = false;
                      } else {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, " wants true or false, got \"", v, "\""));
                      }
                      return absl::OkStatus();
                    }});
}

absl::Status FlagParser::Parse(int argc, char** argv, std::vector<std::string>* positional) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      if (!positional) return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", arg));
      positional->push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Flag* flag = nullptr;
    for (const auto& f : flags_) {
      if (f.name == name) flag = &f;
    }
    if (!flag)
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    if (!has_value && !flag->is_bool) {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    if (absl::Status s = flag->set(value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string FlagParser::Help() const {
  std::string out = absl::StrCat(usage_, "\n\nflags:\n");
  for (const auto& f : flags_) {
    absl::StrAppend(&out, "  --", f.name, f.is_bool ? "" : " VALUE", "\n      ", f.help,
                    " (default: ", f.def.empty() ? "\"\"" : f.def, ")\n");
  }
  return out;
}

std::optional<int> FlagParser::ParseOrExitCode(int argc, char** argv,
                                               std::vector<std::string>* positional,
                                               const std::string& program) {
  if (absl::Status s = Parse(argc, argv, positional); !s.ok()) {
    std::cerr << program << ": " << s.message() << "\n";
    return 2;
  }
  if (help_) {
    std::cout << Help();
    return 0;
  }
  return std::nullopt;
}

}  // namespace visionserve
