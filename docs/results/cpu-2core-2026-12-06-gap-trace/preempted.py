#!/usr/bin/env python3
"""Per request: was the prefill worker's call thread switched out while runnable (preempted)
between the router's Prefill frame and PrefillEngine::Run, and by which thread? (perf script)"""
import collections, re, sys
ev = []
for line in open(sys.argv[1]):
    m = re.match(r'\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):(.*)', line)
    if m:
        ev.append((float(m.group(4)) * 1e6, m.group(1), int(m.group(2)), int(m.group(3)),
                   m.group(5), m.group(6)))
by = collections.Counter()
n = preempted = 0
i = 0
while i < len(ev):
    if ev[i][4] == 'pd:fl_cstart':
        j = i + 1
        while j < len(ev) and ev[j][4] != 'pd:p_enginerun':
            j += 1
        if j >= len(ev):
            break
        tid = ev[j][2]
        hit = False
        for e in ev[i:j]:
            if e[4] == 'sched:sched_switch' and f'prev_pid={tid} ' in e[5] and 'prev_state=R' in e[5]:
                by[e[5].split('next_comm=')[1].split()[0] + '/' + e[5].split('next_pid=')[1].split()[0]] += 1
                hit = True
        n += 1
        preempted += hit
        i = j
    i += 1
print(f'requests {n}, prefill call thread preempted before PrefillEngine::Run in {preempted}')
print('preempted by (thread name/tid: times):', ', '.join(f'{k}: {v}' for k, v in by.most_common()))
