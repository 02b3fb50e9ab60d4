// Scratch: gRPC unary round trip over TCP loopback vs a unix socket, two processes.
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>
#include "pdserve.grpc.pb.h"
using namespace pdserve;
class Svc final : public v1::DecodeWorker::Service {
  grpc::Status Allocate(grpc::ServerContext*, const v1::AllocateRequest* r, v1::AllocateResponse* a) override {
    a->set_epoch(r->prompt_len());
    return grpc::Status::OK;
  }
};
class CbSvc final : public v1::DecodeWorker::CallbackService {
  grpc::ServerUnaryReactor* Allocate(grpc::CallbackServerContext* c, const v1::AllocateRequest* r, v1::AllocateResponse* a) override {
    a->set_epoch(r->prompt_len());
    auto* re = c->DefaultReactor(); re->Finish(grpc::Status::OK); return re;
  }
};
int main(int argc, char** argv) {
  std::string addr = argv[1]; bool cb = argc > 2 && std::string(argv[2]) == "cb"; int gap_ms = argc > 3 ? atoi(argv[3]) : 1;
  pid_t pid = fork();
  if (pid == 0) {
    Svc s; CbSvc c; grpc::ServerBuilder b; b.AddListeningPort(addr, grpc::InsecureServerCredentials());
    if (cb) b.RegisterService(&c); else b.RegisterService(&s);
    auto server = b.BuildAndStart(); server->Wait(); return 0;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto ch = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto stub = v1::DecodeWorker::NewStub(ch);
  std::vector<double> us;
  for (int i = 0; i < (gap_ms > 5 ? 320 : 2200); ++i) {
    grpc::ClientContext ctx; v1::AllocateRequest r; r.set_prompt_len(i); v1::AllocateResponse a;
    auto t0 = std::chrono::steady_clock::now();
    auto st = stub->Allocate(&ctx, r, &a);
    auto t1 = std::chrono::steady_clock::now();
    if (!st.ok()) { std::printf("err %s\n", st.error_message().c_str()); break; }
    if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
  }
  std::sort(us.begin(), us.end());
  std::printf("%-40s %s p50 %.0f us p90 %.0f us\n", addr.c_str(), cb ? "callback" : "sync", us[us.size()/2], us[us.size()*9/10]);
  kill(pid, SIGKILL); waitpid(pid, nullptr, 0);
}
