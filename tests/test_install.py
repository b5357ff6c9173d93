"""``pip install .`` gives a working ``expr-models`` command.

The install goes into a fresh venv (``--without-pip``) that sees exactly the packages of the interpreter running the
tests, through a ``.pth`` file that adds each of its site directories: the system's, or those of the virtual
environment the tests run in (``--system-site-packages`` would show the *base* interpreter's instead, which in a venv
hold neither torch nor setuptools). So pip and setuptools build it from what is installed (torch and the rest are
GBs), and ``--no-index`` forbids pip to download anything: the install fails if pyproject.toml declares a dependency
that is not installed, or misses the console script, and the command then runs from the venv's copy of the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def site_dirs() -> list[str]:
    """The site directories this interpreter imports installed packages from."""
    return [entry for entry in sys.path
            if Path(entry).name in ("site-packages", "dist-packages") and Path(entry).is_dir()]


def venv_seeing_these_packages(venv: Path) -> Path:
    """A venv whose python imports this interpreter's installed packages after its own (their ``.pth`` files too, as
    the interpreter itself reads them)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=300).stdout.strip()
    lines = [f"import site; site.addsitedir({entry!r})\n" for entry in site_dirs()]
    (Path(purelib) / "_tested_interpreter_site.pth").write_text("".join(lines))
    return python


def test_pip_install_gives_a_working_command(tmp_path, astronaut):
    from PIL import Image

    source = tmp_path / "source"
    source.mkdir()
    shutil.copy2(REPO_ROOT / "pyproject.toml", source)  # built from a copy: no build/ or egg-info in the checkout
    shutil.copytree(REPO_ROOT / "expr_models", source / "expr_models", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    python = venv_seeing_these_packages(venv)
    seen = subprocess.run([str(python), "-c", "import sys; print(*sys.path, sep='\\n')"], capture_output=True,
                          text=True, check=True, timeout=300).stdout.splitlines()
    assert set(site_dirs()) <= set(seen), "the install venv does not see this interpreter's packages"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation",
                          "--disable-pip-version-check", "-q", str(source)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]

    command = venv / "bin" / "expr-models"
    run = lambda *args: subprocess.run([str(command), *args], cwd=tmp_path, capture_output=True, text=True,  # noqa
                                       timeout=600, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin",
                                                         "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    usage = run("--help")
    assert usage.returncode == 0 and all(name in usage.stdout for name in ("edit", "push", "space-export"))

    # A real edit with the installed package (not the checkout's source) and the committed editor repo.
    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpg")
    edited = run("edit", "astronaut.jpg", "--models", str(REPO_ROOT / "checkpoints"), "--out", "edited", "--json")
    assert edited.returncode == 0, edited.stderr[-3000:]
    assert (tmp_path / "edited" / "astronaut.png").is_file()
    where = subprocess.run([str(python), "-c", "import expr_models; print(expr_models.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert str(venv) in where.stdout, where.stdout + where.stderr
