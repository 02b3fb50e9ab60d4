import re,sys
ev=[]
for l in open(sys.argv[1]):
    m=re.match(r'\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):(.*)',l)
    if not m: continue
    comm,tid,cpu,t,e,rest=m.groups()
    ev.append((float(t)*1e6,comm,int(tid),int(cpu),e,rest,l.rstrip()))
# find requests where fl_runcall->p_enginerun > 100
i=0;shown=0
while i<len(ev) and shown<2:
    if ev[i][4]=='pd:fl_runcall':
        # is next enginerun far?
        j=i+1
        while j<len(ev) and ev[j][4]!='pd:p_enginerun': j+=1
        if j<len(ev) and ev[j][0]-ev[i][0]>110 and ev[i][0]-ev[0][0]>300000:
            t0=ev[i][0]
            for k in range(i-25,j+2):
                e=ev[k]
                if 'swapper' in e[1] and 'sched_switch' in e[4]: 
                    print(f"{e[0]-t0:8.1f} cpu{e[3]} idle->{e[5].split('next_comm=')[1].split()[0]}"); continue
                if e[4]=='sched:sched_switch':
                    r=e[5]; print(f"{e[0]-t0:8.1f} cpu{e[3]} {e[1]}({e[2]}) -> {r.split('next_comm=')[1].split()[0]}({r.split('next_pid=')[1].split()[0]}) prev_state={r.split('prev_state=')[1].split()[0]}")
                elif e[4] in('sched:sched_wakeup',):
                    r=e[5]; print(f"{e[0]-t0:8.1f} cpu{e[3]} {e[1]}({e[2]}) wakes {r.split('comm=')[1].split()[0]}({r.split('pid=')[1].split()[0]}) on {r.split('target_cpu=')[1]}")
                elif e[4]=='sched:sched_waking': pass
                else: print(f"{e[0]-t0:8.1f} cpu{e[3]} {e[1]}({e[2]}) {e[4]}")
            print('----');shown+=1;i=j
    i+=1
