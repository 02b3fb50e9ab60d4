import json,sys,statistics as st
for f in sys.argv[1:]:
    t=json.load(open(f))['timelines']
    def p(xs): xs=sorted(xs); return "%5d %5d %5d"%(xs[len(xs)//10], xs[len(xs)//2], xs[9*len(xs)//10])
    front=[r['prefill_start']-r['arrival'] for r in t]
    q=[r['scheduled']-r['arrival'] for r in t]
    sub=[r['transfer_start']-r['prefill_end'] for r in t]
    land=[min(r['kv_landed'],r['transfer_end'])-r['transfer_start'] for r in t]
    back=[r['first_token']-min(r['kv_landed'],r['transfer_end']) for r in t]
    gap=[r['gap'] for r in t]
    print(f); 
    for n,x in [('queue',q),('front',front),('submit',sub),('landed',land),('back',back),('gap',gap)]: print("  %-7s p10/p50/p90 %s"%(n,p(x)))
