"""The built wheel works outside the checkout: `pip install dronedispatch-*.whl && dronedispatch demo`.

The wheel is built from a copy of the working tree (so no stale ``build/`` in the checkout leaks into it),
installed with pip into a fresh venv in a temporary folder, and its ``dronedispatch demo`` is run from
another temporary folder: the operations view, the mission templates and the city files must all come
from the installed package. The fresh venv takes the project's already-installed dependencies through
a ``.pth`` line (a plain path line: the project's own editable install is not loaded), so nothing is
downloaded but the build backend pip needs to build the wheel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "wheel-test-password"
#: Not part of the wheel's inputs: skipped when copying the tree to build from.
NOT_SOURCES = (
    ".git", ".venv", "var", "build", "dist", "tests", "bench", "node_modules", "test-results",
    "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache",
)  # fmt: skip
#: A few files of each kind the installed service needs, as they must appear in the wheel.
EXPECTED_IN_WHEEL = (
    "dronedispatch/cli.py",
    "dronedispatch/py.typed",
    "dronedispatch/store/migrations/env.py",
    "dronedispatch/_data/web/index.html",
    "dronedispatch/_data/web/vendor/leaflet/leaflet.js",
    "dronedispatch/_data/mission_templates/schema.json",
    "dronedispatch/_data/mission_templates/hover_roi.yaml",
    "dronedispatch/_data/sitl/fleet-ifez.yaml",
    "dronedispatch/_data/sitl/airspace-ifez.geojson",
    "dronedispatch/_data/sitl/cameras-ifez.yaml",
    "dronedispatch/_data/sitl/ifez-districts.geojson",
    "dronedispatch/_data/sitl/scenarios/surge.yaml",
)


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel-build")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work / "dist"), str(source)])
    (built,) = (work / "dist").glob("dronedispatch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel installed by pip, and the project's dependencies."""
    env_dir = tmp_path_factory.mktemp("wheel-venv") / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    # pip from the project's venv installs into the new one; the dependencies are not installed (--no-deps)
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)])  # fmt: skip
    # only now the dependencies: pip above must not see (and try to replace) the project's editable install
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_project_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(deps)), encoding="utf-8")
    return env_dir


def test_wheel_carries_the_web_view_the_templates_and_the_city_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in EXPECTED_IN_WHEEL if n not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "web/", "sitl/"))]
    # every file of the checkout's shipped folders made it (none dropped by a pattern)
    for folder in ("web", "mission_templates", "sitl"):
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert {f"dronedispatch/_data/{n}" for n in shipped} <= names, folder


def test_installed_package_is_the_wheel_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import dronedispatch, dronedispatch.cityfiles as c, dronedispatch.settings as s; "
        "print(dronedispatch.__file__); print(c.PROJECT_ROOT); print(s.Settings().web_dir)"
    )
    out = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_clean_env()).stdout.split()
    package, data_root, web_dir = (Path(p) for p in out)
    assert package.is_relative_to(venv) and not package.is_relative_to(ROOT)
    assert data_root == package.parent / "_data"
    assert (web_dir / "index.html").is_file() and web_dir.is_relative_to(venv)


@pytest.fixture
def demo(venv: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`dronedispatch demo` of the installed wheel, run from an empty folder outside the checkout.

    No simulator (its ports are fixed and other tests may hold them): the service listens for vehicles on
    a free UDP port instead; the city files, templates and web view are what is under test here.
    """
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = _free_port()
    env = _clean_env() | {
        "DD_DEMO_PASSWORD": PASSWORD,
        "DD_MAVLINK": f"udpin:127.0.0.1:{_free_port(socket.SOCK_DGRAM)}",
    }
    cmd = [str(venv / "bin" / "dronedispatch"), "demo", "--no-sitl", "--no-generator", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, f"http://127.0.0.1:{port}", run_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_demo_from_the_installed_wheel_serves_the_view_and_the_templates(
    demo: tuple[subprocess.Popen[str], str, Path],
) -> None:
    proc, base, run_dir = demo
    with httpx.Client(base_url=base, timeout=5) as client:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{proc.communicate()[0]}"
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "demo never answered /healthz"
            time.sleep(0.2)

        page = client.get("/ui/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert client.get("/ui/vendor/leaflet/leaflet.js").status_code == 200

        token = client.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        templates = client.get("/api/v1/mission-templates", headers=headers)
        assert templates.status_code == 200, templates.text
        assert "hover_roi" in {t["name"] for t in templates.json()}

    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "dronedispatch demo is running" in output
    assert (run_dir / "var" / "dronedispatch.db").is_file()  # its state went to the folder it ran in


def _clean_env() -> dict[str, str]:
    """The environment without DD_* settings (the city and web files must be the installed defaults)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
