// The cluster secret (common/cluster_secret.h): generated at random, written owner-only, and
// refused from a file that others can read.

#include "common/cluster_secret.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scoped_temp_path.h"

namespace pdserve {
namespace {

using ::testing::HasSubstr;

using testing_util::ScopedTempPath;

std::unique_ptr<ScopedTempPath> WriteFile(const std::string& name, const std::string& text,
                                          mode_t mode) {
  auto file = std::make_unique<ScopedTempPath>(name);
  std::ofstream(file->path()) << text;
  chmod(file->path().c_str(), mode);
  return file;
}

TEST(ClusterSecretTest, GeneratedSecretsAre64HexCharactersAndDiffer) {
  absl::StatusOr<ClusterSecret> a = ClusterSecret::Generate();
  absl::StatusOr<ClusterSecret> b = ClusterSecret::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->text().size(), 64u);
  EXPECT_EQ(a->text().find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a->text(), b->text());
  EXPECT_TRUE(a->Matches(a->text()));
  EXPECT_FALSE(a->Matches(b->text()));
  EXPECT_FALSE(a->Matches(""));
  EXPECT_FALSE(a->Matches(a->text().substr(0, 63)));
}

TEST(ClusterSecretTest, SecretFileIsOwnerOnlyAndGoesAway) {
  absl::StatusOr<ClusterSecret> secret = ClusterSecret::Generate();
  ASSERT_TRUE(secret.ok());
  std::string path, dir;
  {
    absl::StatusOr<std::unique_ptr<SecretFile>> file = SecretFile::Create(*secret);
    ASSERT_TRUE(file.ok()) << file.status();
    path = (*file)->path();
    dir = path.substr(0, path.rfind('/'));
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    absl::StatusOr<ClusterSecret> read = ClusterSecret::ReadFile(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_TRUE(secret->Matches(read->text()));
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_NE(access(dir.c_str(), F_OK), 0);
}

TEST(ClusterSecretTest, FileReadableByOthersIsRefusedWithTheFix) {
  const std::unique_ptr<ScopedTempPath> file =
      WriteFile("secret-0644", std::string(64, 'a') + "\n", 0644);
  const std::string& path = file->path();
  absl::StatusOr<ClusterSecret> read = ClusterSecret::ReadFile(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.status().message(), HasSubstr("accessible by group or others (mode 0644)"));
  EXPECT_THAT(read.status().message(), HasSubstr("chmod 600"));
  chmod(path.c_str(), 0600);
  EXPECT_TRUE(ClusterSecret::ReadFile(path).ok());
}

TEST(ClusterSecretTest, ShortOrBinarySecretsAreRefused) {
  EXPECT_EQ(ClusterSecret::ReadFile(WriteFile("short", "abc\n", 0600)->path()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterSecret::FromText(std::string(40, '\x01')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ClusterSecret::FromText(std::string(20, 'a') + " " + std::string(20, 'b')).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterSecret::ReadFile("/nonexistent/secret").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ClusterSecretTest, ConstantTimeEqualsComparesEveryByte) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "xbc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace pdserve
