#include <sys/socket.h>
#include <unistd.h>
#include <sched.h>
#include <chrono>
#include <thread>
#include <vector>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
int main(int argc,char**argv){int gap=atoi(argv[1]);int pin=argc>2?atoi(argv[2]):-1;
int sv[2];socketpair(AF_UNIX,SOCK_STREAM,0,sv);
if(fork()==0){ if(pin>=0){cpu_set_t s;CPU_ZERO(&s);CPU_SET(pin,&s);sched_setaffinity(0,sizeof s,&s);} char c;while(read(sv[1],&c,1)==1)write(sv[1],&c,1);_exit(0);}
if(pin>=0){cpu_set_t s;CPU_ZERO(&s);CPU_SET(pin,&s);sched_setaffinity(0,sizeof s,&s);}
std::vector<double> v;for(int i=0;i<300;i++){std::this_thread::sleep_for(std::chrono::microseconds(gap));auto t=std::chrono::steady_clock::now();char c='x';write(sv[0],&c,1);read(sv[0],&c,1);v.push_back(std::chrono::duration<double,std::micro>(std::chrono::steady_clock::now()-t).count());}
std::sort(v.begin(),v.end());printf("gap %d us pin %d: p50 %.1f p90 %.1f us\n",gap,pin,v[v.size()/2],v[v.size()*9/10]);close(sv[0]);}
