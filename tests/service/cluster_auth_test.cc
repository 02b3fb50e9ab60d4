// How a process decides about authentication at start (service/cluster_auth.h): a secret file,
// or an explicit --insecure-no-auth; neither is refused with a message that says what to do.

#include "service/cluster_auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/scoped_temp_path.h"

namespace pdserve::service {
namespace {

using ::testing::HasSubstr;

using testing_util::ScopedTempPath;

std::unique_ptr<ScopedTempPath> SecretFileWithMode(mode_t mode) {
  auto file = std::make_unique<ScopedTempPath>("auth-test.secret");
  std::ofstream(file->path()) << std::string(64, 'c') << "\n";
  chmod(file->path().c_str(), mode);
  return file;
}

TEST(ClusterAuthTest, NoSecretAndNoInsecureFlagRefusesToStart) {
  absl::StatusOr<std::shared_ptr<const ClusterAuth>> auth = ClusterAuth::FromFlags({}, "decode-3");
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(auth.status().message(), HasSubstr("decode-3: no cluster secret"));
  EXPECT_THAT(auth.status().message(), HasSubstr("--insecure-no-auth"));
}

TEST(ClusterAuthTest, InsecureFlagTurnsAuthenticationOffExplicitly) {
  absl::StatusOr<std::shared_ptr<const ClusterAuth>> auth =
      ClusterAuth::FromFlags({.insecure_no_auth = true}, "router");
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_FALSE((*auth)->enabled());
  EXPECT_EQ((*auth)->credential(), "");
}

TEST(ClusterAuthTest, SecretFileGivesTheCredential) {
  absl::StatusOr<std::shared_ptr<const ClusterAuth>> auth =
      ClusterAuth::FromFlags({.secret_file = SecretFileWithMode(0600)->path()}, "router");
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE((*auth)->enabled());
  EXPECT_EQ((*auth)->credential(), std::string(64, 'c'));
}

TEST(ClusterAuthTest, ExposedSecretFileOrBothFlagsAreRefused) {
  EXPECT_EQ(
      ClusterAuth::FromFlags({.secret_file = SecretFileWithMode(0640)->path()}, "router").status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ClusterAuth::FromFlags(
                {.secret_file = SecretFileWithMode(0600)->path(), .insecure_no_auth = true}, "router")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClusterAuthTest, TlsFilesGoTogetherAndTheKeyMustBeOwnerOnly) {
  const std::unique_ptr<ScopedTempPath> secret_file = SecretFileWithMode(0600);
  const std::string& secret = secret_file->path();
  EXPECT_EQ(ClusterAuth::FromFlags({.secret_file = secret, .tls_cert = "/x.pem"}, "router")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const ScopedTempPath pem_file("auth-test.pem");
  const std::string& pem = pem_file.path();
  std::ofstream(pem) << "-----BEGIN CERTIFICATE-----\n";
  chmod(pem.c_str(), 0644);
  absl::StatusOr<std::shared_ptr<const ClusterAuth>> exposed = ClusterAuth::FromFlags(
      {.secret_file = secret, .tls_cert = pem, .tls_key = pem, .tls_ca = pem}, "router");
  EXPECT_EQ(exposed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(exposed.status().message(), HasSubstr("--tls-key"));
  chmod(pem.c_str(), 0600);
  absl::StatusOr<std::shared_ptr<const ClusterAuth>> tls = ClusterAuth::FromFlags(
      {.secret_file = secret, .tls_cert = pem, .tls_key = pem, .tls_ca = pem}, "router");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE((*tls)->tls());
  EXPECT_TRUE((*tls)->enabled());
}

}  // namespace
}  // namespace pdserve::service
