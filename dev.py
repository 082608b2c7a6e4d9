#!/usr/bin/env python3
"""The project's two commands, on a machine that has only Python (and the services).

    python3 dev.py demo    run the example project: a worker, demo jobs, the admin
    python3 dev.py test    run the whole test suite on SQLite and PostgreSQL

``test`` runs every supported Django (5.2 on Python 3.11 with the django-tasks
backport, 6.0 on 3.12, 6.1 on 3.13) on SQLite and PostgreSQL, and 5.2 on MariaDB; ``test --all`` runs
the whole tox matrix. The environments run three at a time (``KINETIK_TEST_PARALLEL``
sets how many; 1 runs them one after another, with their output live), the fault
runs last and alone. Extra arguments after
``--`` go to pytest: ``python3 dev.py test -- -k worker -x``.

The virtualenv is ``.venv`` (``KINETIK_DEV_VENV`` names another). Ctrl-C stops
whatever runs (it reaches the children too) and exits with status 130.
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
VENV = Path(os.environ.get("KINETIK_DEV_VENV") or ROOT / ".venv")
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


def installed_stamp(requirements: tuple[str, ...]) -> str:
    """What .venv/.installed holds once the project (as pyproject.toml is now) and ``requirements`` are in."""
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + repr(requirements).encode()).hexdigest()


def ensure_venv(*requirements: str) -> Path:
    """A virtualenv in .venv with the project and ``requirements`` installed, kept up to date."""
    wanted = installed_stamp(requirements)
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == wanted and venv_python().exists():
        return venv_python()
    # The first install downloads everything and takes a while: pip shows its progress.
    # Later ones (pyproject.toml changed) only add a little: quiet unless they fail.
    first = not stamp.exists()
    if not venv_python().exists():
        print(f"Creating a virtualenv in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing django_kinetik and its dependencies ...", flush=True)
    pip(["--upgrade", "pip"], quiet=not first)
    pip(["-e", str(ROOT), *requirements], quiet=not first)
    stamp.write_text(wanted)
    return venv_python()


def pip(arguments: list[str], *, quiet: bool) -> None:
    """``pip install``; ``quiet``: its output only if it fails."""
    command = [str(venv_python()), "-m", "pip", "install", *(["-q"] if quiet else []), *arguments]
    done = subprocess.run(command, capture_output=quiet, text=True)
    if done.returncode:
        if quiet:
            sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"pip install {' '.join(arguments)} failed (exit {done.returncode})")


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Run ``command`` to its end and return its exit status (130 after a Ctrl-C).

    A Ctrl-C in the terminal reaches the child as well, which stops in its
    own way (the demo stops its worker gracefully): wait for it rather than
    leave it behind; only a third Ctrl-C kills it.
    """
    process = subprocess.Popen(command, cwd=cwd, env=env)
    interrupts = 0
    while True:
        try:
            status = process.wait()
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts >= 3:
                process.kill()
            continue
        return 130 if interrupts else status


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
    return run([str(python), str(ROOT / "manage.py"), "kinetik_demo", *args], cwd=ROOT)


def test(args: list[str]) -> int:
    everything = "--all" in args
    args = [arg for arg in args if arg != "--all"]
    pytest_args = args[args.index("--") + 1 :] if "--" in args else []
    wanted = os.environ.get("KINETIK_TEST_PARALLEL") or "3"
    if not wanted.isdigit() or int(wanted) < 1:
        raise SystemExit(f"KINETIK_TEST_PARALLEL must be a whole number from 1 up, not {wanted!r}")
    parallel = int(wanted)
    python = ensure_venv("tox>=4.22")
    env = dict(os.environ, PATH=interpreter_path())
    # Side by side, since the suite mostly waits (see tox.ini); each one's output comes whole as it ends.
    command = [str(python), "-m", "tox", *(["run-parallel", "-p", str(parallel)] if parallel > 1 else ["run"])]
    if not everything:
        command += ["-e", ",".join(DEFAULT_ENVS)]
    if pytest_args:
        command += ["--", *pytest_args]
    return run(command, cwd=ROOT, env=env)


def main() -> int:
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # while pip installs, say: what it was doing stopped too
        print("\nInterrupted.", file=sys.stderr)
        sys.exit(130)
