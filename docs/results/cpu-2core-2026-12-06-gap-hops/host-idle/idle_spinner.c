#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
int main(){ struct sched_param p={0}; if(sched_setscheduler(0,SCHED_IDLE,&p)) perror("sched"); volatile unsigned long x=0; for(;;){ x++; __builtin_ia32_pause(); } }
