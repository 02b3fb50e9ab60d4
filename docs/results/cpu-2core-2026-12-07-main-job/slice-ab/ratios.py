import csv,sys
for d in sys.argv[1:]:
  rows=list(csv.DictReader(open(d+'/summary.csv')))
  out=[]
  for r in rows:
    mb=float(r['microbench_kv_transfer_ms'] or 0); al=float(r['mean_kv_transfer_alone_ms'] or 0)
    if mb>0 and al>0: out.append("%s/in%s/r%s %.2f/%.2f=%.2f%s" % (r['backend'][:5], r['input_len'], r['request_rate'], al, mb, al/mb, '*' if r['host_bound'] in ('1','True','true') else ''))
  print(d.split('/')[-1], ' '.join(out))
