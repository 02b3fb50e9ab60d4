#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){ int huge=argc>1; size_t n=(size_t)256<<20;
 uint64_t*a=mmap(0,n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0),*b=mmap(0,n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
 if(huge){madvise(a,n,MADV_HUGEPAGE);madvise(b,n,MADV_HUGEPAGE);}
 memset(a,1,n); memset(b,2,n);
 for(int r=0;r<3;r++){ double t0=now(); uint64_t s=0; for(size_t i=0;i<n/8;i++) s+=a[i]^(i*0x9e37); double t1=now();
   double t2=now(); for(size_t i=0;i<n/8;i++) b[i]=i*0x9e3779b97f4a7c15ULL; double t3=now();
   printf("%s read-sum %.2f GB/s  write %.2f GB/s (%lu)\n", huge?"THP":"4K ", n/(t1-t0)/1e9, n/(t3-t2)/1e9, (unsigned long)(s+b[5])); }
}
