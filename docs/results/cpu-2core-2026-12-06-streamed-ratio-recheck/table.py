import csv, sys, os, re
runs = sys.argv[1:]
rows, hidden, ci = {}, {}, {}
for run in runs:
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), run)
    with open(os.path.join(d, 'summary.csv')) as f:
        for r in csv.DictReader(f):
            rows.setdefault((r['backend'], r['input_len']), {})[run] = r
    for line in open(os.path.join(d, 'report.md')):
        m = re.match(r'\| (\S+) \| in(\d+)/out64 \| 1 \| ', line)
        if not m: continue
        f = [x.strip() for x in line.split('|')]
        if len(f) > 16 and ' / ' in f[12]: hidden[(m.group(1), m.group(2), run)] = f[12].split(' / ')[1]
        if 'n=30' in line: ci[(m.group(1), m.group(2), run)] = line.split('|')[-3].split(' / ')[0].strip()
print('| backend | prompt | ' + ' | '.join(runs) + ' |')
print('|---|---:|' + '---|' * len(runs))
for key in sorted(rows, key=lambda k: (k[0] == 'colocated', k[0], int(k[1]))):
    cells = []
    for run in runs:
        r = rows[key].get(run)
        hb = ' (host-bound)' if r['host_bound'] in ('1', 'true', 'True') else ''
        cells.append('%.1f; %.1f %s; %s; %.2f%s' % (float(r['median_ttft_ms']), float(r['mean_ttft_ms']),
                     ci.get((key[0], key[1], run), ''), hidden.get((key[0], key[1], run), '-'),
                     float(r['mean_prefill_mock_cpu_ms']) / float(r['mean_modelled_prefill_ms']), hb))
    print('| %s | %s | %s |' % (key[0], key[1], ' | '.join(cells)))
