import re,sys,statistics as st
ev=[]
for l in open(sys.argv[1]):
    m=re.match(r'\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):(.*)',l)
    if not m: continue
    comm,tid,cpu,t,e,rest=m.groups()
    ev.append((float(t)*1e6,comm,int(tid),int(cpu),e,rest))
names=['pd:r_start','pd:r_sched','pd:r_runbatch','pd:fl_cstart','pd:fl_runcall','pd:p_enginerun','pd:p_submitunless','pd:d_reserved']
reqs=[];cur=None
for x in ev:
    if x[4]=='pd:r_start':
        cur={'pd:r_start':x[0]};reqs.append(cur);continue
    if cur is None: continue
    if x[4] in names and x[4] not in cur:
        if x[4]=='pd:fl_runcall' and 'pd:fl_cstart' not in cur: continue
        cur[x[4]]=x[0]
segs={}
for r in reqs[10:]:
    if not all(n in r for n in names): continue
    for a,b in zip(names,names[1:]):
        segs.setdefault(a+'->'+b,[]).append(r[b]-r[a])
for k,v in segs.items(): print(f"{k:45s} p50 {st.median(v):7.1f}  n={len(v)}  p10 {sorted(v)[len(v)//10]:7.1f} p90 {sorted(v)[9*len(v)//10]:7.1f}")
