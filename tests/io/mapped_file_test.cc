#include "io/mapped_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "support/error_matchers.h"
#include "support/test_util.h"

namespace flamingo::io {
namespace {

using flamingo::testing::expect_error;
using flamingo::testing::TempDir;
using flamingo::testing::write_file;

TEST(MappedFile, MmapAndReadSeeTheSameBytes) {
  TempDir dir;
  std::string bytes(10000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  write_file(dir.path() / "f", bytes);
  for (MapMode mode : {MapMode::kMmap, MapMode::kRead}) {
    const MappedFile f = MappedFile::open(dir.path() / "f", mode);
    ASSERT_EQ(f.size(), bytes.size());
    EXPECT_EQ(std::memcmp(f.data(), bytes.data(), bytes.size()), 0);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.data()) % 64, 0u);
    EXPECT_EQ(f.is_mmapped(), mode == MapMode::kMmap);
    EXPECT_EQ(f.name(), (dir.path() / "f").string());
    f.advise_sequential();
    f.advise_willneed();
    f.release(f.data() + 100, 9000);  // drops whole pages only; the bytes stay readable
    EXPECT_EQ(std::memcmp(f.data(), bytes.data(), bytes.size()), 0);
  }
}

TEST(MappedFile, MoveTransfersOwnership) {
  TempDir dir;
  write_file(dir.path() / "f", "hello");
  MappedFile a = MappedFile::open(dir.path() / "f");
  const uint8_t* p = a.data();
  MappedFile b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  a = std::move(b);
  EXPECT_EQ(a.data(), p);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a.data()), a.size()), "hello");
}

TEST(MappedFile, MissingFile) {
  TempDir dir;
  expect_error([&] { MappedFile::open(dir.path() / "nope.safetensors"); }, ErrorCode::kIo,
               {"nope.safetensors", "no such file"});
}

TEST(MappedFile, Directory) {
  TempDir dir;
  expect_error([&] { MappedFile::open(dir.path()); }, ErrorCode::kIo,
               {dir.path().string(), "is a directory"});
}

TEST(MappedFile, EmptyFile) {
  TempDir dir;
  write_file(dir.path() / "empty", "");
  for (MapMode mode : {MapMode::kMmap, MapMode::kRead})
    expect_error([&] { MappedFile::open(dir.path() / "empty", mode); }, ErrorCode::kCorruptFile,
                 {"empty"});
}

TEST(MappedFile, NotARegularFile) {
  TempDir dir;
  const auto fifo = dir.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { MappedFile::open(fifo); }, ErrorCode::kIo, {"fifo", "not a regular file"});
}

TEST(MappedFile, UnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files regardless of permissions";
  TempDir dir;
  write_file(dir.path() / "locked", "x");
  ::chmod((dir.path() / "locked").c_str(), 0);
  expect_error([&] { MappedFile::open(dir.path() / "locked"); }, ErrorCode::kIo,
               {"locked", "cannot open"});
}

TEST(MappedFile, ReleaseOutsideTheMappingIsRejected) {
  TempDir dir;
  write_file(dir.path() / "f", std::string(100, 'x'));
  const MappedFile f = MappedFile::open(dir.path() / "f");
  expect_error([&] { f.release(f.data() + 50, 51); }, ErrorCode::kInvalidArgument, {"outside"});
  const char other[4] = {};
  expect_error([&] { f.release(other, 4); }, ErrorCode::kInvalidArgument, {"outside"});
}

TEST(MappedFile, CopyOfMemory) {
  const MappedFile f = MappedFile::copy_of("abc", 3, "mem");
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(f.name(), "mem");
  EXPECT_FALSE(f.is_mmapped());
  const MappedFile e = MappedFile::copy_of(nullptr, 0, "empty");
  EXPECT_EQ(e.size(), 0u);
  EXPECT_NE(e.data(), nullptr);
}

}  // namespace
}  // namespace flamingo::io
