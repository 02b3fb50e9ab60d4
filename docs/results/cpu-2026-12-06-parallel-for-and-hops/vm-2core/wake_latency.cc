#include <unistd.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
#include <atomic>
static long now(){ return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }
int main(int argc, char**argv){
  int busy_us = atoi(argv[1]); int gap_us = atoi(argv[2]);
  int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  long* shared = (long*)mmap(nullptr, 4096*64, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0);
  const int N=1000;
  if(fork()==0){ long t; for(int i=0;i<N;i++){ if(read(sv[1],&t,8)!=8) break; shared[i]=now()-t; } _exit(0);}
  for(int i=0;i<N;i++){ long t=now(); write(sv[0],&t,8); long e=now()+busy_us*1000L; while(now()<e){} usleep(gap_us); }
  usleep(100000);
  std::vector<long> v(shared, shared+N); std::sort(v.begin(),v.end());
  printf("busy %d us gap %d us: wake latency p50 %.1f p90 %.1f us\n", busy_us, gap_us, v[N/2]/1e3, v[N*9/10]/1e3);
}
