import sys, collections
lines=[l.split() for l in open(sys.argv[1])]
ppid=next(l[0] for l in lines if l[1].startswith('P3'))
rpid=next(l[0] for l in lines if l[1]=='R1-runbatch')
dpid=next(l[0] for l in lines if l[1].startswith('D9'))
order=['R0-arrival','R0b-exec-woke','R1-runbatch','R1b-items','R1c-batch','R2-send-prefill','P:S1-readable','P:S2-frame-read','P:S3-parse','P:S4-parsed','P3-runbatch','P4-engine-run','P5-run-locked','P6-prefill-star','P7-kernels-end','P8-transfer-sta','NT-push','NT-unpark','NT-drain','D1-watch-cb','D2-started','D3-step','D9-first-token']
reqs=[]; cur=None
for pid,tag,t,cpu in lines:
    t=int(t); cpu=int(cpu)
    if tag=='R0-arrival': cur={}; reqs.append(cur)
    if cur is None: continue
    if tag.startswith('S') : tag=('P:' if pid==ppid else ('D:' if pid==dpid else 'R:'))+tag
    if tag.startswith('NT-push'): tag='NT-push'
    if tag=='NT-unpark' and pid!=dpid: continue
    # only first occurrence after arrival and in order
    if tag in order and tag not in cur:
        # require ordering: previous tag in order recorded (except optional)
        cur[tag]=(t,cpu)
reqs=reqs[20:]
import statistics as st
print(f"{'from':>18} -> {'to':<18} {'n':>4} {'p10':>6} {'p50':>6} {'p90':>6} {'samecpu':>7}")
prev=None
for tag in order:
    if prev:
        d=[r[tag][0]-r[prev][0] for r in reqs if tag in r and prev in r]
        same=sum(1 for r in reqs if tag in r and prev in r and r[tag][1]==r[prev][1])
        if d:
            d.sort(); n=len(d)
            print(f"{prev:>18} -> {tag:<18} {n:4d} {d[n//10]:6d} {d[n//2]:6d} {d[n*9//10]:6d} {same:7d}")
    prev=tag
d=[r['D9-first-token'][0]-r['R0-arrival'][0]-(r['P7-kernels-end'][0]-r['P6-prefill-star'][0]) for r in reqs if 'D9-first-token' in r]
d.sort(); print('ttft-minus-kernels p50', d[len(d)//2])
