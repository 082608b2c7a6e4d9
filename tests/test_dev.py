"""``python3 dev.py demo``, as the README has a newcomer run it: Ctrl-C, a first install, a second run."""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import venv

import pytest

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow


def _dev_module():
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _environment(tmp_path, virtualenv):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "KINETIK_"))}
    env.update(
        KINETIK_DEV_VENV=str(virtualenv),
        EXAMPLE_DB=str(tmp_path / "example.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def installed(tmp_path):
    """dev.py's virtualenv, as after its first run: this test run's packages, and the stamp that says so."""
    virtualenv = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(virtualenv)
    [site_packages] = (virtualenv / "lib").glob("python*/site-packages")
    (site_packages / "suite.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    dev = _dev_module()
    (virtualenv / ".installed").write_text(dev.installed_stamp(dev.DEMO_REQUIREMENTS))
    return _environment(tmp_path, virtualenv)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Terminal:
    """``python3 dev.py ...`` in a terminal of its own: Ctrl-C signals every process in it, as a terminal does."""

    def __init__(self, *args, env):
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "dev.py"), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def shows(self, text, timeout=90):
        wait_for(lambda: text in self.output or self.process.poll() is not None, timeout)
        return text in self.output

    def ctrl_c(self):
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self, timeout=60):
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=10)
        return code


def test_ctrl_c_on_the_demo_stops_it_cleanly_with_status_130_and_a_second_run_says_what_it_clears(installed):
    first = Terminal("demo", "--exit", env=installed)
    assert first.finish(timeout=120) == 0, first.output
    assert "Clearing" not in first.output  # nothing to clear on a first run
    demo_jobs = len(re.findall(r"^ +job +\d+ .* (?:completed|failed)", first.output, flags=re.MULTILINE))

    second = Terminal("demo", "--port", str(_free_port()), env=installed)
    assert second.shows("press Ctrl-C to stop"), second.output
    second.ctrl_c()
    code = second.finish()
    output = second.output
    assert code == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "Stopping the worker and the admin" in output
    # Its worker stopped gracefully (one signal, not a second one on top).
    assert "stopped after" in output, output
    cleared = re.search(r"Clearing (\d+) job\(s\) from earlier runs", output)
    assert cleared, output
    assert int(cleared.group(1)) >= demo_jobs > 0


def test_ctrl_c_while_the_demo_jobs_run_is_clean_too(installed):
    terminal = Terminal("demo", "--port", str(_free_port()), env=installed)
    assert terminal.shows("Creating demo jobs"), terminal.output
    terminal.ctrl_c()
    code = terminal.finish()
    assert code == 130, terminal.output
    assert "Traceback" not in terminal.output and "KeyboardInterrupt" not in terminal.output, terminal.output


def test_a_first_run_shows_pip_at_work(tmp_path):
    # No package index here: pip has nothing to download, and says so itself, on the screen.
    env = dict(_environment(tmp_path, tmp_path / "fresh"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    terminal = Terminal("demo", env=env)
    code = terminal.finish(timeout=300)
    output = terminal.output
    assert "Creating a virtualenv in" in output
    assert "Requirement already satisfied: pip" in output, output  # pip's own words, not hidden
    assert code == 1, output
    assert output.rstrip().splitlines()[-1].startswith("pip install -e ")
    assert "Traceback" not in output


def test_a_parallel_count_that_is_not_a_number_is_refused_before_anything_installs(tmp_path):
    env = dict(os.environ, KINETIK_TEST_PARALLEL="three", KINETIK_DEV_VENV=str(tmp_path / "venv"))
    done = subprocess.run([sys.executable, str(ROOT / "dev.py"), "test"], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "KINETIK_TEST_PARALLEL must be a whole number from 1 up, not 'three'" in done.stderr
    assert not (tmp_path / "venv").exists()
