#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
int main(int c, char** v){ int pause = atoi(v[1]); struct sched_param p={0}; if(sched_setscheduler(0,SCHED_IDLE,&p)) perror("sched"); volatile unsigned long x=0; for(;;){ x++; if (pause) __builtin_ia32_pause(); } }
