// Errors reported by libflamingo.
//
// Every function of the public API reports failure by throwing flamingo::Error (never by
// exiting, aborting or returning a half-built object); an allocation that fails inside the
// library is reported as kOutOfMemory, not as std::bad_alloc. The message names what was wrong and
// where: the file, the tensor, the config field or the prompt position.
#pragma once

#include <stdexcept>
#include <string>

namespace flamingo {

// Stable error categories. Values never change meaning; new ones are appended.
enum class ErrorCode : int {
  kInvalidArgument = 1,  // a caller-supplied value is out of range or inconsistent
  kIo = 2,               // a file could not be opened, read or mapped
  kCorruptFile = 3,      // a file's bytes violate its format (safetensors, image, tokenizer)
  kInvalidConfig = 4,    // config.json is missing fields, has wrong types or absurd values
  kModelMismatch = 5,    // the weights do not match what the config implies
  kUnsupported = 6,      // valid input that this build does not handle (e.g. an image format)
  kResourceLimit = 7,    // input exceeds a configured budget (pixels, bytes, context length)
  kCancelled = 8,        // a callback asked to stop
  kInternal = 9,         // a bug in libflamingo; please report it
  kOutOfMemory = 10,     // an allocation, mapping or compute thread failed: too little memory
                         // (or address space under a ulimit) for this model or request; the
                         // library state is unchanged
};

// Returns a short lowercase name for an error code ("corrupt file", ...).
const char* error_code_name(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace flamingo
