"""The package is one `chipknit` namespace, declared in pyproject, importable anywhere."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _source_packages() -> set[str]:
    """Every folder with an __init__.py, named as the package it becomes."""
    found = set()
    for package, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            found.add(".".join([package, *relative.parts]))
    return found


def test_every_subpackage_is_declared():
    declared = set(SETUPTOOLS["packages"])
    missing = _source_packages() - declared
    assert not missing, f"subpackages not declared in pyproject.toml: {sorted(missing)}"


def test_every_declared_package_exists():
    assert set(SETUPTOOLS["packages"]) <= _source_packages()


def test_top_level_folders_map_to_the_namespace():
    assert SETUPTOOLS["package-dir"]["chipknit.rtl"] == "rtl"
    assert SETUPTOOLS["package-dir"]["chipknit.tb"] == "tb"
    assert SETUPTOOLS["package-dir"]["chipknit.platforms"] == "platforms"
    assert SETUPTOOLS["package-dir"]["chipknit"] == "scripts"


def test_imports_work_outside_the_source_tree(tmp_path):
    """From an unrelated folder, every package imports from the installed distribution."""
    code = ("import importlib, json, sys; "
            "names = json.loads(sys.argv[1]); "
            "print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))")
    names = sorted(SETUPTOOLS["packages"])
    completed = subprocess.run([sys.executable, "-c", code, __import__("json").dumps(names)],
                               cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "sys.path" not in (ROOT / "tests" / "conftest.py").read_text()


def test_no_sys_path_tricks():
    offenders = [str(path.relative_to(ROOT)) for folder in ("rtl", "tb", "platforms", "scripts",
                                                             "tests")
                 for path in (ROOT / folder).rglob("*.py")
                 if "sys.path." + "insert" in path.read_text()
                 or "sys.path." + "append" in path.read_text()]
    assert not offenders, offenders


def _imports(path: Path) -> set[str]:
    """Modules a file imports (absolute names; relative imports resolved in its package)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).parent.parts)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module or ""]).strip("."))
            else:
                names.add(node.module)
    return names


def test_rtl_knows_nothing_of_tb_scripts_or_platforms():
    offenders = {str(path.relative_to(ROOT)): sorted(bad) for path in (ROOT / "rtl").rglob("*.py")
                 if (bad := {name for name in _imports(path) if name.startswith(
                     ("chipknit.tb", "chipknit.platforms", "chipknit.bench", "chipknit.cli",
                      "tb.", "platforms.", "scripts."))})}
    assert not offenders, offenders


def test_reference_models_import_no_rtl():
    offenders = {str(path.relative_to(ROOT)): sorted(bad)
                 for path in (ROOT / "tb" / "models").rglob("*.py")
                 if (bad := {name for name in _imports(path)
                             if name.startswith(("chipknit.rtl", "amaranth", "rtl."))})}
    assert not offenders, offenders
