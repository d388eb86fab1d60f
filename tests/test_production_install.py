"""The production install carries no sandboxes: the connector runs without them and says what to do.

A production install (the Dockerfile's `pip install .`) has no `sandboxes` package; these tests hide it
from a real `connector` process (`sys.modules["sandboxes"] = None` makes every import of it fail, as on
an install without it) and check what a user of that install sees.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WITHOUT_SANDBOXES = "import sys; sys.modules['sandboxes'] = None\n"


def run_without_sandboxes(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "TEMPORAL_"))},
        "PYTHONPATH": str(REPO),
        "DATA_DIR": str(cwd / "data"),
    }
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SANDBOXES + code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def connector_without_sandboxes(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_without_sandboxes("from connector.cli import main; main(sys.argv[1:])", *args, cwd=cwd)


def test_the_production_cli_offers_no_sandbox_commands(tmp_path: Path) -> None:
    listed = connector_without_sandboxes("--help", cwd=tmp_path)
    assert listed.returncode == 0
    # The help's command list: one row per command, its name first (after the panel's border).
    commands = {line.strip("│ ").split(" ", 1)[0] for line in listed.stdout.splitlines()}
    assert "create-order" not in commands and "sandboxes" not in commands
    assert {"run", "import", "orders", "status"} <= commands  # the product's own commands are all there
    refused = connector_without_sandboxes("create-order", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("connector: no such command 'create-order'") and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_embedded_mode_without_sandboxes_says_what_to_do_in_one_sentence(tmp_path: Path) -> None:
    result = connector_without_sandboxes("run", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("connector: `connector run` without VTEX credentials (embedded mode) needs the VTEX")
    assert "pip install -e ./sandboxes" in line and "VTEX_APP_KEY" in line
    assert not (tmp_path / "data" / "temporal.db").exists()  # refused before starting anything


def test_every_product_module_imports_without_the_sandboxes(tmp_path: Path) -> None:
    code = (
        "import importlib, pkgutil\n"
        "failed = []\n"
        "for package in ('connector', 'workflows', 'activities'):\n"
        "    root = importlib.import_module(package)\n"
        "    for info in pkgutil.walk_packages(root.__path__, package + '.'):\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except ImportError:\n"
        "            failed.append(info.name)\n"
        "import worker\n"
        "print(' '.join(failed))\n"
    )
    result = run_without_sandboxes(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # Only the sandbox commands' own module needs them, and the CLI imports it only when they are installed.
    assert result.stdout.split() == ["connector.cli.sandboxes"]


def test_the_image_and_the_package_leave_the_sandboxes_out() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copied and not any("sandboxes" in part for parts in copied for part in parts)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]
    assert not any(name.startswith("sandboxes") or "sandbox" in name for name in packages)
    # The dev install brings them: `make install` installs the sandboxes' own distribution.
    assert "-e ./sandboxes" in (REPO / "Makefile").read_text()


def test_the_image_build_packages_what_the_product_reads_at_run_time(tmp_path: Path) -> None:
    """What the Dockerfile copies, built as it builds it (`pip install .` makes this wheel first): the
    console's templates and the store's migrations are in, the sandboxes are not."""
    source = tmp_path / "image"
    source.mkdir()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            # Every COPY of this Dockerfile keeps the repository's layout (`COPY connector ./connector`).
            for part in line.split()[1:-1]:
                copied = REPO / part
                if copied.is_dir():
                    shutil.copytree(copied, source / part, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(copied, source / part)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path / "wheel"), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    templates = {name for name in names if name.startswith("connector/console/templates/")}
    assert {f"connector/console/templates/{page}.html" for page in ("orders", "order", "login")} <= templates
    revisions = [name for name in names if name.startswith("connector/store/migrations/versions/v")]
    assert len(revisions) >= 2
    assert not any(name.startswith("sandboxes/") for name in names)
    # The `connector` command's package (the console script is connector.cli:main).
    assert {"connector/cli/__init__.py", "connector/cli/__main__.py", "connector/cli/orders.py"} <= set(names)


def test_the_sandboxes_import_nothing_from_the_product() -> None:
    """They stand for VTEX and the marketplace as their docs describe them, not as the connector reads them."""
    imported: set[str] = set()
    for module in (REPO / "sandboxes" / "src" / "sandboxes").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported.isdisjoint({"connector", "workflows", "activities", "worker"}), imported
