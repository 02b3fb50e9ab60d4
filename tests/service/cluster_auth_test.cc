// How a process decides about authentication at start (service/cluster_auth.h): a secret file,
// or an explicit --insecure-no-auth; neither is refused with a message that says what to do.

#include "service/cluster_auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::service {
namespace {

using ::testing::HasSubstr;

std::string SecretFileWithMode(mode_t mode) {
  const std::string path = ::testing::TempDir() + "/" + std::to_string(getpid()) + "-auth-test.secret";
  std::ofstream(path) << std::string(64, 'c') << "\n";
  chmod(path.c_str(), mode);
  return path;
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
      ClusterAuth::FromFlags({.secret_file = SecretFileWithMode(0600)}, "router");
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE((*auth)->enabled());
  EXPECT_EQ((*auth)->credential(), std::string(64, 'c'));
}

TEST(ClusterAuthTest, ExposedSecretFileOrBothFlagsAreRefused) {
  EXPECT_EQ(
      ClusterAuth::FromFlags({.secret_file = SecretFileWithMode(0640)}, "router").status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ClusterAuth::FromFlags(
                {.secret_file = SecretFileWithMode(0600), .insecure_no_auth = true}, "router")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClusterAuthTest, TlsFilesGoTogetherAndTheKeyMustBeOwnerOnly) {
  const std::string secret = SecretFileWithMode(0600);
  EXPECT_EQ(ClusterAuth::FromFlags({.secret_file = secret, .tls_cert = "/x.pem"}, "router")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const std::string pem = ::testing::TempDir() + "/" + std::to_string(getpid()) + "-auth-test.pem";
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
