"""What the binding's tests share: the build tree, the `sli` CLI, and the skip for an ASan build
(python cannot load an ASan-built libsli.so.1: libasan must come first in the process)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
BUILD = os.environ.get("SLI_BUILD_DIR", os.path.join(HERE, "..", "..", "..", "build"))
SLI = os.path.join(BUILD, "tools", "sli")


def skip_if_asan():
    lib = os.path.join(BUILD, "plugin", "libsli.so.1")
    out = subprocess.run(["ldd", lib], stdout=subprocess.PIPE, text=True).stdout
    if "libasan" in out:
        print("SKIP: python cannot load the ASan-built libsli.so.1 (libasan must come first in a "
              "process python starts); the plain build runs these tests")
        sys.exit(77)
