// Issue 16, the authenticated control plane, with real processes: the client port does not serve
// the cluster-internal RPCs, every internal RPC without the cluster credential (or with a wrong
// one) is UNAUTHENTICATED and has no effect, hand-started processes refuse to run without a
// secret, and the cluster keeps serving verified requests while the attacks run.

#include <grpcpp/generic/generic_stub.h>
#include <unistd.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "tests/scoped_temp_path.h"
#include "service/cluster_auth.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const std::string kWrongSecret(64, '7');

// One call of `method` ("/pdserve.v1.DecodeWorker/Allocate") with an empty request, carrying
// `credential` when it is not null. Works for every method, streaming ones included: a refused
// call ends before any message.
grpc::Status RawCall(const std::string& address, const std::string& method,
                     const std::string* credential) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (credential != nullptr) ctx.AddMetadata(service::kClusterCredentialHeader, *credential);
  grpc::CompletionQueue cq;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  return status;
}

// "/pdserve.v1.<service>/<method>" for every method the proto declares.
std::vector<std::string> MethodsOf(const std::string& service) {
  const google::protobuf::ServiceDescriptor* d =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  std::vector<std::string> out;
  if (d == nullptr) return out;
  for (int i = 0; i < d->method_count(); ++i) {
    out.push_back(absl::StrCat("/", service, "/", d->method(i)->name()));
  }
  return out;
}

std::string ReadSecret(const std::string& path) {
  std::string text;
  std::ifstream(path) >> text;
  return text;
}

std::string AddressOf(const v1::ClusterStatus& status, v1::WorkerRole role) {
  for (const v1::WorkerStatus& w : status.workers()) {
    if (w.role() == role) return w.address();
  }
  return "";
}

// Nothing the attacks asked for happened: the same two workers, every block free, nothing
// reserved, and a verified request still gets its exact tokens.
void ExpectUntouched(cluster::Cluster& cluster, Client& client) {
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  std::vector<std::string> ids;
  for (const v1::WorkerStatus& w : status->workers()) ids.push_back(w.worker_id());
  EXPECT_THAT(ids, UnorderedElementsAre("prefill-0", "decode-0"));
  ExpectAllBlocksFree(client);
  Outcome out = client.Generate("after-attacks", 40, 12, 5);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.tokens, Expected(40, 12, 5));
  EXPECT_TRUE(cluster.CheckChildren().ok());
}

// Local addresses (hex, as /proc/net/tcp{,6} write them) of the TCP sockets `pid` listens on.
std::vector<std::string> ListeningAddresses(pid_t pid) {
  std::set<std::string> inodes;
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir)) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::vector<std::string> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >>
          inode;
      if (state == "0A" && inodes.contains(inode)) out.push_back(local);
    }
  }
  return out;
}

// 127.0.0.1 as /proc/net/tcp (little-endian hex) or tcp6 (v4-mapped) writes it.
bool IsLoopback(const std::string& address) {
  const std::string host = address.substr(0, address.find(':'));
  return host == "0100007F" || host == "0000000000000000FFFF00000100007F" ||
         host == "00000000000000000000000001000000";
}

// SysV shared memory segments created by `pid`.
int SysvSegmentsOf(pid_t pid) {
  std::ifstream in("/proc/sysvipc/shm");
  std::string line;
  std::getline(in, line);
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key, shmid, perms, size, cpid;
    f >> key >> shmid >> perms >> size >> cpid;
    if (cpid == std::to_string(pid)) ++n;
  }
  return n;
}

TEST(AuthE2eTest, InternalRpcsOnTheClientPortAreUnimplemented) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  const std::string secret = ReadSecret(cluster->secret_file());
  ASSERT_EQ(secret.size(), 64u);
  const std::vector<std::string> internal = {
      "/pdserve.v1.RouterControl/RegisterWorker", "/pdserve.v1.RouterControl/Heartbeat",
      // Where these lived before the split: an old worker pointed at the client port.
      "/pdserve.v1.Router/RegisterWorker", "/pdserve.v1.Router/Heartbeat"};
  for (const std::string& method : internal) {
    for (const std::string* credential : {static_cast<const std::string*>(nullptr), &secret}) {
      grpc::Status s = RawCall(cluster->endpoint(), method, credential);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED)
          << method << " on the client port: " << s.error_message();
    }
  }
  // ... while the internal port serves them to a caller with the secret.
  EXPECT_TRUE(
      RawCall(cluster->internal_endpoint(), "/pdserve.v1.RouterControl/Heartbeat", &secret).ok());
  Client client(cluster->endpoint());
  ExpectUntouched(*cluster, client);
}

TEST(AuthE2eTest, EveryInternalRpcWithoutOrWithAWrongCredentialIsUnauthenticated) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  const std::string secret = ReadSecret(cluster->secret_file());
  const std::vector<std::pair<std::string, std::string>> services = {
      {"pdserve.v1.RouterControl", cluster->internal_endpoint()},
      {"pdserve.v1.PrefillWorker", AddressOf(*status, v1::WORKER_ROLE_PREFILL)},
      {"pdserve.v1.DecodeWorker", AddressOf(*status, v1::WORKER_ROLE_DECODE)}};
  int checked = 0;
  for (const auto& [service, address] : services) {
    ASSERT_FALSE(address.empty()) << service;
    const std::vector<std::string> methods = MethodsOf(service);
    ASSERT_FALSE(methods.empty()) << service;
    for (const std::string& method : methods) {
      for (const std::string* credential :
           {static_cast<const std::string*>(nullptr), &kWrongSecret}) {
        grpc::Status s = RawCall(address, method, credential);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << method << (credential ? " (wrong credential): " : " (none): ") << s.error_message();
        EXPECT_THAT(s.error_message(), HasSubstr("cluster credential")) << method;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 2 * (2 + 6 + 4));  // RouterControl 2, PrefillWorker 6, DecodeWorker 4
  // The same calls with the secret get through (a worker's status, a heartbeat).
  for (const auto& [method, address] : std::vector<std::pair<std::string, std::string>>{
           {"/pdserve.v1.PrefillWorker/GetStatus", services[1].second},
           {"/pdserve.v1.DecodeWorker/GetStatus", services[2].second},
           {"/pdserve.v1.RouterControl/Heartbeat", services[0].second}}) {
    grpc::Status s = RawCall(address, method, &secret);
    EXPECT_TRUE(s.ok()) << method << ": " << s.error_message();
  }
  ExpectUntouched(*cluster, client);
}

// The attacks of the issue, as real requests, from a caller without the secret and from one
// with a wrong secret, again and again while verified requests run.
void Attack(const cluster::Cluster& cluster, const std::string& prefill, const std::string& decode,
            std::atomic<int>& refused, std::atomic<int>& accepted) {
  auto note = [&](const grpc::Status& s) {
    (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ? refused : accepted).fetch_add(1);
  };
  for (const std::shared_ptr<const service::ClusterAuth>& auth :
       {service::ClusterAuth::Insecure(),
        service::ClusterAuth::WithSecret(*ClusterSecret::FromText(kWrongSecret))}) {
    auto control = v1::RouterControl::NewStub(auth->Channel(cluster.internal_endpoint()));
    auto p = v1::PrefillWorker::NewStub(auth->Channel(prefill));
    auto d = v1::DecodeWorker::NewStub(auth->Channel(decode));
    auto ctx = [] {
      auto c = std::make_unique<grpc::ClientContext>();
      c->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return c;
    };
    // A fake prefill worker (it would get prompts and decode pool descriptors), and one that
    // takes a real worker's id.
    for (const std::string id : {"evil-prefill", "decode-0"}) {
      v1::RegisterWorkerRequest reg;
      reg.set_worker_id(id);
      reg.set_role(id == "decode-0" ? v1::WORKER_ROLE_DECODE : v1::WORKER_ROLE_PREFILL);
      reg.set_address("127.0.0.1:1");
      reg.set_preset("tiny");
      v1::RegisterWorkerResponse r;
      note(control->RegisterWorker(ctx().get(), reg, &r));
    }
    v1::HeartbeatRequest hb;
    hb.set_worker_id("prefill-0");
    v1::HeartbeatResponse hbr;
    note(control->Heartbeat(ctx().get(), hb, &hbr));
    // Every decode block in one Allocate, someone else's Release, a peer removed.
    v1::AllocateRequest alloc;
    alloc.set_request_id("hog");
    alloc.set_prompt_len(1 << 20);
    alloc.set_max_tokens(1 << 20);
    v1::AllocateResponse ar;
    note(d->Allocate(ctx().get(), alloc, &ar));
    v1::ReleaseRequest release;
    release.set_request_id("victim-0");
    release.set_writer_fenced(true);
    v1::ReleaseResponse rr;
    note(d->Release(ctx().get(), release, &rr));
    v1::RemovePeerRequest remove;
    remove.set_worker_id("decode-0");
    v1::RemovePeerResponse rmr;
    note(p->RemovePeer(ctx().get(), remove, &rmr));
    v1::PrefillBatchRequest batch;
    batch.add_items()->set_request_id("forged");
    v1::PrefillBatchResponse br;
    note(p->Prefill(ctx().get(), batch, &br));
    // A Decode that would park a server thread for as long as it asks.
    v1::DecodeRequest decode_request;
    decode_request.set_request_id("park");
    decode_request.add_prompt_tokens(1);
    decode_request.set_max_tokens(1);
    decode_request.set_transfer_timeout_ms(std::numeric_limits<int32_t>::max());
    auto c = ctx();
    auto reader = d->Decode(c.get(), decode_request);
    v1::GenerateResponse chunk;
    while (reader->Read(&chunk)) {
    }
    note(reader->Finish());
  }
}

TEST(AuthE2eTest, ClusterKeepsServingVerifiedRequestsWhileUnauthenticatedCallsAreRefused) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  const std::string prefill = AddressOf(*status, v1::WORKER_ROLE_PREFILL);
  const std::string decode = AddressOf(*status, v1::WORKER_ROLE_DECODE);
  std::atomic<int> refused{0}, accepted{0};
  std::atomic<bool> stop{false};
  int rounds = 0;
  std::thread attacker([&] {
    // At least a few rounds, and on until the verified requests are done.
    for (; rounds < 3 || !stop.load(); ++rounds) {
      Attack(*cluster, prefill, decode, refused, accepted);
    }
  });
  std::vector<Outcome> outcomes;
  for (int i = 0; i < 8; ++i) {
    outcomes.push_back(client.Generate(absl::StrCat("victim-", i), 30 + i, 10, 100 + i));
  }
  stop = true;
  attacker.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(outcomes[i].status.ok()) << i << ": " << outcomes[i].status.error_message();
    EXPECT_EQ(outcomes[i].tokens, Expected(30 + i, 10, 100 + i)) << i;
  }
  EXPECT_EQ(accepted.load(), 0);
  EXPECT_EQ(refused.load(), rounds * 2 * 8);  // 8 calls per credential per round
  ExpectUntouched(*cluster, client);
}

TEST(AuthE2eTest, HandStartedWorkerWithoutOrWithAnExposedSecretDoesNotJoin) {
  auto cluster = Start(Options("local", 1, 1));
  ASSERT_NE(cluster, nullptr);
  const std::vector<std::string> common = {"decode", "--router",    cluster->internal_endpoint(),
                                           "--port", "0",           "--num-blocks",
                                           "16",     "--worker-id", "stray"};
  Exit none = RunPdserve(common);
  EXPECT_EQ(none.code, 1) << none.output;
  EXPECT_THAT(none.output, HasSubstr("stray: no cluster secret. Give --cluster-secret-file FILE"));

  const testing_util::ScopedTempPath exposed_file("exposed.secret");
  const std::string& exposed = exposed_file.path();
  { std::ofstream(exposed) << ReadSecret(cluster->secret_file()) << "\n"; }
  chmod(exposed.c_str(), 0644);
  std::vector<std::string> args = common;
  args.insert(args.end(), {"--cluster-secret-file", exposed});
  Exit readable = RunPdserve(args);
  EXPECT_EQ(readable.code, 1) << readable.output;
  EXPECT_THAT(readable.output, HasSubstr("is accessible by group or others (mode 0644)"));

  args = common;
  args.push_back("--insecure-no-auth");
  Exit insecure = RunPdserve(args);
  EXPECT_EQ(insecure.code, 1) << insecure.output;
  EXPECT_THAT(insecure.output, HasSubstr("--insecure-no-auth: the cluster-internal API is NOT "
                                         "authenticated"));
  EXPECT_THAT(insecure.output, HasSubstr("UNAUTHENTICATED: RouterControl.RegisterWorker: missing "
                                         "cluster credential"));
  Client client(cluster->endpoint());
  ExpectUntouched(*cluster, client);
}

TEST(AuthE2eTest, UcxWorkersListenOnlyOnTheirHostAndMakeNoSysvSegments) {
  cluster::ClusterOptions options = Options("ucx", 1, 1);
  options.env = {};  // UCX's default transports: sysv and every interface unless we say no
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  Client client(cluster->endpoint());
  Outcome out = client.Generate("ucx-1", 40, 8, 9);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.tokens, Expected(40, 8, 9));
  for (const std::string& name : cluster->ChildNames()) {
    absl::StatusOr<pid_t> pid = cluster->Pid(name);
    ASSERT_TRUE(pid.ok());
    const std::vector<std::string> listening = ListeningAddresses(*pid);
    EXPECT_FALSE(listening.empty()) << name;
    for (const std::string& address : listening) {
      EXPECT_TRUE(IsLoopback(address)) << name << " listens on " << address;
    }
    EXPECT_EQ(SysvSegmentsOf(*pid), 0) << name << " made SysV segments (mode 0660)";
  }
}

// Writes a CA and one certificate for 127.0.0.1 signed by it into `dir`; false on failure.
bool MakeTlsFiles(const std::string& dir) {
  const std::string script = absl::StrCat(
      "cd ", dir, " && printf 'subjectAltName=IP:127.0.0.1' > ext && ",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 ",
      "-subj /CN=pdserve-test-ca && ",
      "openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=node && ",
      "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem ",
      "-days 1 -extfile ext && chmod 600 node.key");
  return std::system(absl::StrCat("sh -c \"", script, "\" > /dev/null 2>&1").c_str()) == 0;
}

TEST(AuthE2eTest, InternalApiOverMutualTlsServesAndRefusesPlaintext) {
  const testing_util::ScopedTempPath tls_dir("pdserve-tls");
  const std::string& dir = tls_dir.path();
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(MakeTlsFiles(dir)) << "openssl failed in " << dir;
  const std::vector<std::string> tls = {"--tls-cert",      dir + "/node.pem", "--tls-key",
                                        dir + "/node.key", "--tls-ca",        dir + "/ca.pem"};
  cluster::ClusterOptions options = Options("local", 1, 1);
  for (auto* args : {&options.router_args, &options.prefill_args, &options.decode_args}) {
    args->insert(args->end(), tls.begin(), tls.end());
  }
  auto cluster = Start(options);
  ASSERT_NE(cluster, nullptr);
  const std::string secret = ReadSecret(cluster->secret_file());
  // Plaintext, even with the secret, does not reach the internal API.
  grpc::Status plain =
      RawCall(cluster->internal_endpoint(), "/pdserve.v1.RouterControl/Heartbeat", &secret);
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
  // Registration, heartbeats, Prefill, Allocate, Decode: all went over TLS.
  Client client(cluster->endpoint());
  ExpectUntouched(*cluster, client);
}

}  // namespace
}  // namespace pdserve::e2e
