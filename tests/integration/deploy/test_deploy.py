"""test_deploy.py - the Kubernetes manifests in deploy/ (Kustomize base, etcd, regional overlays).

Every overlay is rendered offline with `kubectl kustomize`, and then:
- every object is validated against the Kubernetes API's schemas (validator/validate.js: the npm
  package kubernetes-models, plus a strict unknown-field check; docs/deploy-aks.md says why);
- the configuration in the cutover ConfigMap passes the real `cutover --check` ($CUTOVER_BIN), with
  the Key Vault files it names replaced by stand-ins made here with openssl (--check loads every
  listener, admin and pool certificate; the paths are rewritten from /mnt/secrets/cutover/ to a
  temp directory holding files of the same names, and nothing else is changed);
- the cross-references hold (check_objects below: ports, probes, mounts, selectors, PDBs,
  the shutdown timeline, the internal load balancer, the fleet store's members).
Each check is also shown to fail: a mutated copy of a rendered overlay must be reported.
Every kustomization also renders into the same objects with Debian 12's kubectl 1.20 (kustomize
v2.0.3) and with a newer kubectl (kustomize v5) when the machine has one.
Needs kubectl (any: Debian's kubernetes-client or newer), apt-get and dpkg (Debian's kubectl when
/usr/bin/kubectl is another), node, python3-yaml, openssl; scripts/deps.sh test installs them
and the validator's npm package.
"""
import copy
import glob
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile

import harness

try:  # python3-yaml (scripts/deps.sh test); imported here so that run.py's discovery never fails
    import yaml
except ImportError:  # the tests then fail saying so
    yaml = None

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
VALIDATOR = os.path.join(HERE, "validator", "validate.js")
SECRETS = "/mnt/secrets/cutover/"
# Keys in which an overlay's configuration may differ from base/cutover.json.
SITE_KEYS = {"cluster", "region", "trusted_proxies", "control.store.prefix", "control.store.user"}
REGIONS = {"westeurope", "eastus2", "southeastasia"}


def overlays():
    dirs = sorted(os.path.dirname(p) for p in
                  glob.glob(os.path.join(DEPLOY, "overlays", "*", "*", "kustomization.yaml")))
    assert len(dirs) >= 4, "expected at least 4 overlays, found %r" % dirs
    return dirs


def kubectl_version(kubectl):
    """kubectl's client gitVersion ("v1.20.2")."""
    r = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "%s is missing or broken (scripts/deps.sh test): %s" % (kubectl, r.stderr)
    return json.loads(r.stdout)["clientVersion"]["gitVersion"]


def is_debian_kubectl(path):
    """Whether Debian's kubernetes-client package owns the file behind path."""
    r = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and any(line.split(":")[0] == "kubernetes-client" for line in r.stdout.splitlines())


def debian_kubectl():
    """Debian 12's kubectl (kubernetes-client: kubectl 1.20, kustomize v2.0.3), the project's declared
    dependency: /usr/bin/kubectl when that package installed it, else the package's binary taken out
    of `apt-get download kubernetes-client` with dpkg -x into this test's work directory."""
    if os.path.exists("/usr/bin/kubectl") and is_debian_kubectl("/usr/bin/kubectl"):
        path = "/usr/bin/kubectl"
    else:
        d = tempfile.mkdtemp(prefix="kubernetes-client-", dir=harness.workdir())
        try:
            r = subprocess.run(["apt-get", "download", "kubernetes-client"], cwd=d, capture_output=True,
                               text=True, timeout=300)
            err = r.stderr if r.returncode != 0 else None
        except (OSError, subprocess.TimeoutExpired) as e:
            err = str(e)
        debs = glob.glob(os.path.join(d, "kubernetes-client_*.deb"))
        assert err is None and len(debs) == 1, (
            "cannot get Debian's kubernetes-client (kubectl 1.20, kustomize v2.0.3), which the overlays "
            "must render with: /usr/bin/kubectl is not from that package and `apt-get download "
            "kubernetes-client` failed in %s (needs apt sources with Debian 12 main, and the network): %s"
            % (d, err if err is not None else "no .deb came out: %r" % os.listdir(d)))
        root = os.path.join(d, "root")
        r = subprocess.run(["dpkg", "-x", debs[0], root], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "dpkg -x %s failed: %s" % (debs[0], r.stderr)
        path = os.path.join(root, "usr", "bin", "kubectl")
        assert os.access(path, os.X_OK), "%s has no usr/bin/kubectl" % debs[0]
    v = kubectl_version(path)
    assert v.startswith("v1.20."), "%s is kubectl %s; Debian 12's kubernetes-client is kubectl 1.20" % (path, v)
    return path


def render(d, kubectl="kubectl"):
    """The objects `kubectl kustomize d` renders (kustomize v5 warns on stderr about the v2-era
    fields the kustomizations use: ignored)."""
    assert yaml is not None, "python3-yaml is not installed (scripts/deps.sh test)"
    r = subprocess.run([kubectl, "kustomize", d], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "%s kustomize %s failed: %s" % (kubectl, d, r.stderr)
    return [o for o in yaml.safe_load_all(r.stdout) if o]


def find(objs, kind, name=None):
    # A generated ConfigMap's name carries Kustomize's hash suffix (name-<10 characters>).
    got = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name
                                                    or re.fullmatch(re.escape(name) + "-[a-z0-9]{10}", o["metadata"]["name"]))]
    assert len(got) == 1, "expected one %s %s, found %d" % (kind, name, len(got))
    return got[0]


def config_of(objs):
    cm = find(objs, "ConfigMap", "cutover-config")
    return json.loads(cm["data"]["cutover.json"])


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        p = prefix + k
        if isinstance(v, dict):
            out.update(flat(v, p + "."))
        else:
            out[p] = v
    return out


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def tls_paths(cfg):
    """Every certificate, key, CA and secret file path the configuration names."""
    paths = []
    for lst in cfg["listeners"]:
        for c in lst.get("tls", {}).get("certificates", []):
            paths += list(c.values())
    for c in cfg["admin"]["tls"]["certificates"]:
        paths += list(c.values())
    paths.append(cfg["admin"]["tls"]["client_ca"])
    for r in cfg["routes"]:
        for p in r["pools"].values():
            t = p.get("tls")
            if t:
                paths.append(t["ca"])
                paths += list(t.get("client_certificate", {}).values())
    st = cfg["control"]["store"]
    paths.append(st["tls"]["ca"])
    paths += list(st["tls"]["client_certificate"].values())
    paths.append(st["password_file"])
    return paths


def spc_aliases(spc):
    objs = yaml.safe_load(spc["spec"]["parameters"]["objects"])["array"]
    return {yaml.safe_load(o).get("objectAlias") or yaml.safe_load(o)["objectName"] for o in objs}


def check_objects(objs):
    """The cross-reference checks. Returns a list of problems (empty: all hold)."""
    probs = []

    def want(cond, msg):
        if not cond:
            probs.append(msg)

    cfg = config_of(objs)
    dep = find(objs, "Deployment", "cutover")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (c,) = [x for x in spec["containers"] if x["name"] == "cutover"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    data_port = port_of(cfg["listeners"][0]["address"])
    admin_port = port_of(cfg["admin"]["address"])
    metrics_port = port_of(cfg["metrics"]["address"])

    # Ports: container ports against the configuration's listeners.
    want(ports.get("https") == data_port, "container port https %s != listener %s" % (ports.get("https"), data_port))
    want(ports.get("admin") == admin_port, "container port admin %s != admin.address %s" % (ports.get("admin"), admin_port))
    want(ports.get("metrics") == metrics_port,
         "container port metrics %s != metrics.address %s" % (ports.get("metrics"), metrics_port))

    def resolve(port):
        return ports.get(port) if isinstance(port, str) else port

    # Probes: /readyz and /healthz are served by the metrics listener (configuration.md).
    rp, lp = c.get("readinessProbe", {}).get("httpGet", {}), c.get("livenessProbe", {}).get("httpGet", {})
    want(rp.get("path") == "/readyz" and resolve(rp.get("port")) == metrics_port,
         "readinessProbe must be GET /readyz on the metrics port %d: %r" % (metrics_port, rp))
    want(lp.get("path") == "/healthz" and resolve(lp.get("port")) == metrics_port,
         "livenessProbe must be GET /healthz on the metrics port %d: %r" % (metrics_port, lp))

    # Services: selectors and target ports.
    pod_labels = pod["metadata"]["labels"]
    want(labels_match(dep["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selector does not match its pods")
    svc = find(objs, "Service", "cutover")
    adm = find(objs, "Service", "cutover-admin")
    one = find(objs, "Service", "cutover-control")
    for s, target in ((svc, data_port), (adm, admin_port), (one, admin_port)):
        name = s["metadata"]["name"]
        want(labels_match(s["spec"].get("selector"), pod_labels), "Service %s selects no cutover pod" % name)
        for p in s["spec"]["ports"]:
            want(resolve(p.get("targetPort", p["port"])) == target,
                 "Service %s targetPort %r is not port %d" % (name, p.get("targetPort"), target))
    want(adm["spec"].get("clusterIP") == "None", "Service cutover-admin must be headless")
    # the fleet's one address (pipelines): a plain ClusterIP, never headless nor exposed
    want(one["spec"].get("type", "ClusterIP") == "ClusterIP" and
         one["spec"].get("clusterIP") != "None",
         "Service cutover-control must be one ClusterIP address (a shift through a headless name "
         "reaches every replica)")

    # No public exposure: every LoadBalancer is internal, any fixed address is private.
    for s in (o for o in objs if o["kind"] == "Service"):
        ann = s["metadata"].get("annotations", {})
        name = s["metadata"]["name"]
        if s["spec"].get("type") == "LoadBalancer":
            want(ann.get("service.beta.kubernetes.io/azure-load-balancer-internal") == "true",
                 "Service %s is a LoadBalancer without the internal annotation" % name)
        for k in ("service.beta.kubernetes.io/azure-load-balancer-ipv4",):
            if k in ann:
                want(ipaddress.ip_address(ann[k]).is_private, "Service %s has a public address %s" % (name, ann[k]))
        if s["spec"].get("loadBalancerIP"):
            want(ipaddress.ip_address(s["spec"]["loadBalancerIP"]).is_private, "Service %s public loadBalancerIP" % name)
        want(not any("pip" in k for k in ann), "Service %s names a public IP (%r)" % (name, ann))
        want(s["spec"].get("type") != "NodePort", "Service %s is a NodePort" % name)

    # PodDisruptionBudgets: select the pods, leave room for one disruption.
    sts = find(objs, "StatefulSet", "etcd")
    for pdb_name, wl in (("cutover", dep), ("etcd", sts)):
        pdb = find(objs, "PodDisruptionBudget", pdb_name)
        want(labels_match(pdb["spec"]["selector"]["matchLabels"], wl["spec"]["template"]["metadata"]["labels"]),
             "PDB %s selects no pod of its workload" % pdb_name)
        n = wl["spec"]["replicas"]
        m = pdb["spec"].get("minAvailable")
        want(isinstance(m, int) and 0 < m < n, "PDB %s minAvailable %r must be in 1..%d" % (pdb_name, m, n - 1))
    want(find(objs, "PodDisruptionBudget", "etcd")["spec"]["minAvailable"] > sts["spec"]["replicas"] // 2,
         "the etcd PDB must keep a quorum")

    # Shutdown timeline: preStop sleep + shutdown_delay + drain must fit in the grace period.
    t = cfg.get("timeouts", {})
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    need = pre + (t.get("shutdown_delay_ms", 0) + t.get("drain_ms", 25000)) / 1000.0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    want(pre > 0, "no preStop sleep")
    want(grace > need, "terminationGracePeriodSeconds %s <= preStop %s + shutdown_delay + drain = %s" % (grace, pre, need))

    # Security context.
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    want(sc.get("readOnlyRootFilesystem") is True, "root file system not read-only")
    want(sc.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    want(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities not all dropped")
    want((sc.get("runAsNonRoot") or psc.get("runAsNonRoot")) is True, "runAsNonRoot not set")
    want(sc.get("runAsUser", psc.get("runAsUser")) == 65532, "not uid 65532")
    want((sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
         "seccomp is not RuntimeDefault")

    # Volume mounts against the paths in the configuration.
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"].rstrip("/"): m for m in c["volumeMounts"]}

    def mount_for(path):
        best = None
        for mp in mounts:
            if path.startswith(mp + "/") and (best is None or len(mp) > len(best)):
                best = mp
        return best

    for key in ("socket", "state_file", "audit_file"):
        path = cfg["control"][key]
        mp = mount_for(path)
        ok = mp is not None and not mounts[mp].get("readOnly") and "emptyDir" in vols[mounts[mp]["name"]]
        want(ok, "control.%s %s is not on a writable emptyDir mount" % (key, path))
    for path in tls_paths(cfg):
        mp = mount_for(path)
        v = vols[mounts[mp]["name"]] if mp else {}
        if not (mp and "csi" in v):
            probs.append("%s is not on a CSI (Key Vault) mount" % path)
            continue
        want(v["csi"]["driver"] == "secrets-store.csi.k8s.io", "%s: not the Secrets Store CSI driver" % path)
        spc_name = v["csi"]["volumeAttributes"]["secretProviderClass"]
        spc = find(objs, "SecretProviderClass", spc_name)
        rel = path[len(mp) + 1:]
        want(rel in spc_aliases(spc), "%s: %s is not an object of SecretProviderClass %s" % (path, rel, spc_name))
    args = c.get("args", [])
    cfg_path = args[args.index("-c") + 1] if "-c" in args else None
    mp = mount_for(cfg_path or "")
    cm_vol = vols[mounts[mp]["name"]] if mp else {}
    want(mp is not None and cm_vol.get("configMap", {}).get("name") == find(objs, "ConfigMap", "cutover-config")["metadata"]["name"]
         and cfg_path[len(mp) + 1:] in find(objs, "ConfigMap", "cutover-config")["data"],
         "-c %s is not the ConfigMap's file" % cfg_path)

    # The replica's name.
    env = {e["name"]: e for e in c.get("env", [])}
    want(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
         and "replica" not in cfg["control"]["store"], "POD_NAME must come from metadata.name (control.store's replica)")

    # Topology spread across zones and nodes.
    keys = {t["topologyKey"]: t for t in spec.get("topologySpreadConstraints", [])
            if labels_match(t["labelSelector"]["matchLabels"], pod_labels)}
    want({"topology.kubernetes.io/zone", "kubernetes.io/hostname"} <= set(keys), "no spread across zones and nodes")
    want(keys.get("topology.kubernetes.io/zone", {}).get("whenUnsatisfiable") == "DoNotSchedule",
         "the zone spread must be DoNotSchedule")

    # Scrape annotations.
    ann = pod["metadata"].get("annotations", {})
    want(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(metrics_port)
         and ann.get("prometheus.io/path") == "/metrics", "prometheus.io annotations do not point at %d/metrics" % metrics_port)
    dd = ann.get("ad.datadoghq.com/%s.checks" % c["name"])
    try:
        inst = json.loads(dd)["openmetrics"]["instances"][0]["openmetrics_endpoint"]
        want(inst.endswith(":%d/metrics" % metrics_port), "DataDog openmetrics_endpoint %s" % inst)
    except (TypeError, ValueError, KeyError, IndexError):
        probs.append("no DataDog OpenMetrics check for container %s" % c["name"])

    # NetworkPolicies against the configuration.
    nps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "NetworkPolicy"}

    def rule_ports(rule):
        return {p["port"] for p in rule.get("ports", [])}

    ing_ports = set()
    for np in nps.values():
        if labels_match(np["spec"]["podSelector"].get("matchLabels"), pod_labels):
            for rule in np["spec"].get("ingress", []):
                ing_ports |= rule_ports(rule)
    want(ing_ports == {data_port, admin_port, metrics_port},
         "NetworkPolicies open %s to cutover, not exactly its ports" % sorted(ing_ports))
    data_np = nps.get("cutover-data", {}).get("spec", {}).get("ingress", [{}])
    data_cidrs = {f["ipBlock"]["cidr"] for r in data_np for f in r.get("from", []) if "ipBlock" in f}
    want(len(data_np) == 1 and rule_ports(data_np[0]) == {data_port}
         and data_cidrs == set(cfg["trusted_proxies"]) and all("ipBlock" in f for f in data_np[0].get("from", [])),
         "the data port must be open only to the gateway subnet %s: %r" % (cfg["trusted_proxies"], data_np))
    adm_np = nps.get("cutover-admin", {}).get("spec", {}).get("ingress", [{}])
    want(len(adm_np) == 1 and rule_ports(adm_np[0]) == {admin_port} and adm_np[0].get("from"),
         "the admin port must be open only to the pipeline agents: %r" % adm_np)
    deny = nps.get("cutover-default-deny", {}).get("spec", {})
    want(set(deny.get("policyTypes", [])) == {"Ingress", "Egress"} and not deny.get("ingress") and not deny.get("egress")
         and labels_match(deny.get("podSelector", {}).get("matchLabels"), pod_labels), "no default deny for cutover")

    # The fleet store: its endpoints are the StatefulSet's members.
    st = cfg["control"]["store"]
    ns = dep["metadata"].get("namespace")
    sts_c = sts["spec"]["template"]["spec"]["containers"][0]
    client_port = {p["name"]: p["containerPort"] for p in sts_c["ports"]}.get("client")
    etcd_svc = find(objs, "Service", sts["spec"]["serviceName"])
    want(etcd_svc["spec"].get("clusterIP") == "None", "the etcd Service must be headless")
    members = ["https://%s-%d.%s.%s.svc.cluster.local:%d" % (sts["metadata"]["name"], i, etcd_svc["metadata"]["name"],
                                                             sts["metadata"].get("namespace"), client_port)
               for i in range(sts["spec"]["replicas"])]
    want(st["endpoints"] == members and sts["metadata"].get("namespace") == ns,
         "control.store.endpoints %r are not the etcd members %r" % (st["endpoints"], members))
    want(sts["spec"]["replicas"] == 3, "etcd must have three members")
    eargs = sts_c.get("args", [])
    for flag in ("--experimental-watch-progress-notify-interval=5s", "--client-cert-auth", "--peer-client-cert-auth"):
        want(flag in eargs, "etcd lacks %s" % flag)
    want(all(u.startswith("https://") for a in eargs if a.startswith(("--listen-client", "--listen-peer",
                                                                      "--advertise-client", "--initial-advertise"))
             for u in [a.split("=", 1)[1]]), "etcd client or peer URL without TLS")
    egress_etcd = [r for np in nps.values() for r in np["spec"].get("egress", [])
                   if any(labels_match(f.get("podSelector", {}).get("matchLabels"), sts["spec"]["template"]["metadata"]["labels"])
                          for f in r.get("to", []))]
    want(any(client_port in rule_ports(r) for r in egress_etcd), "no egress from cutover to etcd's client port")
    want(sts["spec"].get("volumeClaimTemplates"), "etcd has no persistent volumes")
    return probs


def test_overlays_render():
    """Every overlay renders with kubectl kustomize into the expected objects, one per region
    at least, each with its own cluster name and fleet prefix."""
    seen_regions, clusters, prefixes = set(), set(), set()
    for d in [os.path.join(DEPLOY, "base")] + overlays():
        objs = render(d)
        kinds = sorted({o["kind"] for o in objs})
        assert kinds == ["ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "PodDisruptionBudget",
                         "SecretProviderClass", "Service", "ServiceAccount", "StatefulSet"], (d, kinds)
        assert all(o["metadata"].get("namespace") == "cutover" for o in objs if o["kind"] != "Namespace"), d
        if "/overlays/" not in d:
            continue
        cfg = config_of(objs)
        region = os.path.basename(os.path.dirname(d))
        assert cfg["region"] == region, "%s: region %s" % (d, cfg["region"])
        seen_regions.add(region)
        clusters.add(cfg["cluster"])
        prefixes.add(cfg["control"]["store"]["prefix"])
    n = len(overlays())
    assert seen_regions == REGIONS, seen_regions
    assert len(clusters) == n and len(prefixes) == n, "cluster names and store prefixes must be unique per overlay"


def kustomizations():
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(DEPLOY, "**", "kustomization.yaml"),
                                                        recursive=True))


def comparable(objs):
    """{(apiVersion, kind, namespace, name): object} with what differs between kustomize versions
    and not in the objects taken out: a generated ConfigMap's hash suffix (v2.0.3 and v5 hash
    differently) becomes "<hash>" wherever the exact name is a value (so a reference that does not
    name the rendered ConfigMap still differs), and an empty metadata.labels or .annotations (v2.0.3
    leaves {} on a replaced ConfigMap; the API omits empty maps) is dropped."""
    text = json.dumps(objs)
    for o in objs:
        m = re.fullmatch(r"(.+)-[a-z0-9]{10}", o["metadata"]["name"])
        if o["kind"] == "ConfigMap" and m:
            text = text.replace(json.dumps(o["metadata"]["name"]), json.dumps(m.group(1) + "-<hash>"))
    out = {}
    for o in json.loads(text):
        for k in ("labels", "annotations"):
            if o["metadata"].get(k) == {}:
                del o["metadata"][k]
        key = (o.get("apiVersion"), o.get("kind"), o["metadata"].get("namespace"), o["metadata"].get("name"))
        assert key not in out, "rendered twice: %r" % (key,)
        out[key] = o
    return out


def differences(a, b):
    """What differs between two renderings, object by object (after comparable())."""
    a, b = comparable(a), comparable(b)
    probs = ["only in the first: %r" % (k,) for k in sorted(set(a) - set(b), key=repr)]
    probs += ["only in the second: %r" % (k,) for k in sorted(set(b) - set(a), key=repr)]
    for k in sorted(set(a) & set(b), key=repr):
        if a[k] != b[k]:
            fa, fb = flat(a[k]), flat(b[k])
            probs.append("%r differs: %s" % (k, "; ".join("%s: %.200r != %.200r" % (f, fa.get(f), fb.get(f))
                                                            for f in sorted(set(fa) | set(fb))
                                                            if fa.get(f) != fb.get(f))))
    return probs


def test_kustomize_v2_and_v5_render_the_same():
    """Every kustomization under deploy/ renders with Debian 12's kubectl 1.20 (kustomize v2.0.3, the
    declared dependency) and, where the machine's kubectl is another (kustomize v5), into the same
    objects with both; a changed object, a missing one and a reference to a ConfigMap that is not
    the rendered one are reported."""
    old = debian_kubectl()
    machine = shutil.which("kubectl")
    new = machine if machine and not is_debian_kubectl(machine) else None
    dirs = kustomizations()
    assert len(dirs) >= 6 and os.path.join(DEPLOY, "base") in dirs, dirs
    rendered = {}
    for d in dirs:
        objs = render(d, old)
        rendered[d] = objs
        assert len(objs) >= 5, "%s: %d objects from %s" % (d, len(objs), old)
        if new is None:
            continue
        probs = differences(objs, render(d, new))
        assert not probs, "%s renders differently with %s (%s) and %s (%s):\n%s" % (
            d, old, kubectl_version(old), new, kubectl_version(new), "\n".join(probs))
    if new is None:
        print("only Debian's kubectl here (%s): rendered with it alone" % old)
    # The comparison itself can fail.
    objs = rendered[overlays()[0]]
    assert not differences(objs, copy.deepcopy(objs))
    changed = copy.deepcopy(objs)
    find(changed, "Deployment", "cutover")["spec"]["replicas"] += 1
    assert any("spec.replicas" in p for p in differences(objs, changed)), differences(objs, changed)
    assert differences(objs, [o for o in objs if o["kind"] != "PodDisruptionBudget"])
    stale = copy.deepcopy(objs)
    for v in find(stale, "Deployment", "cutover")["spec"]["template"]["spec"]["volumes"]:
        if "configMap" in v:
            v["configMap"]["name"] = "cutover-config-0000000000"
    assert any("configMap" in p for p in differences(objs, stale)), differences(objs, stale)


test_kustomize_v2_and_v5_render_the_same.timeout = 420


def test_objects_validate_against_kubernetes_schemas():
    """validate.js accepts every rendered object, and refuses a wrong type, a bad enum value and
    an unknown field."""
    def run(objs):
        r = subprocess.run(["node", VALIDATOR], input=json.dumps(objs), capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout + r.stderr
    for d in [os.path.join(DEPLOY, "base")] + overlays():
        objs = render(d)
        rc, out = run(objs)
        assert rc == 0, "%s: %s" % (d, out)
        assert "%d objects, 0 problems" % len(objs) in out, out
    bad = copy.deepcopy(objs)
    pod = find(bad, "Deployment", "cutover")["spec"]["template"]["spec"]
    pod["containers"][0]["ports"][0]["containerPort"] = "8443"
    pod["securityContext"]["seccompProfile"]["type"] = "Default"
    pod["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    find(bad, "NetworkPolicy", "cutover-data")["spec"]["ingres"] = []
    find(bad, "SecretProviderClass", "cutover-tls")["spec"]["parameter"] = {}
    rc, out = run(bad)
    assert rc == 1, out
    for frag in ("containerPort must be integer", "seccompProfile/type must be equal to one of the allowed values",
                 "readinessProbe/httpGet/pathh: unknown field", "cutover-data/spec/ingres: unknown field",
                 "cutover-tls/spec/parameter: unknown field"):
        assert frag in out, "validator did not report %r: %s" % (frag, out)


class StandIns:
    """Key Vault stand-ins: a CA and leaf certificates made with openssl, under the file names the
    SecretProviderClass gives them, laid out as the Secrets Store CSI driver writes them."""

    def __init__(self, names):
        self.dir = tempfile.mkdtemp(prefix="kv-", dir=harness.workdir())
        p = lambda n: os.path.join(self.dir, n)  # noqa: E731
        sh = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)  # noqa: E731
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", p("ca.key"), "-out", p("corporate-ca.pem"), "-days", "30", "-subj", "/O=Contoso/CN=Corp CA")
        for n in names:
            if n == "corporate-ca.pem":
                continue
            if not n.endswith(".pem"):  # a secret value (the etcd password)
                with open(p(n), "w") as f:
                    f.write("stand-in\n")
                continue
            sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", p(n + ".key"), "-out", p(n + ".csr"), "-subj", "/O=Contoso/CN=" + n)
            ext = p(n + ".ext")
            with open(ext, "w") as f:
                f.write("subjectAltName=DNS:%s.test\n" % n.split(".")[0])
            sh("openssl", "x509", "-req", "-in", p(n + ".csr"), "-CA", p("corporate-ca.pem"), "-CAkey", p("ca.key"),
               "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", p(n + ".crt"))
            # objectType secret: the private key, then the chain.
            with open(p(n), "w") as f:
                for part in (n + ".key", n + ".crt", "corporate-ca.pem"):
                    f.write(open(p(part)).read())
        # The CSI driver's layout: the files in a timestamped directory, "..data" pointing at it,
        # and each name a symlink through "..data" (what cutover's rotation watch expects).
        version = p("..2026_12_05_03_00_00.000000001")
        os.mkdir(version)
        for n in names:
            os.rename(p(n), os.path.join(version, n))
            os.symlink(os.path.join("..data", n), p(n))
        os.symlink(os.path.basename(version), p("..data"))

    def rewrite(self, cfg_text):
        return cfg_text.replace(SECRETS, self.dir + "/")


def cutover_check(text):
    path = os.path.join(harness.workdir(), "check-%d.json" % abs(hash(text)))
    with open(path, "w") as f:
        f.write(text)
    # run_bin: a refusal's non-zero exit must not hide a crash of --check
    r = harness.run_bin([harness.require_bin(), "--check", "-c", path], capture_output=True,
                        text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_configmaps_pass_cutover_check():
    """The configuration inside each rendered ConfigMap passes the real `cutover --check` (with
    stand-in certificates where the Key Vault files will be); a broken one does not; an overlay's
    file differs from the base's only in the per-site keys."""
    base_objs = render(os.path.join(DEPLOY, "base"))
    base = flat(config_of(base_objs))
    names = spc_aliases(find(base_objs, "SecretProviderClass", "cutover-tls"))
    kv = StandIns(sorted(names))
    for d in [os.path.join(DEPLOY, "base")] + overlays():
        objs = render(d)
        text = find(objs, "ConfigMap", "cutover-config")["data"]["cutover.json"]
        assert SECRETS in text
        rc, out = cutover_check(kv.rewrite(text))
        assert rc == 0, "%s: cutover --check: %s" % (d, out)
        diff = {k for k in set(base) | set(flat(json.loads(text))) if base.get(k) != flat(json.loads(text)).get(k)}
        assert diff <= SITE_KEYS, "%s differs from base/cutover.json in %s" % (d, sorted(diff - SITE_KEYS))
    # --check does judge the file: a wrong weight sum and a missing certificate are refused.
    cfg = json.loads(text)
    cfg["routes"][0]["weights"]["green"] = 1
    rc, out = cutover_check(kv.rewrite(json.dumps(cfg)))
    assert rc == 1 and "weights sum to 101" in out, out
    assert os.path.islink(os.path.join(kv.dir, "admin.pem"))
    os.unlink(os.path.join(kv.dir, "..data", "admin.pem"))
    rc, out = cutover_check(kv.rewrite(text))
    assert rc == 1 and "admin.tls" in out, out


def test_cross_references_hold():
    """Ports, probes, mounts, selectors, PDBs, shutdown timeline, no public exposure, the fleet
    store's members: check_objects finds nothing in any overlay."""
    for d in [os.path.join(DEPLOY, "base")] + overlays():
        probs = check_objects(render(d))
        assert not probs, "%s: %s" % (d, probs)


def test_cross_reference_checks_catch_mistakes():
    """Each mistake made in a copy of a rendered overlay is reported by check_objects."""
    objs = render(overlays()[0])
    assert not check_objects(objs)

    def dep(o):
        return find(o, "Deployment", "cutover")["spec"]["template"]["spec"]

    def cfg_set(o, fn):
        cm = find(o, "ConfigMap", "cutover-config")
        c = json.loads(cm["data"]["cutover.json"])
        fn(c)
        cm["data"]["cutover.json"] = json.dumps(c)

    def set_(path, value):
        def fn(c):
            *head, last = path.split(".")
            for k in head:
                c = c[k]
            c[last] = value
        return fn

    mistakes = [
        ("container port admin", lambda o: dep(o)["containers"][0]["ports"][1].update(containerPort=9444)),
        ("container port https", lambda o: cfg_set(o, lambda c: c["listeners"][0].update(address="0.0.0.0:8444"))),
        ("readinessProbe", lambda o: dep(o)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz")),
        ("livenessProbe", lambda o: dep(o)["containers"][0]["livenessProbe"]["httpGet"].update(port=8443)),
        ("Service cutover-admin targetPort", lambda o: find(o, "Service", "cutover-admin")["spec"]["ports"][0].update(targetPort="metrics")),
        ("Service cutover-control must be one ClusterIP", lambda o: find(o, "Service", "cutover-control")["spec"].update(clusterIP="None")),
        ("Service cutover selects no", lambda o: find(o, "Service", "cutover")["spec"]["selector"].update({"app.kubernetes.io/component": "edge"})),
        ("without the internal annotation", lambda o: find(o, "Service", "cutover")["metadata"]["annotations"].pop(
            "service.beta.kubernetes.io/azure-load-balancer-internal")),
        ("public address", lambda o: find(o, "Service", "cutover")["metadata"]["annotations"].update(
            {"service.beta.kubernetes.io/azure-load-balancer-ipv4": "20.50.1.2"})),
        ("PDB cutover minAvailable", lambda o: find(o, "PodDisruptionBudget", "cutover")["spec"].update(
            minAvailable=find(o, "Deployment", "cutover")["spec"]["replicas"])),
        ("PDB etcd minAvailable", lambda o: find(o, "PodDisruptionBudget", "etcd")["spec"].update(minAvailable=3)),
        ("terminationGracePeriodSeconds", lambda o: cfg_set(o, set_("timeouts.drain_ms", 40000))),
        ("root file system", lambda o: dep(o)["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False)),
        ("control.state_file", lambda o: cfg_set(o, set_("control.state_file", "/var/cutover/state.json"))),
        ("control.socket", lambda o: dep(o)["containers"][0]["volumeMounts"][0].update(mountPath="/run/other")),
        ("not an object of SecretProviderClass", lambda o: cfg_set(
            o, lambda c: c["admin"]["tls"].update(client_ca="/mnt/secrets/cutover/ca.pem"))),
        ("not on a CSI", lambda o: cfg_set(o, lambda c: c["listeners"][0]["tls"].update(certificates=[{"pem": "/etc/cutover/edge.pem"}]))),
        ("POD_NAME", lambda o: dep(o)["containers"][0]["env"][0]["valueFrom"]["fieldRef"].update(fieldPath="spec.nodeName")),
        ("spread", lambda o: dep(o)["topologySpreadConstraints"].pop(0)),
        ("prometheus.io", lambda o: find(o, "Deployment", "cutover")["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/port": "9443"})),
        ("gateway subnet", lambda o: cfg_set(o, set_("trusted_proxies", ["10.99.0.0/24"]))),
        ("not exactly its ports", lambda o: find(o, "NetworkPolicy", "cutover-metrics")["spec"]["ingress"][0]["ports"][0].update(port=9101)),
        ("etcd members", lambda o: cfg_set(o, lambda c: c["control"]["store"]["endpoints"].pop())),
        ("progress-notify", lambda o: find(o, "StatefulSet", "etcd")["spec"]["template"]["spec"]["containers"][0]["args"].remove(
            "--experimental-watch-progress-notify-interval=5s")),
        ("no egress from cutover to etcd", lambda o: find(o, "NetworkPolicy", "cutover-egress")["spec"]["egress"].pop(1)),
    ]
    for expect, mutate in mistakes:
        o = copy.deepcopy(objs)
        mutate(o)
        probs = check_objects(o)
        assert any(expect in p for p in probs), "mistake %r not reported: %s" % (expect, probs)


def test_etcd_statefulset_args_run_on_etcd_34():
    """The etcd StatefulSet's own arguments start Debian's etcd 3.4 (one member here, on
    loopback ports): every flag exists in 3.4, the one-file Key Vault PEM serves as both
    --cert-file and --key-file, the probe path answers on the metrics URL, and a client
    certificate without a CN, given to curl (libcurl, as cutover) as one file for cert and key,
    is served by the HTTP/JSON gateway cutover uses."""
    import etcd_cluster
    sts = find(render(os.path.join(DEPLOY, "base")), "StatefulSet", "etcd")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    tls_dir = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == "tls"][0]
    data_dir = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == "data"][0]
    work = tempfile.mkdtemp(prefix="etcd-", dir=harness.workdir())
    p = lambda n: os.path.join(work, n)  # noqa: E731
    sh = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)  # noqa: E731
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", p("ca.key"), "-out", p("corporate-ca.pem"), "-days", "2", "-subj", "/O=Contoso/CN=Corp CA")
    for name, subj, ext in (("member", "/O=Contoso/CN=etcd-0", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                                               "extendedKeyUsage=serverAuth,clientAuth\n"),
                            ("client", "/O=Contoso/OU=cutover-test", "extendedKeyUsage=clientAuth\n")):
        sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", p(name + ".key"), "-out", p(name + ".csr"), "-subj", subj)
        with open(p(name + ".ext"), "w") as f:
            f.write(ext)
        sh("openssl", "x509", "-req", "-in", p(name + ".csr"), "-CA", p("corporate-ca.pem"), "-CAkey", p("ca.key"),
           "-CAcreateserial", "-days", "2", "-extfile", p(name + ".ext"), "-out", p(name + ".crt"))
        with open(p(name + ".pem"), "w") as f:  # objectType secret: key, then chain
            f.write(open(p(name + ".key")).read() + open(p(name + ".crt")).read())
    os.rename(p("member.pem"), p("member-kv.pem"))
    os.symlink("member-kv.pem", p("member.pem"))
    cp, pp, mp = harness.free_port(), harness.free_port(), harness.free_port()
    member = "%s.%s.%s.svc.cluster.local" % ("$(POD_NAME)", sts["spec"]["serviceName"], sts["metadata"]["namespace"])
    args = []
    for a in c["args"]:
        if a.startswith("--initial-cluster="):
            a = "--initial-cluster=etcd-0=https://127.0.0.1:%d" % pp  # one member of the three here
        a = (a.replace(member + ":2379", "127.0.0.1:%d" % cp).replace(member + ":2380", "127.0.0.1:%d" % pp)
              .replace("0.0.0.0:2379", "127.0.0.1:%d" % cp).replace("0.0.0.0:2380", "127.0.0.1:%d" % pp)
              .replace("0.0.0.0:2381", "127.0.0.1:%d" % mp).replace("$(POD_NAME)", "etcd-0")
              .replace(tls_dir + "/", work + "/").replace(data_dir + "/", p("data") + "/"))
        assert "cluster.local" not in a and "/mnt/" not in a and "/var/lib/etcd" not in a, a
        args.append(a)
    assert os.path.basename(c["command"][0]) == "etcd"
    out, err = open(p("etcd.stdout"), "w"), open(p("etcd.stderr"), "w")
    proc = subprocess.Popen([etcd_cluster.ETCD_BIN] + args, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    m = etcd_cluster.EtcdMember(proc, 0, p("etcd.stdout"), p("etcd.stderr"))
    harness._register(m)
    try:
        probe = c["readinessProbe"]["httpGet"]

        def healthy():
            assert m.alive(), "etcd exited with the StatefulSet's arguments: %s" % open(p("etcd.stderr")).read()[-2000:]
            r = subprocess.run(["curl", "-sS", "--max-time", "2", "http://127.0.0.1:%d%s" % (mp, probe["path"])],
                               capture_output=True, text=True, timeout=10)
            return r.returncode == 0 and '"health":"true"' in r.stdout
        harness.wait_until(healthy, 30, interval=0.2, what="etcd to answer its readiness probe")
        curl = ["curl", "-sS", "--max-time", "5", "--cacert", p("corporate-ca.pem"),
                "--cert", p("client.pem"), "--key", p("client.pem"), "-w", "\n%{http_code}"]
        r = subprocess.run(curl + ["https://127.0.0.1:%d/v3/kv/put" % cp, "-d", '{"key":"eA==","value":"eQ=="}'],
                           capture_output=True, text=True, timeout=15)
        assert r.stdout.rstrip().endswith("\n200") and '"revision"' in r.stdout, (r.stdout, r.stderr)
        r = subprocess.run(curl + ["https://127.0.0.1:%d/v3/kv/range" % cp, "-d", '{"key":"eA=="}'],
                           capture_output=True, text=True, timeout=15)
        assert '"value":"eQ=="' in r.stdout, (r.stdout, r.stderr)
        # The liveness probe answers too (it must not depend on the quorum).
        live = c["livenessProbe"]["httpGet"]
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                            "http://127.0.0.1:%d%s" % (mp, live["path"])], capture_output=True, text=True, timeout=10)
        assert r.stdout == "200" and live["path"] != "/health", (live, r.stdout)
        # Without a client certificate the member refuses the handshake (--client-cert-auth).
        r = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", p("corporate-ca.pem"),
                            "https://127.0.0.1:%d/v3/kv/range" % cp, "-d", '{"key":"eA=="}'],
                           capture_output=True, text=True, timeout=15)
        assert r.returncode != 0, r.stdout
    finally:
        m.terminate(timeout=5.0)
