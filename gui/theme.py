"""The app's look in one place: a calm light palette, value/gradient colours (green/red, as on the CS231n slides),
node colours per kind and op family, fonts, number formatting and the diverging heatmap used for tensor thumbnails."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPalette
from PySide6.QtWidgets import QApplication

from simulator.core.formatting import format_scalar  # noqa: F401  (the app writes numbers one way)

# ---- colours ---------------------------------------------------------------------------------------------------

BACKGROUND = QColor("#f6f7f9")
GRID_DOT = QColor("#cdd3dc")
GRID_DOT_MAJOR = QColor("#b3bbc7")
TEXT = QColor("#1f2933")
TEXT_MUTED = QColor("#6b7785")
ACCENT = QColor("#2f74d0")          # selection, focus
WIRE = QColor("#8d97a5")
WIRE_HOVER = QColor("#5d6878")
WIRE_RUBBER = QColor("#2f74d0")
LABEL_BACKGROUND = QColor(246, 247, 249, 225)
SHADOW = QColor(20, 30, 45, 28)
ERROR = QColor("#c8372d")

VALUE = QColor("#1e8c3a")           # forward values (green, as on the slides)
GRADIENT = QColor("#c8372d")        # gradients (red)
PHASE = {"forward": VALUE, "backward": GRADIENT, "update": QColor("#7a4cc2")}
LOCAL = QColor("#2f6fb0")           # local gradients (d out / d input) in the chain-rule view

# the same colours as "#rrggbb" text, for rich-text labels
CANVAS_HEX = BACKGROUND.name()
INK_HEX = TEXT.name()
MUTED_HEX = TEXT_MUTED.name()
VALUE_HEX = VALUE.name()
GRAD_HEX = GRADIENT.name()
LOCAL_HEX = LOCAL.name()
ACCENT_HEX = ACCENT.name()


@dataclass(frozen=True)
class NodeColours:
    fill: QColor
    border: QColor
    text: QColor


def _nc(fill: str, border: str, text: str = "#1f2933") -> NodeColours:
    return NodeColours(QColor(fill), QColor(border), QColor(text))


KIND_COLOURS: dict[str, NodeColours] = {
    "input": _nc("#e7f0fb", "#6f9fd8"),
    "param": _nc("#fdf0d8", "#d89a2b", "#5c3d06"),
    "const": _nc("#eceef1", "#a3aab4", "#4a5260"),
}
FAMILY_COLOURS: dict[str, NodeColours] = {
    "arithmetic": _nc("#ffffff", "#7b84d6"),
    "activations": _nc("#ffffff", "#3a9e9a"),
    "linear": _nc("#ffffff", "#9a66c8"),
    "reduction": _nc("#ffffff", "#5f86b0"),
    "loss": _nc("#ffffff", "#d0577c"),
}
_DEFAULT_FAMILY = _nc("#ffffff", "#7d8794")


def node_colours(kind: str, family: str | None = None) -> NodeColours:
    """Colours of a node box: leaves by kind, op nodes by their op's family."""
    if kind in KIND_COLOURS:
        return KIND_COLOURS[kind]
    return FAMILY_COLOURS.get(family or "", _DEFAULT_FAMILY)


# ---- fonts -----------------------------------------------------------------------------------------------------

def font(point_size: float, weight: QFont.Weight = QFont.Weight.Normal, mono: bool = False) -> QFont:
    """The application's UI font at a size and weight (call once a QApplication exists: before it, Qt has
    no default family and may fall back to a serif face)."""
    f = QFont()
    if mono:
        f.setFamilies(["Menlo", "Consolas", "DejaVu Sans Mono", "monospace"])
        f.setStyleHint(QFont.StyleHint.Monospace)
    f.setPointSizeF(point_size)
    f.setWeight(weight)
    return f


@dataclass(frozen=True)
class CanvasFonts:
    symbol: QFont          # the op symbol in a node box
    symbol_small: QFont    # longer symbols ("softplus")
    name: QFont            # a leaf's name
    node_id: QFont         # an op node's id above its box
    port: QFont            # input port names
    number: QFont          # values and gradients


@lru_cache(maxsize=1)
def canvas_fonts() -> CanvasFonts:
    return CanvasFonts(symbol=font(15, QFont.Weight.DemiBold), symbol_small=font(10.5, QFont.Weight.DemiBold),
                       name=font(9, QFont.Weight.DemiBold), node_id=font(8), port=font(7.5),
                       number=font(8.5, QFont.Weight.Medium))


# Text widths per (font, text) for the canvas: a 1,000-node graph asks for about 13,000 of them while it is laid out and
# drawn, and a step for one per label that changed. The font objects are kept with their metrics, so an id is never
# reused for another font (apply() makes new canvas fonts: six more entries, never pruned).
_METRICS: dict[int, tuple[QFont, QFontMetricsF]] = {}
_WIDTHS: dict[tuple[int, str], float] = {}
_MAX_WIDTHS = 50_000


def text_width(font: QFont, text: str) -> float:
    """QFontMetricsF(font).horizontalAdvance(text), remembered."""
    key = (id(font), text)
    w = _WIDTHS.get(key)
    if w is None:
        held = _METRICS.get(id(font))
        if held is None or held[0] is not font:
            held = _METRICS[id(font)] = (font, QFontMetricsF(font))
        if len(_WIDTHS) >= _MAX_WIDTHS:
            _WIDTHS.clear()
        w = _WIDTHS[key] = held[1].horizontalAdvance(text)
    return w


def apply(app: QApplication) -> None:
    """A calm light look for the whole app, whatever the platform's dark/light setting: Fusion with our palette."""
    app.setStyle("Fusion")
    pal = QPalette()
    window, base = QColor("#eef0f3"), QColor("#ffffff")
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.Window, window)
        pal.setColor(group, QPalette.ColorRole.WindowText, TEXT)
        pal.setColor(group, QPalette.ColorRole.Base, base)
        pal.setColor(group, QPalette.ColorRole.AlternateBase, QColor("#f5f6f8"))
        pal.setColor(group, QPalette.ColorRole.Text, TEXT)
        pal.setColor(group, QPalette.ColorRole.Button, QColor("#f7f8fa"))
        pal.setColor(group, QPalette.ColorRole.ButtonText, TEXT)
        pal.setColor(group, QPalette.ColorRole.Highlight, ACCENT)
        pal.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
        pal.setColor(group, QPalette.ColorRole.ToolTipBase, QColor("#fffdf5"))
        pal.setColor(group, QPalette.ColorRole.ToolTipText, TEXT)
        pal.setColor(group, QPalette.ColorRole.PlaceholderText, TEXT_MUTED)
        pal.setColor(group, QPalette.ColorRole.Link, ACCENT)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#a3aab4"))
    app.setPalette(pal)
    app.setStyleSheet(STYLE_SHEET)
    canvas_fonts.cache_clear()   # canvas fonts follow the application font


# Named widgets (setObjectName) get their look here, in one place.
STYLE_SHEET = f"""
QLabel#SectionHeader {{ color: {TEXT_MUTED.name()}; font-weight: 600; padding-top: 8px; }}
QLabel#Muted {{ color: {TEXT_MUTED.name()}; }}
QLabel#ErrorText {{ color: {ERROR.name()}; }}
QLabel#ErrorBanner {{ color: {ERROR.name()}; background: #fbeaea; border-bottom: 1px solid #f0c9c6;
                      padding: 5px 12px; }}
QLabel#ExpressionLabel {{ font-weight: 600; font-size: 11pt; color: {TEXT.name()}; }}
QWidget#ExpressionBar {{ background: #f7f8fa; border-bottom: 1px solid #dde1e7; }}
QFrame#ChainRulePanel {{ background: #ffffff; border-top: 1px solid #dde1e7; }}
QLabel#ChainRuleTitle {{ font-size: 10.5pt; color: {TEXT.name()}; }}
QWidget#TransportBar {{ background: #f7f8fa; border-top: 1px solid #dde1e7; }}
QLabel#StepLabel {{ font-weight: 600; }}
"""


# ---- numbers ---------------------------------------------------------------------------------------------------

def format_value(v: np.ndarray | float | None) -> str:
    """What a label shows: a scalar's digits or a tensor's shape."""
    if v is None:
        return ""
    a = np.asarray(v)
    if a.ndim == 0:
        return format_scalar(float(a))
    return str(tuple(a.shape))


def is_tensor(v: np.ndarray | float | None) -> bool:
    return v is not None and np.asarray(v).ndim > 0


def array_text(v: np.ndarray) -> str:
    """The numbers of a tensor for a tooltip: 4 decimals, long arrays truncated."""
    a = np.asarray(v)
    if a.ndim == 0:
        return format_scalar(float(a))
    return np.array2string(a, precision=4, threshold=64, edgeitems=3, max_line_width=72, suppress_small=True)


# ---- heatmaps --------------------------------------------------------------------------------------------------

_NEG = np.array([59, 111, 182], dtype=np.float64)    # blue
_MID = np.array([250, 250, 250], dtype=np.float64)   # white
_POS = np.array([200, 55, 45], dtype=np.float64)     # red


def as_matrix(v: np.ndarray) -> np.ndarray:
    """A tensor as rows x columns for display: vectors become one row, higher ranks fold leading axes."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(-1, a.shape[-1])


def diverging_rgb(m: np.ndarray) -> np.ndarray:
    """Blue-white-red colours (uint8, rows x cols x 3), symmetric around 0 so that white always means zero."""
    scale = float(np.max(np.abs(m))) if m.size else 0.0
    t = np.clip(m / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(m)
    t = t[..., None]
    rgb = np.where(t >= 0, _MID + (_POS - _MID) * t, _MID + (_NEG - _MID) * (-t))
    return np.ascontiguousarray(rgb.round().astype(np.uint8))


def heatmap_image(v: np.ndarray, width: int = 24, height: int = 16) -> QImage:
    """A small thumbnail of a tensor (nearest-neighbour cells), e.g. 24 x 16 px."""
    m = as_matrix(v)
    if m.shape[0] > 256 or m.shape[1] > 256:   # thumbnails only need a coarse picture
        m = m[:: max(1, m.shape[0] // 64), :: max(1, m.shape[1] // 64)]
    rgb = diverging_rgb(m)
    rows, cols = rgb.shape[:2]
    rgba = np.empty((rows, cols, 4), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    img = QImage(rgba.data, cols, rows, cols * 4, QImage.Format.Format_RGBA8888).copy()
    return img.scaled(width, height)
