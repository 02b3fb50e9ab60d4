#!/usr/bin/env python3
"""Offline checks of deploy/k8s/ and deploy/docker/ (ctest k8s_validate, run by
k8s_validate_test.sh inside a venv that has the PyPI package kubernetes-validate).

1. Schemas: every object of every kustomization (base and overlays/*, rendered by `kubectl
   kustomize`; without kubectl, the base's files one by one) validates in strict mode (an
   unknown or misspelled field fails) against the oldest and newest Kubernetes schemas that
   kubernetes-validate bundles. The schemas ship inside the package: no network at test time.
2. Command lines: every pdserve container's args, with $(VAR) expanded as the kubelet would,
   use a subcommand and flags that `pdserve SUB --help` of the binary under test lists, with
   values of the type it gives.
3. Wiring that a schema cannot see: ports, probes, scrape annotations, the router's Service,
   the secret file, the model file, one transfer backend, GPUs in the GPU overlay.
4. The Dockerfile: build packages are install-deps.sh's, runtime packages cover `ldd pdserve`.

Usage: k8s_check.py PDSERVE_BINARY REPO_ROOT. Prints every problem; exit 1 if any.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

FAKE = {"status.podIP": "10.244.1.7", "metadata.name": "pod-a1b2c", "metadata.namespace": "ns"}
MODEL_KEYS = {"preset", "block_size", "dtype", "num_layers", "max_model_len"}
WORKERS = ("prefill", "decode")
problems = []
RENDERED = bool(shutil.which("kubectl"))  # else the base's files are checked one by one


def fail(where, what):
    problems.append(f"{where}: {what}")


def render(k8s_dir):
    """{name: [objects]} per kustomization; plain files when kubectl is missing."""
    out = {}
    kubectl = RENDERED and shutil.which("kubectl")
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "k8s")
        shutil.copytree(k8s_dir, copy)
        secret = os.path.join(copy, "base", "cluster.secret")
        if not os.path.exists(secret):  # git-ignored: the user makes it (README)
            with open(secret, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        dirs = ["base"] + sorted("overlays/" + d for d in os.listdir(os.path.join(copy, "overlays")))
        for d in dirs:
            if kubectl:
                r = subprocess.run([kubectl, "kustomize", os.path.join(copy, d)],
                                   capture_output=True, text=True, env={**os.environ, "HOME": tmp})
                if r.returncode != 0:
                    fail(d, f"kubectl kustomize failed: {r.stderr.strip()}")
                    continue
                out[d] = [o for o in yaml.safe_load_all(r.stdout) if o]
            elif d == "base":
                print("note: no kubectl: base files checked one by one, overlays not rendered")
                out[d] = [o for f in sorted(os.listdir(os.path.join(copy, d)))
                          if f.endswith(".yaml") and f != "kustomization.yaml"
                          for o in yaml.safe_load_all(open(os.path.join(copy, d, f))) if o]
    return out


def validate_schemas(name, objects):
    versions = kubernetes_validate.utils.all_versions()
    for obj in objects:
        for version in (versions[0], versions[-1]):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                fail(f"{name} {obj.get('kind')}/{obj['metadata'].get('name')}",
                     f"schema {version}: {path}: {e.message}")
            except Exception as e:  # unknown kind or apiVersion
                fail(f"{name} {obj.get('kind')}", f"schema {version}: {e}")


# "  --listen,--host TEXT=127.0.0.1", "  --compute TEXT:{real,roofline,cuda}=real", "  --zero-copy   ..."
HELP_LINE = re.compile(r"^  ((?:-\w,)?--[\w-]+(?:,--[\w-]+)*)(?: ([A-Z]+)([:=]\S*)?)?(?:\s|$)")


def pdserve_options(pdserve, sub, cache={}):
    """{flag: (canonical, type or None for a flag, choices)} from `pdserve SUB --help`."""
    if sub not in cache:
        r = subprocess.run([pdserve, sub, "--help"], capture_output=True, text=True)
        opts = {}
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                m = HELP_LINE.match(line)
                if not m:
                    continue
                names = [n for n in m.group(1).split(",") if n.startswith("--")]
                choices = re.match(r":\{(.*?)\}", m.group(3) or "")
                for n in names:
                    opts[n] = (names[0], m.group(2), choices.group(1).split(",") if choices else None)
        cache[sub] = opts
    return cache[sub]


def check_value(where, flag, kind, choices, value):
    try:
        if kind == "INT":
            int(value)
        elif kind == "UINT" and int(value) < 0:
            raise ValueError
        elif kind == "FLOAT":
            float(value)
    except ValueError:
        fail(where, f"{flag}={value}: not a {kind}")
    if choices and value not in choices:
        fail(where, f"{flag}={value}: not one of {choices}")


def env_of(where, container, configmaps):
    env = {}
    for e in container.get("env", []):
        src = e.get("valueFrom", {})
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            env[e["name"]] = FAKE.get(path) or fail(where, f"env {e['name']}: field {path}")
        elif "configMapKeyRef" in src:
            ref = src["configMapKeyRef"]
            value = configmaps.get(ref["name"], {}).get(ref["key"])
            if value is None:
                fail(where, f"env {e['name']}: no key {ref['key']} in ConfigMap {ref['name']}")
            env[e["name"]] = value
        else:
            fail(where, f"env {e['name']}: unsupported source {src}")
    return env


def expanded_args(where, container, env):
    """The container's args with $(VAR) replaced from its env, as the kubelet does."""
    def expand(arg):
        def one(m):
            if m.group(1) not in env:
                fail(where, f"{arg}: $({m.group(1)}) is not in the container's env")
            return str(env.get(m.group(1)))
        return re.sub(r"\$\((\w+)\)", one, arg)
    return [expand(a) for a in container.get("args", [])]


def parse_args(where, pdserve, container, env):
    """(subcommand, {canonical flag: value}) after $(VAR) expansion, each arg checked."""
    args = expanded_args(where, container, env)
    if container.get("command") != ["pdserve"] or not args:
        fail(where, "command must be [pdserve] with the subcommand as the first arg")
        return None, {}
    sub, flags = args[0], {}
    opts = pdserve_options(pdserve, sub)
    if not opts:
        fail(where, f"`pdserve {sub} --help` failed: no such subcommand?")
        return sub, {}
    for arg in args[1:]:
        name, eq, value = arg.partition("=")
        if name not in opts:
            fail(where, f"{arg}: `pdserve {sub} --help` has no {name}")
            continue
        canonical, kind, choices = opts[name]
        if kind and not eq:
            fail(where, f"{arg}: takes a value; write {name}=VALUE (one list item per flag)")
        elif not kind and eq:
            fail(where, f"{arg}: {name} is a flag and takes no value")
        elif kind:
            check_value(where, name, kind, choices, value)
        flags[canonical] = value
    return sub, flags


def num(value):
    """An int, or None for a missing or malformed value (reported by check_value already)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def port_number(container, port):
    for p in container.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    return None


def check_pod(where, deploy, pdserve, configmaps, gpu):
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    sec = spec.get("securityContext", {})
    if not sec.get("runAsNonRoot") or not sec.get("runAsUser"):
        fail(where, "the pod must set runAsNonRoot and a non-zero runAsUser")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec.get("initContainers", []) + spec["containers"]:
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(kind, {})):
                fail(f"{where}/{c['name']}", f"resources.{kind} needs cpu and memory")
    c = spec["containers"][0]
    cwhere = f"{where}/{c['name']}"
    env = env_of(cwhere, c, configmaps)
    sub, flags = parse_args(cwhere, pdserve, c, env)
    if sub is None:
        return None
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}

    def volume_of(path):
        return volumes.get(mounts.get(os.path.dirname(path)), {})

    # Ports: each containerPort is one the process binds, each probe and annotation hits one.
    metrics_flag = "--http-port" if sub == "router" else "--metrics-port"
    bound = {num(flags.get(f)) for f in ("--port", "--internal-port", "--http-port", "--metrics-port")}
    bound.discard(None)
    for p in c.get("ports", []):
        if p["containerPort"] not in bound:
            fail(cwhere, f"containerPort {p['containerPort']} is no port flag's value {sorted(bound)}")
    ann = pod["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics":
        fail(where, "needs prometheus.io/scrape \"true\" and prometheus.io/path /metrics")
    if str(flags.get(metrics_flag)) != ann.get("prometheus.io/port"):
        fail(where, f"prometheus.io/port {ann.get('prometheus.io/port')} is not {metrics_flag}")
    for probe in ("livenessProbe", "readinessProbe"):
        p = c.get(probe, {})
        target = p.get("httpGet") or p.get("tcpSocket")
        if not target or port_number(c, target["port"]) is None:
            fail(cwhere, f"{probe} must target a declared containerPort")
        elif "httpGet" in p:
            want = {"router": ("/health", "/ready")[probe == "readinessProbe"]}.get(sub, "/health")
            if p["httpGet"]["path"] != want or port_number(c, target["port"]) != num(flags.get(metrics_flag)):
                fail(cwhere, f"{probe} must GET {want} on the {metrics_flag} port")
    # Addresses: workers bind and register the pod IP; nothing internal on 0.0.0.0.
    ip = FAKE["status.podIP"]
    checks = {"--advertise": ip, "--internal-host": ip} if sub == "router" else \
        {"--listen": ip, "--advertise": ip, "--worker-id": FAKE["metadata.name"]}
    for flag, want in checks.items():
        if flags.get(flag) != want:
            fail(cwhere, f"{flag} must come from the downward API ({want}), not {flags.get(flag)}")
    # The secret: a Secret volume's files are root-owned symlinks, which pdserve refuses.
    secret = flags.get("--cluster-secret-file")
    if not secret or "emptyDir" not in volume_of(secret):
        fail(cwhere, "--cluster-secret-file must be in an emptyDir (filled by an initContainer)")
    elif not any(secret in i.get("command", []) and "0600" in i.get("command", [])
                 for i in spec.get("initContainers", [])):
        fail(cwhere, f"no initContainer installs {secret} with mode 0600")
    # The model: one ConfigMap key with a JSON object of known keys.
    config = flags.get("--config")
    cm = volume_of(config or "/").get("configMap", {}).get("name")
    text = configmaps.get(cm, {}).get(os.path.basename(config or ""))
    if text is None:
        fail(cwhere, f"--config {config} is not a key of a mounted ConfigMap")
    elif not set(json.loads(text)) <= MODEL_KEYS:
        fail(cwhere, f"{config}: keys beyond {sorted(MODEL_KEYS)}")
    if sub in WORKERS:
        gpus = num(c["resources"].get("limits", {}).get("nvidia.com/gpu", 0)) or 0
        if gpu != (gpus > 0) or gpu != (flags.get("--compute") == "cuda"):
            fail(cwhere, f"GPU variant {gpu}: nvidia.com/gpu {gpus}, --compute {flags.get('--compute')}")
        if flags.get("--transfer", "").startswith("ucx") and "UCX_TLS" not in env:
            fail(cwhere, "ucx without UCX_TLS: UCX would try every transport")
    return sub, flags, c, pod["metadata"]["labels"], (cm, config)


def check_rendering(name, objs, pdserve):
    validate_schemas(name, objs)
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    pods = {}
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            r = check_pod(f"{name} {o['metadata']['name']}", o, pdserve, configmaps,
                          gpu=name.endswith("gpu"))
            if r:
                pods[r[0]] = r[1:]
    if set(pods) != {"router", *WORKERS}:
        fail(name, f"need one router, prefill and decode workload, found {sorted(pods)}")
        return
    r_flags, r_container, r_labels, r_model = pods["router"]
    for role in WORKERS:
        flags, _, _, model = pods[role]
        where = f"{name} {role}"
        if model != r_model or flags.get("--transfer") != r_flags.get("--transfer"):
            fail(where, "model ConfigMap/file and --transfer must be the router's")
        host, _, port = flags.get("--router", "").rpartition(":")
        svc = services.get(host.split(".")[0])
        sel = (svc or {}).get("spec", {}).get("selector", {})
        if not svc or not sel or any(r_labels.get(k) != v for k, v in sel.items()):
            fail(where, f"--router {host}: no Service of that name selects the router")
            continue
        if not svc["spec"].get("publishNotReadyAddresses"):
            fail(where, f"Service {host} needs publishNotReadyAddresses (router not ready before workers)")
        target = next((p.get("targetPort", p["port"]) for p in svc["spec"]["ports"]
                       if str(p["port"]) == port), None)
        if target is None or port_number(r_container, target) != num(r_flags.get("--internal-port")):
            fail(where, f"--router port {port} does not reach the router's --internal-port")
    if RENDERED:  # kustomize's secretGenerator made the Secret: every pod must name it
        secrets = {o["metadata"]["name"] for o in objs if o["kind"] == "Secret"}
        for o in objs:
            for v in o.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
                if "secret" in v and v["secret"]["secretName"] not in secrets:
                    fail(f"{name} {o['metadata']['name']}", f"no Secret {v['secret']['secretName']}")


def check_dockerfile(root, pdserve, run_as):
    text = open(os.path.join(root, "deploy/docker/Dockerfile")).read().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    if len(stages) != 2:
        return fail("Dockerfile", "expected a build and a runtime stage")

    def apt(stage):
        m = re.search(r"apt-get install ([^&]*)", stage)
        return {w for w in (m.group(1).split() if m else []) if not w.startswith("-")}
    deps = open(os.path.join(root, "scripts/install-deps.sh")).read()
    for pkg in sorted(apt(stages[0])):
        if not re.search(rf"(?<![\w+-]){re.escape(pkg)}(?![\w+-])", deps):
            fail("Dockerfile build stage", f"{pkg} is not in scripts/install-deps.sh")
    user = re.search(r"^USER (\d+)", stages[1], re.M)
    if not user or int(user.group(1)) == 0 or int(user.group(1)) not in run_as:
        fail("Dockerfile", f"USER must be the manifests' non-zero runAsUser {sorted(run_as)}")
    if not shutil.which("dpkg"):
        return print("note: no dpkg: runtime packages not compared with ldd")
    runtime = apt(stages[1])
    ldd = subprocess.run(["ldd", pdserve], capture_output=True, text=True).stdout
    for lib in re.findall(r"=> (/\S+)", ldd):
        for path in (os.path.realpath(lib), "/usr" + lib, lib):  # merged /usr: dpkg knows one
            r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if r.returncode == 0:
                break
        if r.returncode != 0:
            print(f"note: {lib} is in no Debian package (CUDA's: the image builds without CUDA)")
        elif (pkg := r.stdout.split(":")[0]) not in runtime:
            fail("Dockerfile runtime stage", f"{pkg} ({lib}) is not installed")


def main():
    pdserve, root = sys.argv[1], sys.argv[2]
    renderings = render(os.path.join(root, "deploy/k8s"))
    run_as = set()
    for name, objs in renderings.items():
        print(f"{name}: {len(objs)} objects: " + ", ".join(
            f"{o['kind']}/{o['metadata']['name']}" for o in objs))
        try:
            check_rendering(name, objs, pdserve)
        except Exception as e:  # a manifest too broken for the checks' assumptions
            fail(name, f"check stopped: {e!r}")
        run_as |= {o["spec"]["template"]["spec"].get("securityContext", {}).get("runAsUser")
                   for o in objs if o["kind"] == "Deployment"}
    check_dockerfile(root, pdserve, run_as)
    for p in problems:
        print("FAIL", p)
    print(f"k8s_check: {len(renderings)} renderings, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
