"""The training playground's worker: a QThread owning one Trainer, stepping it until paused or stopped, posting
metrics and pictures (decision regions, confusion matrix, filters, activation maps) into a locked buffer that the
GUI's one timer drains. Nothing here touches a widget; everything that reads the network runs in this thread or
under ``lock``."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QThread

from simulator.core.errors import StudioError
from simulator.labs.interpret import softmax
from simulator.nn.network import EpochMetrics, Network, StepMetrics, Trainer

__all__ = ["TrainingSession", "TrainingWorker", "Visuals", "WorkerUpdate", "region_rgba"]

VIZ_INTERVAL = 0.2      # seconds between pictures while training (~5 per second)
REGION_GRID = 150       # decision-region resolution (cells per side)
MAX_MISCLASSIFIED = 24
# The worker holds the interpreter lock while it steps; resting REST seconds after every BURST seconds of updates
# lets the GUI thread paint without queueing for the lock behind every update (about 25% fewer updates per second).
BURST = 0.008
REST = 0.003


@dataclass
class TrainingSession:
    """Everything one training run needs, prepared on the GUI thread and then owned by the worker.

    kind 'toy': grid = (x0, x1, y0, y1) in raw data coordinates and ``transform`` maps raw points to what the network
    sees (standardisation). kind 'digits': the validation images are used for the confusion matrix and examples."""

    network: Network
    trainer: Trainer
    kind: str
    num_classes: int
    class_rgb: np.ndarray                      # (K, 3) float64 class colours for the regions
    grid: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0)
    transform: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass
class Visuals:
    """One set of pictures, computed in the worker from the weights after `iteration` updates."""

    iteration: int
    region: np.ndarray | None = None           # (G, G, 4) uint8, row = y, col = x
    grid: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)   # the region's (x0, x1, y0, y1)
    confusion: np.ndarray | None = None        # (K, K) int64 counts, row = true, col = predicted
    misclassified: np.ndarray | None = None    # validation indices
    mis_pred: np.ndarray | None = None
    weights: np.ndarray | None = None          # (F, h, w) first layer's filters / weight images
    weights_title: str = ""
    maps: np.ndarray | None = None             # (F, H, W) activation maps of the chosen image
    maps_title: str = ""
    maps_index: int = 0
    maps_pred: int = -1


@dataclass
class WorkerUpdate:
    steps: list[StepMetrics] = field(default_factory=list)
    epochs: list[EpochMetrics] = field(default_factory=list)
    visuals: Visuals | None = None
    state: str = "idle"
    error: str | None = None


def region_rgba(probs: np.ndarray, class_rgb: np.ndarray, g: int) -> np.ndarray:
    """TensorFlow Playground's look: each cell mixes the class colours by predicted probability and fades to white
    where the network is unsure (max probability near 1/K). probs (g*g, K) -> (g, g, 4) uint8."""
    K = probs.shape[1]
    mix = probs @ class_rgb[:K]                                   # (n, 3)
    conf = (probs.max(axis=1) - 1.0 / K) / (1.0 - 1.0 / K)       # 0 unsure .. 1 certain
    alpha = (0.1 + 0.42 * np.clip(conf, 0, 1))[:, None]
    rgb = 255.0 + alpha * (mix - 255.0)
    out = np.empty((g * g, 4), np.uint8)
    out[:, :3] = np.clip(np.round(rgb), 0, 255)
    out[:, 3] = 255
    return out.reshape(g, g, 4)


class TrainingWorker(QThread):
    """Steps ``session.trainer`` while running; idles (waiting on a condition) when paused, finished or failed.

    Control (any thread): run_training(), pause(), step_once(), request_visuals(), set_image_index(i), stop().
    The GUI reads with take(); with_network(fn) runs fn(network, trainer) under the lock, between two updates."""

    def __init__(self, session: TrainingSession, parent: Any = None, viz_interval: float = VIZ_INTERVAL):
        super().__init__(parent)
        self.session = session
        self.lock = threading.RLock()            # held during each update and while pictures are drawn
        self._cond = threading.Condition()
        self._running = False
        self._stop = False
        self._pending_steps = 0
        self._viz_request = True
        self._viz_interval = viz_interval
        self._image_index = 0
        self._buffer = WorkerUpdate()
        self._buffer_lock = threading.Lock()
        self._state = "idle"
        self._iteration = 0

    # ---------------------------------------------------------------------------------------------- control
    def run_training(self) -> None:
        with self._cond:
            if self._state in ("finished", "failed"):
                return
            self._running = True
            self._set_state("running")
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._running = False
            if self._state == "running":
                self._set_state("paused")
            self._cond.notify_all()

    def step_once(self) -> None:
        with self._cond:
            if self._state in ("finished", "failed"):
                return
            self._running = False
            self._pending_steps += 1
            if self._state in ("running", "idle"):
                self._set_state("paused")
            self._cond.notify_all()

    def request_visuals(self) -> None:
        with self._cond:
            self._viz_request = True
            self._cond.notify_all()

    def set_image_index(self, i: int) -> None:
        self._image_index = int(i)
        self.request_visuals()

    def stop(self) -> None:
        """Ask the thread to end after the current update (then wait() for it)."""
        with self._cond:
            self._stop = True
            self._running = False
            self._cond.notify_all()

    @property
    def iteration(self) -> int:
        """Updates made so far (posted, perhaps not yet taken)."""
        return self._iteration

    @property
    def state(self) -> str:
        """'idle' (not started), 'running', 'paused', 'finished', 'failed' or 'stopped'."""
        return self._state

    def take(self) -> WorkerUpdate:
        """Everything posted since the last take (metrics in order, the latest pictures), and the state."""
        with self._buffer_lock:
            upd = self._buffer
            self._buffer = WorkerUpdate()
            upd.state = self._state
            return upd

    def with_network(self, fn: Callable[[Network, Trainer], Any]) -> Any:
        with self.lock:
            return fn(self.session.network, self.session.trainer)

    # ---------------------------------------------------------------------------------------------- thread
    def _set_state(self, s: str) -> None:
        self._state = s

    def _post(self, **kw: Any) -> None:
        with self._buffer_lock:
            b = self._buffer
            if "step" in kw:
                b.steps.append(kw["step"])
            if "epoch" in kw:
                b.epochs.append(kw["epoch"])
            if "visuals" in kw:
                b.visuals = kw["visuals"]
            if "error" in kw:
                b.error = kw["error"]

    def run(self) -> None:  # the worker thread
        trainer = self.session.trainer
        last_viz = 0.0
        burst_start = time.monotonic()
        while True:
            with self._cond:
                while (not self._stop and not self._running and self._pending_steps == 0
                       and not self._viz_request):
                    self._cond.wait(0.25)
                if self._stop:
                    break
                do_step = self._running or self._pending_steps > 0
                if self._pending_steps > 0:
                    self._pending_steps -= 1
                if do_step and trainer.done:
                    do_step = False
                    self._running = False
                    self._pending_steps = 0
            stepped = False
            if do_step:
                try:
                    with self.lock:
                        m = trainer.step()
                        em = trainer.evaluate() if m.end_of_epoch else None
                    self._iteration = m.iteration
                    self._post(step=m)
                    if em is not None:
                        self._post(epoch=em)
                    stepped = True
                except StudioError as exc:
                    self._fail(f"{exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 (a bug must not take the app down: stop and say so)
                    self._fail(f"{type(exc).__name__}: {exc}")
                    continue
                if trainer.done:
                    with self._cond:
                        self._running = False
                        self._pending_steps = 0
                        self._set_state("finished")
                        self._viz_request = True
                elif not self._running and self._pending_steps == 0:
                    self._viz_request = True     # a single step: show its result
            now = time.monotonic()
            if self._viz_request or (stepped and now - last_viz >= self._viz_interval):
                self._viz_request = False
                try:
                    with self.lock:
                        v = compute_visuals(self.session, self._image_index)
                    self._post(visuals=v)
                except StudioError:
                    pass            # a diverged network has nothing to show; the error is already posted
                except Exception as exc:  # noqa: BLE001 (a bug in the pictures: stop the run and say so)
                    self._fail(f"drawing the pictures failed: {type(exc).__name__}: {exc}",
                               f"Training stopped after iteration {self.session.trainer.iteration}")
                    continue
                last_viz = time.monotonic()
            if stepped and time.monotonic() - burst_start > BURST:
                time.sleep(REST)
                burst_start = time.monotonic()
        self._set_state("stopped")

    def _fail(self, message: str, where: str | None = None) -> None:
        """Stop for good (state 'failed') and post the banner text: where (default: the iteration that failed),
        then the message."""
        where = where or f"Training stopped at iteration {self.session.trainer.iteration + 1}"
        with self._cond:
            self._running = False
            self._pending_steps = 0
            self._set_state("failed")
        self._post(error=f"{where}: {message}")


# ================================================================================================== pictures

def compute_visuals(session: TrainingSession, image_index: int = 0) -> Visuals:
    """The pictures for the session's current weights (call in the worker thread or under its lock)."""
    net, trainer = session.network, session.trainer
    v = Visuals(trainer.iteration)
    if session.kind == "toy":
        x0, x1, y0, y1 = v.grid = session.grid
        g = REGION_GRID
        xs = np.linspace(x0, x1, g)
        ys = np.linspace(y0, y1, g)
        gx, gy = np.meshgrid(xs, ys)                 # row = y, col = x
        pts = np.c_[gx.ravel(), gy.ravel()]
        if session.transform is not None:
            pts = session.transform(pts)
        with np.errstate(all="ignore"):
            probs = softmax(net.forward(pts, "eval").astype(np.float64))
        v.region = region_rgba(probs, session.class_rgb, g)
        return v
    Xv, yv = trainer.Xv, trainer.yv
    if Xv is not None and len(Xv):
        pred = net.predict(Xv)
        K = session.num_classes
        v.confusion = np.bincount(yv * K + pred, minlength=K * K).reshape(K, K)
        wrong = np.flatnonzero(pred != yv)[:MAX_MISCLASSIFIED]
        v.misclassified, v.mis_pred = wrong, pred[wrong]
    first = next((l for l in net.layers if l.spec.ROLE == "weights"), None)
    if first is not None:
        w = net.params[first.params[0]].astype(np.float64)
        if w.ndim == 4:                              # Conv2d filters (F, C, k, k)
            v.weights = w[:, 0] if w.shape[1] == 1 else w.mean(axis=1)
            v.weights_title = f"{first.name} filters ({w.shape[0]} × {w.shape[2]}×{w.shape[3]})"
        elif w.shape[0] == 64:
            v.weights = w.T.reshape(-1, 8, 8)[:64]
            v.weights_title = f"{first.name} weights as 8×8 images (first {min(64, w.shape[1])} units)"
    X = Xv if Xv is not None and len(Xv) else trainer.X
    i = int(min(max(image_index, 0), len(X) - 1))
    v.maps_index = i
    conv_i = next((k for k, l in enumerate(net.layers) if l.spec.ROLE == "weights" and len(l.out_shape) == 3), None)
    outs = net.layer_outputs(X[i:i + 1], "eval")
    v.maps_pred = int(np.argmax(outs[-1][0]))
    if conv_i is not None:
        k = conv_i
        if k + 1 < len(net.layers) and net.layers[k + 1].spec.ROLE == "activation":
            k += 1                                   # show what the next layer sees: after the non-linearity
        v.maps = outs[k][0].astype(np.float64)
        v.maps_title = f"{net.layers[k].title} maps"
    return v

