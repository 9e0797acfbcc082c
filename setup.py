"""Build script for brinery's C accelerator (metadata is in pyproject.toml).

The extension ``brinery._accel`` is always built, and a compile error fails
the install loudly: brinery never silently installs only the slow path.
To install the pure-Python implementation alone, ask for it:

    BRINERY_PURE_PYTHON=1 pip install .

Debug builds:

    BRINERY_BUILD=debug     -O0 -g, assertions on
    BRINERY_BUILD=sanitize  -O1 -g with AddressSanitizer and
                            UndefinedBehaviorSanitizer (see README for how
                            to run the tests under it)
"""

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


PURE = _flag("BRINERY_PURE_PYTHON")
BUILD = os.environ.get("BRINERY_BUILD", "release")

ACCEL_DIR = os.path.join("src", "brinery", "_accel")
sources = sorted(glob.glob(os.path.join(ACCEL_DIR, "*.c")))
headers = sorted(glob.glob(os.path.join(ACCEL_DIR, "*.h")))

compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers"]
link_args = []
macros = []
if BUILD == "release":
    compile_args += ["-O3"]
    macros += [("NDEBUG", "1")]
elif BUILD == "debug":
    compile_args += ["-O0", "-g3"]
    macros += [("BRINERY_DEBUG", "1")]
    compile_args += ["-UNDEBUG"]
elif BUILD == "sanitize":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=undefined"]
    compile_args += ["-O1", "-g"] + san + ["-UNDEBUG"]
    link_args += san
    macros += [("BRINERY_DEBUG", "1")]
else:
    sys.exit(f"BRINERY_BUILD must be release, debug or sanitize, not {BUILD!r}")


class StrictBuildExt(build_ext):
    """build_ext that explains what to do when the accelerator fails."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            sys.stderr.write(
                "\n*** brinery: the C accelerator brinery._accel failed to "
                "build. ***\n"
                "*** brinery does not fall back to the pure-Python "
                "implementation silently. ***\n"
                "*** Install a C compiler and the Python headers, or set "
                "BRINERY_PURE_PYTHON=1 to install the pure-Python "
                "implementation only. ***\n\n")
            raise exc


ext_modules = []
if not PURE:
    if not sources:
        sys.exit("brinery: no C sources found under " + ACCEL_DIR)
    ext_modules.append(Extension(
        "brinery._accel", sources=sources, depends=headers,
        include_dirs=[ACCEL_DIR], define_macros=macros,
        extra_compile_args=compile_args, extra_link_args=link_args))

setup(ext_modules=ext_modules, cmdclass={"build_ext": StrictBuildExt})
