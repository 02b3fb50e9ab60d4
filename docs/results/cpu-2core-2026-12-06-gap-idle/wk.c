// Where does a woken reader land: unix socket (sync wake-up) vs eventfd, both via epoll.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
static long long now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
struct shm { volatile long long woke; volatile int cpu; volatile int seq; };
int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int use_efd = argc>1 && !strcmp(argv[1],"eventfd"); int N=60; int gap_ms = argc>2?atoi(argv[2]):20;
  int sv[2]; socketpair(AF_UNIX,SOCK_STREAM,0,sv); int efd=eventfd(0,0);
  struct shm* s=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); s->seq=0;
  pid_t pid=fork();
  if(pid==0){ int ep=epoll_create1(0); struct epoll_event ev={.events=EPOLLIN}; int fd=use_efd?efd:sv[1];
    epoll_ctl(ep,EPOLL_CTL_ADD,fd,&ev);
    for(int i=0;i<N;i++){ struct epoll_event e; epoll_wait(ep,&e,1,-1); s->woke=now(); s->cpu=sched_getcpu();
      char b[64]; read(fd,b,use_efd?8:32);
      long long until=now()+300000; while(now()<until){ struct pollfd p={sv[1],POLLIN,0}; poll(&p,1,0); sched_yield(); }
      __sync_synchronize(); s->seq=i+1; }
    _exit(0);}
  long long lat[200],delay[200]; int same=0;
  for(int i=0;i<N;i++){ usleep(gap_ms*1000); int mycpu=sched_getcpu(); long long t0=now();
    if(use_efd){ unsigned long long one=1; write(efd,&one,8);} else { char b[32]={0}; write(sv[0],b,32);} 
    long long t1=now(); while(now()-t1<50000); long long t2=now(); delay[i]=(t2-t0)-50000;
    while(s->seq!=i+1) usleep(100); lat[i]=s->woke-t0; if(s->cpu==mycpu) same++; }
  waitpid(pid,0,0); qsort(lat,N,8,cmp); qsort(delay,N,8,cmp);
  printf("%-8s gap %d ms: wake p50 %lld us p90 %lld | waker's 50us work delayed p50 %lld us p90 %lld | same cpu %d/%d\n", use_efd?"eventfd":"socket", gap_ms, lat[N/2]/1000, lat[9*N/10]/1000, delay[N/2]/1000, delay[9*N/10]/1000, same, N);
}
