#!/usr/bin/python3
"""test_install.py: `meson install --destdir` into a temporary directory, then the installed package
used as its users would: the files and symlinks are there, no ELF has a run path into the build tree
or an absolute directory, a C program builds with `pkg-config --define-prefix` and runs against the
installed libsli.so.1, the installed `sli demo` finds the installed preload library, the preload
library gives TLS to a plain `python3 -m http.server`, and every SLI_API function of the installed
sli.h has a man page entry, every page rendering without warnings. Python's standard library only."""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

BUILD = os.path.abspath(os.environ.get("SLI_BUILD_DIR") or
                        os.path.join(os.path.dirname(__file__), "..", "..", "build"))
MESON = shutil.which("meson")
TMP = tempfile.mkdtemp(prefix="sli-install-")
DEST = os.path.join(TMP, "dest")
CHECKS = []
failed = []


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def case(fn):
    """Registers a check; they run in order once the install is done."""
    CHECKS.append(fn)
    return fn


def run_check(fn):
    """Runs one check; prints one line, ok or FAIL with the reason."""
    t = time.time()
    try:
        fn()
        print("ok   %-48s %.1fs" % (fn.__name__, time.time() - t), flush=True)
    except Exception as e:  # noqa: BLE001 - report every failure, go on with the next check
        failed.append(fn.__name__)
        print("FAIL %-48s %s" % (fn.__name__, e), flush=True)
        traceback.print_exc(file=sys.stdout)


def run(args, env=None, timeout=60):
    """Runs a program in its own session; returns (rc, stdout, stderr) as text. On a timeout the
    whole session is killed: the program and whatever it started (the demo's server)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, **(env or {})), start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("%s did not finish within %d s" % (" ".join(args), timeout))
    return p.returncode, out, err


def introspect(what):
    rc, out, err = run([MESON, "introspect", BUILD, what])
    expect(rc == 0, "meson introspect %s: %s" % (what, err))
    return json.loads(out)


def layout():
    """The configured install directories, absolute (prefix joined)."""
    opts = {o["name"]: o["value"] for o in introspect("--buildoptions")}
    dirs = {k: os.path.join(opts["prefix"], opts[k]) for k in
            ("bindir", "libdir", "includedir", "mandir", "datadir")}
    dirs["prefix"] = opts["prefix"]
    dirs["preload"] = os.path.join(dirs["libdir"], "sli", "libsli-preload.so")
    dirs["docdir"] = os.path.join(dirs["datadir"], "doc", "sli")
    return dirs


def dest(path):
    """Where an installed path lands in the destdir."""
    return os.path.join(DEST, path.lstrip("/"))


def lib_env():
    return {"LD_LIBRARY_PATH": dest(L["libdir"]), "HOME": os.path.join(TMP, "home"),
            "SLI_STATE_DIR": os.path.join(TMP, "state"), "XDG_STATE_HOME": os.path.join(TMP, "xdg")}


def install():
    expect(MESON, "meson is not on PATH")
    rc, out, err = run([MESON, "install", "-C", BUILD, "--destdir", DEST, "--no-rebuild", "--quiet"],
                       timeout=120)
    expect(rc == 0, "meson install failed (%d): %s%s" % (rc, out, err))


@case
def installed_files():
    want = [L["bindir"] + "/sli", L["includedir"] + "/sli.h", L["libdir"] + "/libsli.so.1.1.0",
            L["libdir"] + "/pkgconfig/libsli.pc", L["preload"], L["mandir"] + "/man1/sli.1",
            L["mandir"] + "/man3/libsli.3", L["mandir"] + "/man8/sli-preload.8"]
    missing = [p for p in want if not os.path.isfile(dest(p))]
    expect(not missing, "not installed: %s" % missing)
    for link, target in (("libsli.so.1", "libsli.so.1.1.0"), ("libsli.so", "libsli.so.1")):
        p = dest(os.path.join(L["libdir"], link))
        expect(os.path.islink(p) and os.readlink(p) == target,
               "%s is not a symlink to %s" % (link, target))
    expect(os.access(dest(L["bindir"] + "/sli"), os.X_OK), "the sli command is not executable")


@case
def licences():
    texts = {}
    for name in ("LICENSE", "LICENSE.BoringSSL", "LICENSE.libuv"):
        p = dest(os.path.join(L["docdir"], name))
        expect(os.path.isfile(p), "%s not installed in %s" % (name, L["docdir"]))
        texts[name] = open(p, encoding="utf-8", errors="replace").read()
    expect("ISC License" in texts["LICENSE"] and "the sli authors" in texts["LICENSE"],
           "LICENSE is not sli's ISC licence")
    expect("BoringSSL" in texts["LICENSE.BoringSSL"], "LICENSE.BoringSSL is not BoringSSL's licence")
    expect("libuv" in texts["LICENSE.libuv"], "LICENSE.libuv is not libuv's licence")


def elf_files():
    for root, _, names in os.walk(DEST):
        for n in names:
            p = os.path.join(root, n)
            if not os.path.islink(p) and open(p, "rb").read(4) == b"\x7fELF":
                yield p


@case
def no_build_or_absolute_runpath():
    elves = list(elf_files())
    expect(len(elves) >= 3, "found only %d installed ELF files" % len(elves))
    for p in elves:
        rc, out, err = run(["readelf", "-d", p])
        expect(rc == 0, "readelf %s: %s" % (p, err))
        for kind, value in re.findall(r"\((RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", out):
            for entry in value.split(":"):
                expect(entry.startswith(("$ORIGIN", "${ORIGIN}")),
                       "%s has %s %s: not $ORIGIN-relative" % (p[len(DEST):], kind, value))


@case
def preload_finds_installed_engine():
    rc, out, err = run(["ldd", dest(L["preload"])], env={"LD_LIBRARY_PATH": ""})
    m = re.search(r"libsli\.so\.1 => (\S+)", out)
    expect(m, "ldd does not resolve libsli.so.1 for the preload library: %s%s" % (out, err))
    expect(os.path.realpath(m.group(1)) == os.path.realpath(dest(L["libdir"] + "/libsli.so.1")),
           "the preload library loads %s, not the installed libsli.so.1" % m.group(1))


PROGRAM = r"""/* prog.c - written by test_install.py: built with pkg-config against the installed libsli. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sli.h>

int main(void) {
  Dl_info info;
  const uint8_t msg[] = "sealed by an installed libsli", ad[] = "t.col";
  sli_keyring *kr = NULL;
  uint8_t *blob = NULL, *plain = NULL;
  size_t blob_len = 0, plain_len = 0;
  if (!dladdr((void *)sli_version, &info)) return 2;
  printf("library %s\nversion %s %s\n", info.dli_fname, sli_version_string(),
         sli_version() == SLI_VERSION_HEX ? "matches-header" : "differs-from-header");
  int rc = sli_keyring_generate(&kr);
  if (!rc) rc = sli_seal_alloc(kr, &blob, &blob_len, msg, sizeof msg, ad, sizeof ad);
  if (!rc) rc = sli_open_alloc(kr, &plain, &plain_len, blob, blob_len, ad, sizeof ad);
  int same = !rc && plain_len == sizeof msg && !memcmp(plain, msg, sizeof msg);
  printf("round trip %s\n", same ? "ok" : sli_err_name(rc));
  sli_free(plain, plain_len);
  sli_free(blob, blob_len);
  sli_keyring_free(kr);
  return same ? 0 : 1;
}
"""


def pkg_config_flags():
    env = {"PKG_CONFIG_PATH": dest(L["libdir"] + "/pkgconfig")}
    rc, out, err = run(["pkg-config", "--define-prefix", "--cflags", "--libs", "libsli"], env=env)
    expect(rc == 0, "pkg-config --define-prefix libsli: %s" % err)
    flags = out.split()
    expect("-I" + dest(L["includedir"]) in flags and "-L" + dest(L["libdir"]) in flags,
           "pkg-config --define-prefix does not point into the destdir: %s (it takes the prefix to "
           "be two levels above libsli.pc: is libdir %s one level under the prefix?)"
           % (out.strip(), L["libdir"]))
    return flags


@case
def program_built_with_pkg_config():
    src, exe = os.path.join(TMP, "prog.c"), os.path.join(TMP, "prog")
    with open(src, "w") as f:
        f.write(PROGRAM)
    rc, out, err = run(["cc", "-Wall", "-Werror", src, "-o", exe] + pkg_config_flags())
    expect(rc == 0, "cc failed: %s%s" % (out, err))
    rc, out, err = run([exe], env=lib_env())
    expect(rc == 0 and "round trip ok" in out, "the program failed (%d): %s%s" % (rc, out, err))
    version = introspect("--projectinfo")["version"]
    expect("version %s matches-header" % version in out, "sli_version: %s" % out)
    lib = re.search(r"^library (\S+)", out, re.M).group(1)
    expect(os.path.realpath(lib).startswith(os.path.realpath(DEST)),
           "the program loaded %s, not the installed library" % lib)


def overlay_root(prefix):
    """The deepest existing directory at or above the prefix: the destdir is laid over it."""
    root = prefix
    while not os.path.isdir(root):
        root = os.path.dirname(root)
    expect(root != "/", "no directory of the prefix %s exists here to lay the destdir over" % prefix)
    return root


def in_installed_view(args, timeout):
    """Runs args in a private mount namespace (unshare) where the destdir is laid over the prefix:
    the installed files sit at their installed paths, for this command only."""
    expect(shutil.which("unshare"), "unshare (util-linux) is needed to run the installed demo")
    root = overlay_root(L["prefix"])
    script = 'mount -t overlay overlay -o "lowerdir=$1:$2" "$2" && shift 2 && exec "$@"'
    env = dict(lib_env(), LD_LIBRARY_PATH=L["libdir"])
    return run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh",
                dest(root), root] + args, env=env, timeout=timeout)


@case
def installed_demo_finds_installed_preload():
    rc, out, err = in_installed_view([L["bindir"] + "/sli", "demo"], timeout=60)
    expect(rc == 0, "sli demo exited %d: %s%s" % (rc, out, err))
    expect("LD_PRELOAD=%s\n" % L["preload"] in out,
           "the demo did not preload %s (part two skipped?): %s" % (L["preload"], out))
    expect(out.count("verified:    yes") == 2, "the demo's two exchanges were not both verified: %s" % out)


def make_identity():
    """A key and a self-signed certificate for localhost, made by the installed CLI."""
    sli = dest(L["bindir"] + "/sli")
    key, cert = os.path.join(TMP, "key.pem"), os.path.join(TMP, "cert.pem")
    for args in (["keygen", "--type", "ec", "-o", key],
                 ["selfsign", "--key", key, "--subject", "/CN=localhost", "--san", "DNS:localhost",
                  "--days", "2", "-o", cert]):
        rc, out, err = run([sli] + args, env=lib_env())
        expect(rc == 0, "sli %s: %s%s" % (args[0], out, err))
    return cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_tls(port, cafile, deadline):
    """GET /index.html over TLS, verified against cafile as localhost; retries until the server
    listens."""
    ctx = ssl.create_default_context(cafile=cafile)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    return s.version(), b"".join(iter(lambda: s.recv(65536), b"")).decode()
        except ConnectionRefusedError:
            expect(time.time() < deadline, "the preloaded http.server never listened")
            time.sleep(0.1)


def stop(server):
    """Stops the server this test started; returns what it wrote on stderr."""
    server.terminate()
    try:
        return server.communicate(timeout=10)[1]
    except subprocess.TimeoutExpired:
        server.kill()
        return server.communicate()[1]


@case
def preload_gives_tls_to_http_server():
    cert, key = make_identity()
    www = os.path.join(TMP, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("served by an installed libsli-preload.so\n")
    port = free_port()
    env = dict(os.environ, LD_PRELOAD=dest(L["preload"]), SLI_SERVER_PORTS=str(port), SLI_CERT=cert,
               SLI_KEY=key, HOME=os.path.join(TMP, "home"), SLI_STATE_DIR=os.path.join(TMP, "state"))
    env.pop("LD_LIBRARY_PATH", None)  # the preload library finds libsli.so.1 by its own run path
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", www], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        version, reply = fetch_tls(port, cert, time.time() + 15)
    finally:
        log = stop(server)
    expect(reply.startswith("HTTP/1.0 200") and "served by an installed" in reply,
           "unexpected reply over TLS: %r (server: %s)" % (reply[:200], log))
    expect(version in ("TLSv1.3", "TLSv1.2"), "negotiated %s" % version)


def api_functions(header):
    """The function names of every SLI_API declaration in the header."""
    text = re.sub(r"/\*.*?\*/", " ", open(header).read(), flags=re.S)
    text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    decls = re.findall(r"\bSLI_API\b([^;]*);", text)
    names = [re.search(r"\b(sli_\w+)\s*\(", d) for d in decls]
    unread = [d.strip() for d, m in zip(decls, names) if not m]
    expect(not unread, "cannot read these SLI_API declarations: %s" % unread)
    return [m.group(1) for m in names]


def man_pages():
    root = dest(L["mandir"])
    return sorted(os.path.join(r, n) for r, _, ns in os.walk(root) for n in ns)


def names_and_synopsis(page):
    """The words of a page's NAME and SYNOPSIS sections, font escapes removed."""
    sections = re.split(r"^\.SH\s+", open(page).read(), flags=re.M)
    wanted = [s for s in sections if s.split("\n", 1)[0].strip('" ') in ("NAME", "SYNOPSIS")]
    return set(re.findall(r"\bsli_\w+", re.sub(r"\\f[BIRP]", "", "\n".join(wanted))))


@case
def every_api_function_has_a_man_entry():
    funcs = api_functions(dest(L["includedir"] + "/sli.h"))
    expect(len(funcs) > 100, "only %d SLI_API declarations found in the installed sli.h" % len(funcs))
    documented = set().union(*(names_and_synopsis(p) for p in man_pages()))
    missing = [f for f in funcs if f not in documented]
    expect(not missing, "no man page has these in NAME or SYNOPSIS: %s" % missing)


def render(page):
    expect(shutil.which("man"), "man (Debian's man-db) is needed to render the pages")
    env = {"LC_ALL": "C", "MANROFFSEQ": "", "MANWIDTH": "80"}
    return run(["man", "--warnings", "-l", page], env=env)


@case
def every_man_page_renders_cleanly():
    pages = man_pages()
    expect(len(pages) >= 3, "only %d man pages installed" % len(pages))
    for p in pages:
        rc, out, err = render(p)
        expect(rc == 0 and not err.strip(), "%s: man warns (%d): %s" % (p[len(DEST):], rc, err))
        left = re.findall(r"@[A-Z]+@", open(p).read())
        expect(not left, "%s keeps unsubstituted %s" % (p[len(DEST):], left))


@case
def man_pages_name_the_installed_paths_and_commands():
    _, preload, _ = render(dest(L["mandir"] + "/man8/sli-preload.8"))
    expect(L["preload"] in preload, "sli-preload(8) does not give the path %s" % L["preload"])
    _, sli1, _ = render(dest(L["mandir"] + "/man1/sli.1"))
    rc, usage, err = run([dest(L["bindir"] + "/sli"), "--help"], env=lib_env())
    expect(rc == 0, "sli --help: %s" % err)
    commands = re.findall(r"^  (\w+(?: issue)?)\s{2,}", usage, re.M)
    expect(len(commands) > 10, "cannot read the commands of sli --help: %s" % usage)
    missing = [c for c in commands if "sli " + c not in sli1]
    expect(not missing, "sli(1) does not describe: %s" % missing)
    codes = re.findall(r"\b(\d) [A-Za-z]", usage.split("Exit codes:")[1])
    status = sli1.split("EXIT STATUS")[1].split("ENVIRONMENT")[0]
    expect(codes and all(re.search(r"^\s+%s\s" % c, status, re.M) for c in codes),
           "sli(1) EXIT STATUS lacks one of the codes %s" % codes)


try:
    install()
    L = layout()
except Exception as e:  # noqa: BLE001 - nothing else can be checked without the install
    print("FAIL %-48s %s" % ("install", e), flush=True)
    failed.append("install")
else:
    print("ok   %-48s %s" % ("install", DEST), flush=True)
    for check in CHECKS:
        run_check(check)
shutil.rmtree(TMP, ignore_errors=True)
print("%d failed: %s" % (len(failed), ", ".join(failed)) if failed else "all passed")
sys.exit(1 if failed else 0)
