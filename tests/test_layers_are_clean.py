"""Import contracts: gui -> simulator -> kernels, never back; inside simulator each package imports only from the
packages below it; the model never loads Qt. Checked on the source (every import statement, function-level ones too)
and, for Qt, in a fresh interpreter."""
import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# simulator's packages, lowest first: a package may import itself and those before it (the facade may import all).
SIMULATOR_LAYERS = ("core", "functional", "ops", "graphs", "engine", "data", "nn", "labs")
QT = ("PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _violations(package: str, allowed) -> list[str]:
    bad = []
    for path in _sources(package):
        for line, mod in _imports(path):
            why = allowed(path, mod)
            if why:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}: {why}")
    return bad


def _layer_of(path: Path) -> str | None:
    parts = path.relative_to(ROOT / "simulator").parts
    return parts[0] if len(parts) > 1 else None


def test_kernels_import_nothing_of_ours_and_no_qt():
    def allowed(path, mod):
        top = mod.split(".")[0]
        if top in ("simulator", "gui") or top in QT:
            return "kernels sit at the bottom"
    assert _violations("kernels", allowed) == []


def test_simulator_never_imports_gui_or_qt_and_packages_import_downwards():
    def allowed(path, mod):
        top = mod.split(".")
        if top[0] == "gui" or top[0] in QT:
            return "the model never imports Qt or the GUI"
        if top[0] != "simulator":
            return None
        layer = _layer_of(path)
        if layer is None:                      # simulator/__init__.py, the facade
            return None
        if len(top) == 1:
            return "import the defining module, not the simulator facade (it would hide an upward dependency)"
        target = top[1]
        if target not in SIMULATOR_LAYERS:
            return f"unknown package simulator.{target}: add it to SIMULATOR_LAYERS"
        if SIMULATOR_LAYERS.index(target) > SIMULATOR_LAYERS.index(layer):
            return f"simulator.{layer} sits below simulator.{target}"
    assert _violations("simulator", allowed) == []


def test_every_simulator_package_is_a_declared_layer():
    packages = {p.name for p in (ROOT / "simulator").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(SIMULATOR_LAYERS)
    assert not [p.name for p in (ROOT / "simulator").glob("*.py") if p.name != "__init__.py"], \
        "every simulator module lives in one of the layer packages"


@pytest.mark.parametrize("bad_source, expected", [
    ("from gui.theme import X\n", "never imports Qt"),
    ("from simulator.labs.search import grid_search\n", "sits below"),
    ("import simulator\n", "facade"),
])
def test_the_contract_checker_catches_violations(tmp_path, monkeypatch, bad_source, expected):
    fake = tmp_path / "simulator" / "core"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    " + bad_source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match=expected):
        test_simulator_never_imports_gui_or_qt_and_packages_import_downwards()


def _modules(package):
    return [m.name for m in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}.")] + [package]


def test_simulator_and_kernels_never_load_qt():
    mods = [m for p in ("simulator", "kernels") for m in _modules(p)]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n    importlib.import_module(m)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT!r})\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(mods) >= 30


def test_the_window_module_loads_without_numba_or_scipy():
    """The window shows before the kernels load (numba and scipy take about 0.7 s): the warm-up job imports them on
    its worker thread, and an op's first run would otherwise."""
    code = ("import sys\nimport gui.main_window\n"
            "heavy = sorted(m for m in ('numba', 'scipy', 'sklearn', 'networkx') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr


def test_import_all_loads_every_lab_model_without_qt():
    """The app's warm-up job imports the lab models on its worker thread (simulator.labs.import_all): every module of
    the folder, and nothing of Qt (importing Qt-bound code off the UI thread would not be safe)."""
    expected = sorted(f"simulator.labs.{p.stem}" for p in (ROOT / "simulator" / "labs").glob("*.py")
                      if p.stem != "__init__")
    code = ("import sys\nfrom simulator.labs import import_all\nnames = import_all()\n"
            "print(','.join(sorted(names)))\n"
            "assert all(n in sys.modules for n in names)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT!r})\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().split(",") == expected and len(expected) >= 20
