"""The preflight before a real window: the xcb plugin's missing libraries are named with their packages."""
import json
import subprocess
import sys
from pathlib import Path

from gui import platform_check as pc

ROOT = Path(__file__).resolve().parents[1]

LDD = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /site/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-cursor.so.0 => not found
"""


def test_ldd_output_is_parsed_for_missing_libraries():
    assert pc.parse_ldd(LDD) == ["libxcb-cursor.so.0", "libxkbcommon-x11.so.0"]
    assert pc.parse_ldd("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_only_an_x11_start_needs_the_check():
    assert pc.needs_xcb({"DISPLAY": ":0"}, "linux")
    assert not pc.needs_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert pc.needs_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not pc.needs_xcb({}, "linux")                              # no display: nothing to open
    assert not pc.needs_xcb({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not pc.needs_xcb({"DISPLAY": ":0"}, "darwin")


def test_the_message_names_libraries_and_packages(monkeypatch):
    monkeypatch.setattr(pc, "xcb_plugin", lambda: Path("/fake/libqxcb.so"))
    monkeypatch.setattr(pc, "missing_libraries", lambda plugin: pc.parse_ldd(LDD))
    text = pc.xcb_problem({"DISPLAY": ":0"})
    assert "libxcb-cursor.so.0, libxkbcommon-x11.so.0" in text
    assert "sudo apt-get install -y libxcb-cursor0 libxkbcommon-x11-0" in text
    monkeypatch.setattr(pc, "missing_libraries", lambda plugin: [])
    assert pc.xcb_problem({"DISPLAY": ":0"}) is None
    assert pc.xcb_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_the_real_plugin_is_found_and_checked():
    plugin = pc.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    # whatever this machine lacks, the message can name the package for it
    assert all(pc._package(name) != name for name in pc.missing_libraries(plugin))


def test_main_refuses_to_start_a_window_it_cannot_open(tmp_path):
    code = ("import sys; from gui import platform_check as pc\n"
            "pc.missing_libraries = lambda plugin: ['libxcb-cursor.so.0']\n"
            "import main; sys.exit(main.main([]))\n")
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": ":99", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "libxcb-cursor0" in proc.stderr and "cannot open a window" in proc.stderr


def test_the_app_runs_blas_on_one_thread_and_convolutions_on_the_cores():
    code = ("import json, os\n"
            "for v in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'BACKPROP_CONV_THREADS'):\n"
            "    os.environ.pop(v, None)\n"
            "import main\nmain.threads_for_the_app()\n"
            "import numpy, threadpoolctl\nfrom kernels import conv\n"
            "blas = [i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
            "print(json.dumps([blas, conv.THREADS, len(os.sched_getaffinity(0))]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    blas, threads, cores = json.loads(out.stdout)
    assert blas and set(blas) == {1}                    # numpy's BLAS: one thread
    assert threads == max(1, min(cores, 4))             # the convolutions share the cores themselves
