// libflamingo: a CPU inference engine for Flamingo-style vision-language models.
//
//   auto model = flamingo::Model::load("models/demo");
//   flamingo::Session session(model);
//   flamingo::Prompt prompt("<image>", {flamingo::Image::from_file("cat.png")});
//   std::cout << session.generate(prompt).text << "\n";
//
// Every function reports failure by throwing flamingo::Error (error.h).
#pragma once

#include <string>

#include "flamingo/error.h"
#include "flamingo/image.h"
#include "flamingo/model.h"
#include "flamingo/prompt.h"
#include "flamingo/session.h"

namespace flamingo {

// "MAJOR.MINOR.PATCH".
std::string version();

struct BuildInfo {
  std::string version;
  std::string git_commit;
  std::string compiler;
  std::string kernel_path;  // the ISA the kernels use now ("avx2+fma+f16c" or "scalar")
};
BuildInfo build_info();

}  // namespace flamingo
