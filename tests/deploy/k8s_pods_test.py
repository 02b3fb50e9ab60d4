#!/usr/bin/env python3
"""ctest k8s_pods_netns: the base manifests' pods, run on this machine as the kubelet would
run them, each in a network namespace of its own (scripts/netns-hosts.sh), then a verified
request through the router's client port.

Per pod, from the rendered Deployment: its volumes are made as the kubelet makes them (a Secret
or ConfigMap volume: files behind `..data` symlinks, mode defaultMode, group fsGroup; an
emptyDir: group fsGroup, setgid), its init containers run, then its container: the args with
$(VAR) expanded from its env (pod IP = the namespace's address), as runAsUser:runAsGroup, in
the namespace. Volume paths are mapped to folders here. One deviation: cluster DNS does not
exist here, so a Service name in an arg (the workers' --router) is replaced by the router
pod's address. Then every readiness and liveness probe must pass, `pdserve generate --verify`
must get the model's tokens over ucx/tcp between the namespaces, `pdserve status` must list the
workers at their pod IPs, and each scrape annotation must serve /metrics.

Exit 77 (skip) where network namespaces cannot be made. Usage: k8s_pods_test.py PDSERVE ROOT
"""
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8s_check  # noqa: E402  (render, env_of, expanded_args)

PREFIX, SUBNET = "pdserve-k8s", "10.213.9"


def sh(*argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def netns_hosts(root, *args):
    env = {**os.environ, "PDSERVE_NETNS_PREFIX": PREFIX, "PDSERVE_NETNS_SUBNET": SUBNET}
    return sh("bash", os.path.join(root, "scripts/netns-hosts.sh"), *args, env=env)


def stop_leftovers():
    """Processes a killed earlier run left in this test's namespaces (by pid, nothing else)."""
    for ns in sh("ip", "netns", "list").stdout.split():
        if ns.startswith(PREFIX + "-h"):
            for pid in sh("ip", "netns", "pids", ns).stdout.split():
                os.kill(int(pid), signal.SIGKILL)


def cannot_run():
    if os.geteuid() != 0:
        return "needs root (network namespaces, and running pods as uid 10001)"
    for tool in ("ip", "setpriv"):
        if not shutil.which(tool):
            return f"no `{tool}`"
    if sh("ip", "netns", "add", PREFIX + "-probe").returncode != 0:
        return "cannot create a network namespace"
    sh("ip", "netns", "delete", PREFIX + "-probe")
    return ""


def make_volumes(pod_dir, spec):
    """{volume name: folder}, filled as the kubelet fills each kind."""
    group = spec.get("securityContext", {}).get("fsGroup", 0)
    dirs = {}
    for v in spec.get("volumes", []):
        d = os.path.join(pod_dir, v["name"])
        os.makedirs(d)
        os.chown(d, 0, group)
        if "emptyDir" in v:
            os.chmod(d, 0o2777)
        else:
            if "secret" in v:
                # Without kubectl nothing rendered the secretGenerator: one secret for all pods.
                data = SECRETS.setdefault(v["secret"]["secretName"],
                                          {"cluster.secret": os.urandom(32).hex() + "\n"})
                mode = v["secret"].get("defaultMode", 0o644)
            else:
                data = CONFIGMAPS[v["configMap"]["name"]]
                mode = v["configMap"].get("defaultMode", 0o644)
            os.makedirs(os.path.join(d, "..data"))
            for key, text in data.items():
                path = os.path.join(d, "..data", key)
                with open(path, "w") as f:
                    f.write(text)
                os.chown(path, 0, group)
                os.chmod(path, mode | (0o040 if group else 0))
                os.symlink(os.path.join("..data", key), os.path.join(d, key))
        dirs[v["name"]] = d
    return dirs


def mapped(args, mounts):
    """Container paths -> folders here, in one pass (a folder here may itself be under a mount
    path such as /tmp), longest mount path first, only where a path starts."""
    alternatives = "|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w./-])({alternatives})/")
    return [pattern.sub(lambda m: mounts[m.group(1)] + "/", a) for a in args]


def probe(ns, host, port, path):
    """True if an HTTP GET of `path` (a tcpSocket probe: path None) passes, from namespace ns."""
    if path:
        code = ("import urllib.request,sys; r=urllib.request.urlopen('http://%s:%d%s', timeout=2);"
                "sys.exit(0 if 200 <= r.status < 400 else 1)" % (host, port, path))
    else:
        code = "import socket; socket.create_connection(('%s', %d), timeout=2).close()" % (host, port)
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", code).returncode == 0


def main():
    pdserve, root = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if why := cannot_run():
        print(f"SKIP: {why}")
        return 77
    objs = k8s_check.render(os.path.join(root, "deploy/k8s"))["base"]
    global CONFIGMAPS, SECRETS
    CONFIGMAPS = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    SECRETS = {o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
               for o in objs if o["kind"] == "Secret"}
    services = [o["metadata"]["name"] for o in objs if o["kind"] == "Service"]
    order = {"router": 0, "prefill": 1, "decode": 2}
    deploys = sorted((o for o in objs if o["kind"] == "Deployment"),
                     key=lambda o: order[o["spec"]["template"]["spec"]["containers"][0]["args"][0]])
    stop_leftovers()
    up = netns_hosts(root, "up", str(len(deploys) + 1))
    if up.returncode != 0:
        print(f"netns-hosts.sh up failed: {up.stderr}")
        return 1
    hosts = list(zip(up.stdout.split()[0::2], up.stdout.split()[1::2]))
    client_ns = hosts[-1][0]
    work = tempfile.mkdtemp(prefix="pdserve-k8s-")
    os.chmod(work, 0o755)
    procs, probes, ok, router = [], [], True, None
    try:
        for (ns, ip), d in zip(hosts, deploys):
            name, spec = d["metadata"]["name"], d["spec"]["template"]["spec"]
            sec = spec["securityContext"]
            user = [f"--reuid={sec['runAsUser']}", f"--regid={sec['runAsGroup']}", "--clear-groups"]
            vols = make_volumes(os.path.join(work, name), spec)
            for init in spec.get("initContainers", []):
                mounts = {m["mountPath"]: vols[m["name"]] for m in init.get("volumeMounts", [])}
                r = sh("setpriv", *user, "--", *mapped(init["command"], mounts))
                print(f"{name}: init container {init['name']}: exit {r.returncode} {r.stderr.strip()}")
                ok &= r.returncode == 0
            c = spec["containers"][0]
            k8s_check.FAKE.update({"status.podIP": ip, "metadata.name": name + "-0"})
            env = k8s_check.env_of(name, c, CONFIGMAPS)
            args = k8s_check.expanded_args(name, c, env)
            for s in services:  # no cluster DNS here: the Service is the router pod
                args = [a.replace(f"={s}:", f"={hosts[0][1]}:") for a in args]
            mounts = {m["mountPath"]: vols[m["name"]] for m in c.get("volumeMounts", [])}
            args = mapped(args, mounts)
            print(f"{name} in {ns} ({ip}): pdserve {' '.join(args)}")
            log = open(os.path.join(work, name + ".log"), "w")
            procs.append((name, subprocess.Popen(
                ["ip", "netns", "exec", ns, "setpriv", *user, "--", pdserve, *args],
                env={"PATH": os.environ["PATH"], **env}, stdout=log, stderr=subprocess.STDOUT)))
            # Probes as the kubelet sends them: to the pod IP, named ports resolved.
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for kind in ("readinessProbe", "livenessProbe"):
                p = c[kind]
                target = p.get("httpGet") or p.get("tcpSocket")
                probes.append((name, kind, ip, ports.get(target["port"], target["port"]),
                               p.get("httpGet", {}).get("path")))
            ann = d["spec"]["template"]["metadata"]["annotations"]
            probes.append((name, "scrape", ip, int(ann["prometheus.io/port"]),
                           ann["prometheus.io/path"]))
            if c["args"][0] == "router":  # the client API: its --port
                router = ip + ":" + next(a for a in args if a.startswith("--port=")).split("=")[1]
        # Wait for every probe (the router's /ready only passes once both workers registered).
        pending, deadline = probes, time.time() + 90
        while ok and pending and time.time() < deadline:
            if any(proc.poll() is not None for _, proc in procs):
                print("FAIL: a pod's process exited")
                ok = False
            pending = [q for q in pending if not probe(client_ns, *q[2:])]
            time.sleep(0.5)
        for q in pending:
            print(f"FAIL: {q[0]} {q[1]} never passed (port {q[3]}, path {q[4]})")
            ok = False
        if ok:
            print("every readiness, liveness and scrape probe passed")
            gen = sh("ip", "netns", "exec", client_ns, pdserve, "generate", "--endpoint", router,
                     "--prompt-len", "100", "--max-tokens", "20", "--verify")
            print(gen.stdout[-600:], gen.stderr[-600:])
            ok &= gen.returncode == 0 and "verify: OK" in gen.stdout and "ucx" in gen.stdout
            st = sh("ip", "netns", "exec", client_ns, pdserve, "status", "--endpoint", router)
            print(st.stdout)
            for ip in (hosts[1][1], hosts[2][1]):
                if f"{ip}:" not in st.stdout:
                    print(f"FAIL: pdserve status does not list a worker at {ip}")
                    ok = False
    finally:
        for name, proc in procs:  # SIGTERM as the kubelet sends it; workers drain
            proc.send_signal(signal.SIGTERM)
        for name, proc in procs:
            try:
                code = proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
                ok = False
                print(f"FAIL: {name} did not stop within its terminationGracePeriodSeconds")
            if not ok or code != 0:
                print(f"--- {name} (exit {code}):\n" + open(os.path.join(work, name + ".log")).read()[-3000:])
        stop_leftovers()
        netns_hosts(root, "down")
        shutil.rmtree(work, ignore_errors=True)
    print("k8s pods: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
