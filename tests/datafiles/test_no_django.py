"""datafiles is a library: importing every one of its modules loads no Django (profiling and the
pipeline's cleaning read through it outside any app)."""

import subprocess
import sys
from pathlib import Path

import datafiles

CHECK = """
import pkgutil, sys
import datafiles
for module in pkgutil.iter_modules(datafiles.__path__):
    __import__(f"datafiles.{module.name}")
loaded = sorted(name for name in sys.modules if name == "django" or name.startswith("django."))
assert not loaded, loaded
print("ok")
"""


def test_importing_datafiles_loads_no_django():
    root = Path(datafiles.__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}  # no DJANGO_SETTINGS_MODULE
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
