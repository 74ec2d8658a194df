"""Before Qt opens a window on X11: are the system libraries its xcb plugin needs installed? Qt itself only says
"Could not load the Qt platform plugin xcb" and aborts; this names the missing libraries and the Debian/Ubuntu
packages that provide them. No Qt is imported here (the check must run before Qt can abort the process)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["PACKAGES", "missing_libraries", "needs_xcb", "parse_ldd", "xcb_plugin", "xcb_problem"]

# soname prefix -> the Debian/Ubuntu package that provides it (what README lists for a real window)
PACKAGES = {
    "libxcb-cursor.so": "libxcb-cursor0", "libxcb-icccm.so": "libxcb-icccm4", "libxcb-keysyms.so": "libxcb-keysyms1",
    "libxcb-image.so": "libxcb-image0", "libxcb-render-util.so": "libxcb-render-util0",
    "libxcb-shape.so": "libxcb-shape0", "libxcb-randr.so": "libxcb-randr0", "libxcb-xkb.so": "libxcb-xkb1",
    "libxkbcommon-x11.so": "libxkbcommon-x11-0", "libxkbcommon.so": "libxkbcommon0", "libGL.so": "libgl1",
    "libEGL.so": "libegl1", "libX11.so": "libx11-6", "libX11-xcb.so": "libx11-xcb1", "libdbus-1.so": "libdbus-1-3",
    "libfontconfig.so": "libfontconfig1", "libglib-2.0.so": "libglib2.0-0", "libxcb.so": "libxcb1",
    "libfreetype.so": "libfreetype6",
}


def needs_xcb(environ: dict | None = None, platform: str | None = None) -> bool:
    """True when Qt will try its xcb plugin: Linux, an X display, and no other platform asked for."""
    env = os.environ if environ is None else environ
    if (platform or sys.platform) != "linux":
        return False
    wanted = env.get("QT_QPA_PLATFORM", "")
    if wanted:
        return wanted.split(":")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin inside the installed PySide6, found without importing Qt."""
    import importlib.util
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for candidate in (Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so",
                          Path(root) / "plugins" / "platforms" / "libqxcb.so"):
            if candidate.exists():
                return candidate
    return None


def parse_ldd(output: str) -> list[str]:
    """The sonames ldd reports as 'not found'."""
    return sorted({m.group(1) for m in re.finditer(r"^\s*(\S+)\s*=>\s*not found", output, re.M)})


def missing_libraries(plugin: Path) -> list[str]:
    """The libraries the plugin (and what it links) cannot find, by ldd; [] when ldd is not there to ask."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd(out)


def _package(soname: str) -> str:
    for prefix, package in PACKAGES.items():
        if soname.startswith(prefix):
            return package
    return soname


def xcb_problem(environ: dict | None = None) -> str | None:
    """A message naming the missing libraries and the install command, or None when a window can open."""
    if not needs_xcb(environ):
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    if not missing:
        return None
    packages = sorted({_package(s) for s in missing})
    return ("Backprop Studio cannot open a window: Qt's X11 (xcb) plugin needs system libraries that are not "
            f"installed: {', '.join(missing)}.\nOn Debian/Ubuntu install them with:\n\n"
            f"    sudo apt-get install -y {' '.join(packages)}\n\n"
            "(The tests and --screenshot run without a display and do not need them.)")
