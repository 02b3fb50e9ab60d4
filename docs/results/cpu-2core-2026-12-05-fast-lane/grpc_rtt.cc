#include "p.grpc.pb.h"
#include <grpcpp/grpcpp.h>
#include <unistd.h>
#include <sys/wait.h>
#include <chrono>
#include <thread>
#include <vector>
#include <algorithm>
#include <cstdio>
#include <cstring>
using namespace std::chrono;
struct Sync final : wk::S::Service {
  grpc::Status Unary(grpc::ServerContext*, const wk::M* in, wk::M* out) override { out->set_id(in->id()); return grpc::Status::OK; }
  grpc::Status Bidi(grpc::ServerContext*, grpc::ServerReaderWriter<wk::M, wk::M>* s) override { wk::M m; while (s->Read(&m)) s->Write(m); return grpc::Status::OK; }
};
struct Cb final : wk::S::CallbackService {
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* c, const wk::M* in, wk::M* out) override { out->set_id(in->id()); auto* r = c->DefaultReactor(); r->Finish(grpc::Status::OK); return r; }
  grpc::ServerBidiReactor<wk::M, wk::M>* Bidi(grpc::CallbackServerContext*) override {
    struct R : grpc::ServerBidiReactor<wk::M, wk::M> { wk::M m; R() { StartRead(&m); }
      void OnReadDone(bool ok) override { if (!ok) { Finish(grpc::Status::OK); return; } StartWrite(&m); }
      void OnWriteDone(bool ok) override { if (!ok) { Finish(grpc::Status::OK); return; } StartRead(&m); }
      void OnDone() override { delete this; } };
    return new R; }
};
void report(const char* name, int gap, std::vector<double> v) { std::sort(v.begin(), v.end()); printf("%-14s gap %6d us: p50 %6.1f p90 %6.1f us\n", name, gap, v[v.size()/2], v[v.size()*9/10]); fflush(stdout); }
int main(int argc, char** argv) {
  bool cb = argc > 1 && !strcmp(argv[1], "cb"); std::string addr = argc > 2 ? argv[2] : "127.0.0.1:50999";
  int n = 200;
  pid_t pid = fork();
  if (pid == 0) { Sync s; Cb c; grpc::ServerBuilder b; b.AddListeningPort(addr, grpc::InsecureServerCredentials());
    if (cb) b.RegisterService(&c); else b.RegisterService(&s); auto srv = b.BuildAndStart(); srv->Wait(); _exit(0); }
  sleep(1);
  grpc::ChannelArguments args; auto ch = grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  auto stub = wk::S::NewStub(ch);
  for (int gap : {0, 1000, 20000, 200000}) {
    std::vector<double> v; int cnt = gap >= 200000 ? 30 : n;
    for (int i = 0; i < cnt + 5; i++) { std::this_thread::sleep_for(microseconds(gap)); wk::M a, r; a.set_id(i);
      grpc::ClientContext ctx; auto t = steady_clock::now(); auto st = stub->Unary(&ctx, a, &r);
      if (i >= 5) v.push_back(duration<double, std::micro>(steady_clock::now() - t).count()); }
    report(cb ? "cb-unary" : "sync-unary", gap, v);
    grpc::ClientContext ctx; auto s = stub->Bidi(&ctx); v.clear();
    for (int i = 0; i < cnt + 5; i++) { std::this_thread::sleep_for(microseconds(gap)); wk::M a, r; a.set_id(i);
      auto t = steady_clock::now(); s->Write(a); s->Read(&r);
      if (i >= 5) v.push_back(duration<double, std::micro>(steady_clock::now() - t).count()); }
    s->WritesDone(); s->Finish();
    report(cb ? "cb-bidi" : "sync-bidi", gap, v);
  }
  kill(pid, SIGKILL); waitpid(pid, nullptr, 0);
}
