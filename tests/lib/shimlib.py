"""shimlib.py — run a program with libsli-preload.so preloaded (the shim tests, the settings test)."""
import os
import sys

from harness import BUILD, Proc, free_port  # noqa: F401

PRELOAD = os.path.abspath(os.path.join(BUILD, "shim", "libsli-preload.so"))


def _sanitizer_runtimes():
    """A sanitizer-built shim needs its runtimes loaded first into hosts we did not build."""
    import subprocess
    out = subprocess.run(["ldd", PRELOAD], stdout=subprocess.PIPE, text=True).stdout
    libs = []
    for line in out.splitlines():
        if "libasan" in line or "libubsan" in line:
            libs.append(line.split("=>")[1].split()[0])
    return libs


SANITIZER_LIBS = _sanitizer_runtimes()


def shim_env(**settings):
    """Environment for a preloaded program: LD_PRELOAD plus the SLI_* settings given."""
    env = {"LD_PRELOAD": " ".join(SANITIZER_LIBS + [PRELOAD])}
    if SANITIZER_LIBS:
        env["ASAN_OPTIONS"] = "detect_leaks=0"  # leaks of hosts we did not build are not ours
    env.update({k: str(v) for k, v in settings.items()})
    return env


def preloaded(d, name, args, **settings):
    return Proc(args, d, name, env=shim_env(**settings))
