#!/usr/bin/env python3
"""The project's two commands, on a machine that has only Python (and the services).

    python3 dev.py demo    run the example project: a worker, demo jobs, the admin
    python3 dev.py test    run the whole test suite on SQLite and PostgreSQL

``test`` runs every supported Django (5.2 on Python 3.11 with the django-tasks
backport, 6.0 on 3.12, 6.1 on 3.13) on SQLite and PostgreSQL, and 5.2 on MariaDB; ``test --all`` runs
the whole tox matrix. Extra arguments after
``--`` go to pytest: ``python3 dev.py test -- -k worker -x``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
DEFAULT_ENVS = [
    "lint",
    "py311-django52",
    "py312-django60",
    "py313-django61",
    "py311-django52-mysql",
    "browser",
    "faults",
]


def venv_python() -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def ensure_venv(*requirements: str) -> Path:
    """A virtualenv in .venv with the project and ``requirements`` installed, kept up to date."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + repr(requirements).encode()).hexdigest()
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == wanted and venv_python().exists():
        return venv_python()
    if not venv_python().exists():
        print(f"Creating a virtualenv in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing django_kinetik and its dependencies ...", flush=True)
    pip(["--upgrade", "pip"])
    pip(["-e", str(ROOT), *requirements])
    stamp.write_text(wanted)
    return venv_python()


def pip(arguments: list[str]) -> None:
    """``pip install``, quiet unless it fails."""
    done = subprocess.run(
        [str(venv_python()), "-m", "pip", "install", "-q", *arguments], capture_output=True, text=True
    )
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"pip install {' '.join(arguments)} failed (exit {done.returncode})")


def interpreter_path() -> str:
    """PATH with every installed CPython's bin directory ahead, so tox finds 3.11-3.13.

    pyenv's versions come before its shims: a shim only works for the version
    that is selected, and tox needs all of them at once.
    """
    directories = []
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in ("3.11", "3.12", "3.13"):
        found = shutil.which(f"python{minor}")
        candidates = sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{minor}.*", "bin")))
        if candidates:
            directories.append(candidates[-1])
        elif found:
            directories.append(os.path.dirname(found))
    return os.pathsep.join([*dict.fromkeys(directories), os.environ.get("PATH", "")])


#: Django's Tasks framework for the demo's django.tasks function: built into Django 6
#: (Python 3.12+ gets it); on Python 3.11, Django 5.2 needs the backport
DEMO_REQUIREMENTS = ("django-tasks>=0.10; python_version < '3.12'",)


def demo(args: list[str]) -> int:
    python = ensure_venv(*DEMO_REQUIREMENTS)
    return subprocess.call([str(python), str(ROOT / "manage.py"), "kinetik_demo", *args], cwd=ROOT)


def test(args: list[str]) -> int:
    everything = "--all" in args
    args = [arg for arg in args if arg != "--all"]
    pytest_args = args[args.index("--") + 1 :] if "--" in args else []
    python = ensure_venv("tox>=4.22")
    env = dict(os.environ, PATH=interpreter_path())
    command = [str(python), "-m", "tox", "run"]
    if not everything:
        command += ["-e", ",".join(DEFAULT_ENVS)]
    if pytest_args:
        command += ["--", *pytest_args]
    return subprocess.call(command, cwd=ROOT, env=env)


def main() -> int:
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
