"""The container image's assumptions, checked without a Docker daemon.

The Dockerfile is parsed (a small reader: instructions, line continuations, JSON or word
arguments) and what it takes for granted is checked against this machine, which runs the same
Debian 12 as the image:
- every COPY source exists in the repository, or is built by the build stage's make targets;
- the runtime stage's packages ship the shared libraries the binaries need (each DT_NEEDED soname
  of cutover and cutoverctl is a file of one of those packages, per `dpkg -L`; every library `ldd`
  resolves belongs to one of them or to a package they depend on, per dpkg's Depends);
- the USER is numeric and not root, the ENTRYPOINT is exec form (no shell at run time), the CMD
  names /etc/cutover/cutover.json and no configuration is copied in, the writable paths are
  VOLUMEs, EXPOSE lists the ports docs/configuration.md uses;
- the real cutover runs as that user with a read-only root: in a private mount namespace every
  mount but /proc, /sys and /dev is remounted read-only except one temporary directory that
  stands for the volumes (state, audit, control socket); cutover starts there as uid 65532,
  serves a request, answers cutoverctl (also uid 65532) on its socket, and stops with code 0.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import (HOST, REPO, HarnessError, check, free_port, http_request, make_config,
                     require_bin, start_cutover, start_upstream, wait_until)

UID = 65532
CONFIG_PATH = "/etc/cutover/cutover.json"
STATE_DIR = "/var/lib/cutover"
SOCKET_DIR = "/run/cutover"


# --- the Dockerfile ------------------------------------------------------------------------------

def dockerfile_stages(path=None):
    """[{"name": stage name or None, "base": image, "ins": [(INSTRUCTION, raw args), ...]}]."""
    path = path or os.path.join(REPO, "Dockerfile")
    with open(path) as f:
        text = f.read()
    logical, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue  # a comment inside a continued instruction
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        logical.append(cur + s)
        cur = ""
    if cur:
        logical.append(cur)
    stages = []
    for ln in logical:
        word, _, rest = ln.partition(" ")
        word = word.upper()
        rest = rest.strip()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            check(m is not None, "FROM line not understood: %r", ln)
            stages.append({"name": m.group(2), "base": m.group(1), "ins": []})
            continue
        check(stages, "instruction %r before FROM", ln)
        stages[-1]["ins"].append((word, rest))
    return stages


def args_of(rest):
    """The arguments of an instruction: the JSON array form, or whitespace-separated words."""
    if rest.startswith("["):
        return json.loads(rest)
    return rest.split()


def instr(stage, word):
    return [rest for w, rest in stage["ins"] if w == word]


def apt_packages(stage):
    """Package names the stage's RUN lines give to apt-get install."""
    pkgs = []
    for rest in instr(stage, "RUN"):
        for m in re.finditer(r"apt-get install ([^&;|]*)", rest):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def test_dockerfile_shape():
    stages = dockerfile_stages()
    check(len(stages) >= 2, "expected a build stage and a runtime stage, got %d", len(stages))
    build, run = stages[0], stages[-1]
    check(build["name"], "the build stage has no name")
    for st in stages:
        check(st["base"].startswith("debian:12"), "stage %s is not Debian 12: %s", st["name"],
              st["base"])

    # USER: numeric, not root (uid and gid)
    users = instr(run, "USER")
    check(len(users) == 1, "the runtime stage must set USER once: %s", users)
    uid, _, gid = users[0].partition(":")
    check(uid.isdigit() and int(uid) != 0, "USER %r is not a numeric non-root uid", users[0])
    check(gid == "" or (gid.isdigit() and int(gid) != 0), "USER group %r not numeric non-root",
          users[0])
    check(int(uid) == UID, "USER %s, the docs and deploy/ say %d", uid, UID)

    # exec-form ENTRYPOINT (no shell), CMD naming the mounted configuration
    ep = instr(run, "ENTRYPOINT")
    check(len(ep) == 1 and ep[0].startswith("["), "ENTRYPOINT must be exec form: %s", ep)
    check(args_of(ep[0]) == ["/usr/local/bin/cutover"], "ENTRYPOINT %s", ep)
    cmd = instr(run, "CMD")
    check(len(cmd) == 1 and cmd[0].startswith("["), "CMD must be exec form: %s", cmd)
    check(args_of(cmd[0]) == ["-c", CONFIG_PATH], "CMD %s does not name %s", cmd, CONFIG_PATH)

    # the binaries in, no configuration baked in
    dests = {}
    for rest in instr(run, "COPY"):
        a = args_of(rest)
        flags = [x for x in a if x.startswith("--")]
        words = [x for x in a if not x.startswith("--")]
        check(len(words) == 2, "COPY with one source only expected: %r", rest)
        dests[words[1]] = (flags, words[0])
        check(not words[1].startswith("/etc/cutover"), "a configuration is copied into the "
              "image (%r): it must come from a mount", rest)
    for b in ("cutover", "cutoverctl"):
        check("/usr/local/bin/" + b in dests, "the runtime stage does not copy %s", b)

    # writable paths are volumes; nothing else needs writing
    vols = []
    for rest in instr(run, "VOLUME"):
        vols += args_of(rest)
    check(set(vols) >= {STATE_DIR, SOCKET_DIR}, "VOLUME %s lacks %s or %s", vols, STATE_DIR,
          SOCKET_DIR)

    # EXPOSE: the data listener of config/example.json, the admin and metrics ports the docs use
    exposed = set()
    for rest in instr(run, "EXPOSE"):
        exposed |= {int(p.split("/")[0]) for p in rest.split()}
    with open(os.path.join(REPO, "config", "example.json")) as f:
        ex = json.load(f)
    want = {int(l["address"].rsplit(":", 1)[1]) for l in ex["listeners"]}
    with open(os.path.join(REPO, "docs", "configuration.md")) as f:
        doc = f.read()
    m = re.search(r'"metrics": \{"address": "[^"]*:(\d+)"\}', doc)
    check(m, "no metrics address example in docs/configuration.md")
    want.add(int(m.group(1)))
    m = re.search(r'"admin": \{\s*"address": "[^"]*:(\d+)"', doc)
    check(m, "no admin address example in docs/configuration.md")
    want.add(int(m.group(1)))
    check(exposed == want, "EXPOSE %s, the example and docs use %s", sorted(exposed),
          sorted(want))
    check(all(p > 1024 for p in exposed), "a port below 1025 needs a capability: %s", exposed)


def test_dockerfile_copy_sources_exist():
    stages = dockerfile_stages()
    names = {st["name"]: st for st in stages if st["name"]}
    build = stages[0]
    built = set()
    for rest in instr(build, "RUN"):
        m = re.search(r"\bmake\b.*?BUILD=(\S+)\s+(.*)$", rest)
        if m:
            for t in m.group(2).split():
                if t == "all":
                    built |= {m.group(1) + "/cutover", m.group(1) + "/cutoverctl"}
                elif not t.startswith("-"):
                    built.add(m.group(1) + "/" + t)
    check(built, "the build stage runs no `make BUILD=... targets`")
    workdir = (instr(build, "WORKDIR") or ["/"])[-1]
    ncopies = 0
    for st in stages:
        for rest in instr(st, "COPY"):
            a = args_of(rest)
            frm = [x.split("=", 1)[1] for x in a if x.startswith("--from=")]
            srcs = [x for x in a if not x.startswith("--")][:-1]
            for src in srcs:
                ncopies += 1
                if frm:
                    check(frm[0] in names, "COPY --from=%s: no such stage", frm[0])
                    rel = os.path.relpath(src, workdir)
                    check(rel in built, "COPY --from=%s %s: not built by the build stage's make "
                          "(%s)", frm[0], src, sorted(built))
                else:
                    p = os.path.join(REPO, src)
                    check(os.path.exists(p), "COPY source %s does not exist in the repository", src)
    check(ncopies >= 4, "only %d COPY sources found", ncopies)
    # the build stage compiles from the sources it copied: the Makefile's folders are all there
    copied = {args_of(r)[0].rstrip("/") for r in instr(build, "COPY")}
    for d in ("Makefile", "core", "config", "proxy", "control", "scripts"):
        check(d in copied, "the build stage does not copy %s", d)
    # and installs the build list of scripts/deps.sh
    with open(os.path.join(REPO, "scripts", "deps.sh")) as f:
        m = re.search(r"^build=\(([^)]*)\)", f.read(), re.M)
    want = set(m.group(1).split())
    have = set(apt_packages(build))
    check(want <= have, "the build stage lacks %s of deps.sh's build list", sorted(want - have))


def _pkg_files(pkg):
    out = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "dpkg -L %s failed (is it installed here?): %s", pkg,
          out.stderr.strip())
    return out.stdout.split()


def _depends_closure(pkgs):
    """The installed packages pkgs depend on, recursively (Depends and Pre-Depends)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            continue
        for alt in out.stdout.split(","):
            for choice in alt.split("|"):
                name = choice.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def _owner(path):
    """The package that ships path (trying the /lib <-> /usr/lib merged spellings)."""
    cands = {path, os.path.realpath(path)}
    for c in list(cands):
        if c.startswith("/usr/lib/"):
            cands.add(c[4:])
        elif c.startswith("/lib/"):
            cands.add("/usr" + c)
    for c in cands:
        out = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            return out.stdout.split(":")[0].strip()
    return None


def test_runtime_packages_provide_the_linked_libraries():
    b = require_bin()
    bins = [b, os.path.join(os.path.dirname(b), "cutoverctl")]
    check(os.path.exists(bins[1]), "cutoverctl not built next to %s", b)
    run = dockerfile_stages()[-1]
    pkgs = apt_packages(run)
    check(pkgs, "the runtime stage installs no package")
    check(not [p for p in pkgs if p.endswith("-dev")], "-dev packages at run time: %s", pkgs)
    base = {"libc6"}  # in debian:12-slim (Essential)
    files = {}
    for p in pkgs:
        for f in _pkg_files(p):
            files[os.path.basename(f)] = p
    needed = set()
    for exe in bins:
        out = subprocess.run(["objdump", "-p", exe], capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "objdump -p %s: %s", exe, out.stderr)
        needed |= set(re.findall(r"^\s*NEEDED\s+(\S+)", out.stdout, re.M))
    check("libcurl.so.4" in needed and "libevent-2.1.so.7" in needed,
          "unexpected NEEDED list (the check would prove nothing): %s", sorted(needed))
    # a sanitizer build (make test SAN=1 / SAN=thread) links the sanitizers' runtimes, which the
    # image's ordinary build does not: they are not the image's to ship
    sanitizer = re.compile(r"^lib(asan|ubsan|tsan|lsan)\.so")
    sanitized = any(sanitizer.match(so) for so in needed)
    needed = {so for so in needed if not sanitizer.match(so)}
    missing = [so for so in sorted(needed) if so not in files and not so.startswith("libc.so")]
    check(not missing, "no runtime package ships %s (packages: %s)", missing, pkgs)
    # every library ldd resolves: from the listed packages or what they depend on
    closure = _depends_closure(pkgs) | base
    for exe in bins if not sanitized else ():  # the sanitizers' runtimes bring their own
        # (libstdc++, libgcc_s): what they load is not the image's ordinary build's closure
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=30)
        for so, path in re.findall(r"^\s*(\S+) => (\S+)", out.stdout, re.M):
            if sanitizer.match(so):
                continue
            check(path != "not", "ldd: %s not found for %s", so, exe)
            owner = _owner(path)
            check(owner is not None, "no package owns %s (%s)", path, so)
            check(owner in closure, "%s (%s, package %s) is not reached from the runtime "
                  "packages %s", so, path, owner, pkgs)


# --- the binary as the image runs it ------------------------------------------------------------

def _ro_prefix(writable):
    """argv that, as root, enters a private mount namespace, keeps `writable` read-write, makes
    every other mount read-only (but /proc, /sys, /dev), then runs the rest as uid/gid 65532
    without groups or capabilities. The shell only exists here, before the exec."""
    script = ('set -e; mount --bind "$1" "$1"; '
              'for m in $(awk \'{print $5}\' /proc/self/mountinfo | sort -r); do '
              'case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$1") continue;; esac; '
              'mount -o remount,bind,ro "$m" 2>/dev/null || true; done; '
              'touch /.cutover-ro-probe 2>/dev/null && { echo "root still writable" >&2; exit 97; }; '
              'shift; exec setpriv --reuid %d --regid %d --clear-groups --inh-caps=-all '
              '--bounding-set=-all "$@"' % (UID, UID))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "ro-wrap",
            writable, "--"]


def test_binary_runs_as_the_image_user_with_read_only_root():
    if os.geteuid() != 0:
        raise HarnessError("this test needs root (mount namespace, setpriv); run as root")
    if not shutil.which("unshare") or not shutil.which("setpriv"):
        raise HarnessError("unshare and setpriv (util-linux) are needed")
    b = require_bin()
    ctl = os.path.join(os.path.dirname(b), "cutoverctl")
    # The binaries must be reachable by uid 65532 (the build tree may be 0700 under /work).
    tmp = tempfile.mkdtemp(prefix="cutover-image-")
    try:
        os.chmod(tmp, 0o755)
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        for x in (b, ctl):
            shutil.copy2(x, bindir)
        etc = os.path.join(tmp, "etc")  # the ConfigMap mount: read-only, owned by root
        os.mkdir(etc)
        vol = os.path.join(tmp, "vol")  # the volumes: the only writable place
        os.mkdir(vol)
        for d in ("lib", "run"):
            os.mkdir(os.path.join(vol, d))
            os.chown(os.path.join(vol, d), UID, UID)
        up = start_upstream("img-blue")
        green = start_upstream("img-green")
        port, mport = free_port(), free_port()
        cfg = make_config(port, {"blue": [up], "green": [green]}, {"blue": 100, "green": 0})
        cfg["metrics"] = {"address": "%s:%d" % (HOST, mport)}
        sock = os.path.join(vol, "run", "control.sock")
        cfg["control"] = {"socket": sock, "state_file": os.path.join(vol, "lib", "state.json"),
                          "audit_file": os.path.join(vol, "lib", "audit.jsonl")}
        cpath = os.path.join(etc, "cutover.json")
        os.environ["CUTOVER_BIN"] = os.path.join(bindir, "cutover")
        c = start_cutover(cfg, prefix=_ro_prefix(vol), config_path=cpath)
        os.chmod(cpath, 0o644)
        with open("/proc/%d/status" % c.pid) as f:
            st = f.read()
        uids = re.search(r"^Uid:\s+(.*)$", st, re.M).group(1).split()
        check(set(uids) == {str(UID)}, "cutover runs as uids %s, not %d", uids, UID)
        check(re.search(r"^CapEff:\s+0+$", st, re.M), "cutover has capabilities: %s",
              re.search(r"^CapEff:.*$", st, re.M).group(0))
        with open("/proc/%d/mountinfo" % c.pid) as f:
            root = [l for l in f if l.split()[4] == "/"]
        check(root and " ro," in " " + root[0].split()[5] + ",", "cutover's / is not read-only: %s",
              root)

        st, _, body = http_request(port, "GET", "/image-check")
        check(st == 200, "request through cutover: status %s %r", st, body[:200])
        st, _, body = http_request(mport, "GET", "/healthz")
        check(st == 200, "/healthz: %s %r", st, body[:200])
        # cutoverctl as the same user through the socket on the volume; a change is recorded
        # in the state and audit files there
        out = subprocess.run(["setpriv", "--reuid", str(UID), "--regid", str(UID),
                              "--clear-groups", os.path.join(bindir, "cutoverctl"), "--socket",
                              sock, "status"], capture_output=True, text=True, timeout=20)
        check(out.returncode == 0, "cutoverctl status as %d: %s %s", UID, out.stdout, out.stderr)
        check("app" in out.stdout, "cutoverctl status does not show the route: %s", out.stdout)
        out = subprocess.run(["setpriv", "--reuid", str(UID), "--regid", str(UID),
                              "--clear-groups", os.path.join(bindir, "cutoverctl"), "--socket",
                              sock, "drain", "app", "blue", up.addr, "--reason", "image test"], capture_output=True, text=True,
                             timeout=20)
        check(out.returncode == 0, "cutoverctl drain as %d: %s %s", UID, out.stdout, out.stderr)
        wait_until(lambda: os.path.exists(os.path.join(vol, "lib", "audit.jsonl")), 5,
                   what="the audit file on the volume")
        check(os.path.exists(os.path.join(vol, "lib", "state.json")), "no state file on the volume")
        code = c.stop()
        check(code == 0, "cutover exited %s", code)
        err = c.stderr_text()
        check("Read-only file system" not in err and "ermission denied" not in err,
              "cutover tried to write outside its volumes: %s", err[-2000:])
        made = sorted(os.listdir(os.path.join(vol, "lib")))
        check(all(m.startswith(("state.json", "audit.jsonl")) for m in made),
              "unexpected files on the state volume: %s", made)  # (and their .lock files)
        up.terminate()
        green.terminate()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
