"""The adapter lifecycle, once: what every framework adapter does around a fit.

Adapters (``modeltrail.integrations.*``) only translate a framework's hooks into these calls:

* :class:`Lifecycle` joins the active training (``with tracker.training(...)``, ``@autolog``) or starts one the
  adapter owns, through a :class:`~modeltrail.Tracker` it was given or builds lazily from a URL, opens the
  owned training's ``train`` stage and ends the training: finished (a new version), failed, or - when the
  training is not the adapter's - left open for its owner;
* :func:`watch` is the one watchdog for trainings whose fit never returned (a framework that calls no hook
  when fit raises): such a training is recorded failed when its adapter is garbage-collected or at exit;
* :func:`guarded` / :func:`guard` / :func:`warn_once`: logging must never crash a user's training, so an
  adapter's own failure warns once (a :class:`ModeltrailWarning`) and the fit goes on;
* :data:`MODEL_TYPES` and :func:`infer_model_type`: one ``model_type`` vocabulary for every adapter, inferred
  from what the framework tells (an estimator type, a loss, an objective, an architecture), with the class
  itself kept in the training's context as ``model_class`` (:func:`class_of`);
* :func:`preprocessing_fitted` / :func:`take_preprocessing`: a data transformation fitted on its own (a scaler
  before a network) belongs to the training of the model that follows, not to a version of its own;
* :func:`log_new_params`, :func:`safe_name`, :func:`artifact_path`, :func:`stage_block`, :func:`running`:
  the small policies every adapter needs alike; :func:`describe_arguments` and :func:`numbers_in` turn a
  plain training function's call and result into params and metrics (``@autolog``).

Framework-free: nothing here imports numpy, torch or a training framework; :func:`require` imports those
inside their adapter, with the ``pip install "modeltrail[extra]"`` hint when one is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import inspect
import logging
import os
import re
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ModeltrailWarning, user_stacklevel
from ._training import Stage, Training, active_training
from ._values import qualified_name

if TYPE_CHECKING:  # the Tracker (and SQLAlchemy) load when the first training starts, not with autolog
    from ._records import PendingVersion, VersionRecord
    from ._tracker import Tracker

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("modeltrail.integrations")


# --------------------------------------------------- never crash the training
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(where: str, error: BaseException) -> None:
    """One warning per adapter hook and process; the full trace goes to the log."""
    with _warned_lock:
        first = where not in _warned
        _warned.add(where)
    log.debug("modeltrail %s failed", where, exc_info=error)
    if first:
        warnings.warn(
            f"modeltrail: {where} failed ({type(error).__name__}: {error}); training continues without it",
            ModeltrailWarning,
            stacklevel=user_stacklevel(),
        )


@contextlib.contextmanager
def guarded(where: str) -> Iterator[None]:
    """Run modeltrail's own bookkeeping; on failure warn once and carry on."""
    try:
        yield
    except Exception as e:
        warn_once(where, e)


def guard(where: str, default: Any = None) -> Callable[[F], F]:
    """Decorator form of :func:`guarded` for adapter hooks; returns ``default`` on failure."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                warn_once(where, e)
                return default

        return inner  # type: ignore[return-value]

    return wrap


def require(module: str, extra: str) -> Any:
    """Import an optional framework, or raise ModuleNotFoundError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f'modeltrail.integrations.{extra} needs {module}: pip install "modeltrail[{extra}]"'
        ) from e


# ------------------------------------------------------------------ lifecycle
class Lifecycle:
    """One adapter's hold on the training its fit logs into.

    ``tracker`` is a :class:`~modeltrail.Tracker` (kept and used as such) or a database URL (the Tracker is
    built on first use, so that making an adapter never touches the database). The lifecycle pickles as its
    framework and URL only: never an engine, never the per-process, per-fit training.
    """

    def __init__(self, framework: str, tracker: Tracker | str | None = None) -> None:
        self.framework = framework
        self._tracker = None if tracker is None or isinstance(tracker, str) else tracker
        self._given = self._tracker is not None  # a Tracker handed over is its owner's to close
        self.uri: str | None = tracker if tracker is None or isinstance(tracker, str) else tracker.uri
        self.disabled = False  # the ledger could not be opened: :meth:`open` stops trying in this process
        self._told: set[str] = set()  # kinds of :meth:`tell_once` already said
        self.reset()

    def reset(self) -> None:
        """Forget the training (a new fit is about to begin)."""
        self.training: Training | None = None
        self.owned = False  # True when this adapter started the training and so must end it
        self.stage: Stage | None = None  # the owned training's "train" stage
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"framework": self.framework, "uri": self.uri}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(state["framework"], state["uri"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Lifecycle({self.framework!r}, training={self.training!r}, owned={self.owned})"

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            from ._tracker import Tracker

            self._tracker = Tracker(self.uri)
        return self._tracker

    def close(self) -> None:
        """Close the Tracker this lifecycle built from its URL (never one it was given): the database's writer stops
        once no other Tracker holds it. The next use builds a new one. Call it only with no owned training open."""
        if self._tracker is not None and not self._given:
            self._tracker.close()

    @property
    def live(self) -> Training | None:
        """The training, while it still accepts logging."""
        run = self.training
        return run if run is not None and run.status == "running" else None

    def join(self, params: Mapping[str, Any] | None = None) -> Training | None:
        """Log into the active training (its block owns it: its params win), or return None when there is none."""
        active = active_training()
        if active is None or active.status != "running":
            return None
        self.training, self.owned = active, False
        if params:
            log_new_params(active, params)
        with guarded(f"{self.framework}: recording the preprocessing"):
            attach_preprocessing(active, take_preprocessing())
        return active

    def open(self, model: str, *, allowed: Callable[[], bool] | None = None, **options: Any) -> Training | None:
        """The training to log into: the one held, else the active one, else a new owned one (if ``allowed()``).

        A ledger that cannot be opened warns once and disables the lifecycle: the fit goes on unrecorded.
        """
        if self.training is not None or self.disabled:
            return self.training
        try:
            if self.join(options.pop("params", None)) is None and (allowed is None or allowed()):
                self.start(model, **options)
        except Exception as e:
            self.reset()
            self.disabled = True
            warn_once(f"{self.framework}: starting the training", e)
        return self.training

    def tell_once(self, kind: str, message: str, *, stacklevel: int | None = None) -> None:
        """Say once per adapter and ``kind`` what it saw but does not record (a ModeltrailWarning), pointing at
        the user's line unless ``stacklevel`` says otherwise."""
        if kind not in self._told:
            self._told.add(kind)
            level = stacklevel if stacklevel is not None else user_stacklevel()
            warnings.warn(f"modeltrail: {message}", ModeltrailWarning, stacklevel=level)

    def start(self, model: str, *, train_stage: bool = True, model_class: Any = None, **options: Any) -> Training:
        """Start a training this adapter owns (``options`` as for ``Tracker.training``), its ``train`` stage open.

        ``model_class`` (the framework's model object, or its class) goes into the training's context as
        ``model_class``: the class is a fact about the run, the model's ``model_type`` is its kind.
        """
        options.setdefault("framework", self.framework)
        self.training = self.tracker.training(model, **options)
        self.owned = True
        with guarded(f"{self.framework}: recording the preprocessing"):
            attach_preprocessing(self.training, take_preprocessing())
        if model_class is not None:
            with guarded(f"{self.framework}: recording the model class"):
                self.training.add_context({"model_class": class_of(model_class)})
        if train_stage:
            with guarded(f"{self.framework}: starting the train stage"):
                self.stage = self.training.begin_stage("train")
        return self.training

    def end_stage(self) -> None:
        """The fit returned: its ``train`` stage is over (a fit that raised fails it when the training ends)."""
        if self.stage is not None:
            with guarded(f"{self.framework}: ending the train stage"):
                self.stage.end()

    def watch(self, owner: object, error: str, *, label: str = "callback") -> None:
        """Fail the owned training with ``error`` should ``owner`` be collected, or the process exit, first."""
        if self.owned and self.training is not None:
            self._finalizer = watch(owner, self.training, error, label=label, thread=f"modeltrail-{self.framework}")

    def end(self, status: str = "finished", *, error: str | None = None) -> VersionRecord | PendingVersion | None:
        """Finish or fail an owned training; one that is not the adapter's is only flushed (its owner ends it)."""
        run = self.live
        if run is None:
            return None
        if not self.owned:
            run.flush()
            return None
        unwatch(self._finalizer, run)
        self._finalizer = None
        with guarded(f"{self.framework}: finishing the training"):
            return run.finish(status, error=error)
        return None


def close_all() -> None:
    """Flush and stop every writer and dispose every engine of this process: the end of a script run for it."""
    from ._store import close_all as close_stores

    close_stores()


# ------------------------------------------------------------ preprocessing
_pending: list[dict[str, Any]] = []
_pending_lock = threading.Lock()
_summaries: weakref.WeakKeyDictionary[Training, list[dict[str, Any]]] = weakref.WeakKeyDictionary()


def preprocessing_fitted(step: Mapping[str, Any]) -> None:
    """A data transformation was fitted outside any recorded fit: it belongs to the next model's training.

    ``step`` holds ``class`` (qualified), ``params`` and what else describes the fit (``fit_time_s``, ``n_rows``,
    ``n_features``). Inside an active training (``with tracker.training(...)``, ``@autolog``) it is recorded there
    at once; otherwise it waits for the next adapter training to start (:meth:`Lifecycle.start` / ``join``).
    """
    active = active_training()
    if active is not None and active.status == "running":
        attach_preprocessing(active, [dict(step)])
        return
    with _pending_lock:
        _pending.append(dict(step))


def has_preprocessing() -> bool:
    """Whether preprocessing fits wait for a training."""
    with _pending_lock:
        return bool(_pending)


def take_preprocessing() -> list[dict[str, Any]]:
    """The preprocessing fits waiting for a training, oldest first; they are handed over once."""
    with _pending_lock:
        steps = list(_pending)
        _pending.clear()
    return steps


def attach_preprocessing(run: Training, steps: Sequence[Mapping[str, Any]]) -> None:
    """Record ``steps`` in ``run``: params ``preprocessing.<Class>.<param>`` (so that a changed scaler shows in the
    version's param diff; a second step of the same class is ``<Class>_2``) and context ``preprocessing``, the
    steps in fitting order with their class, fit time and data shape."""
    if not steps:
        return
    summary = _summaries.setdefault(run, [])
    taken = {key.split(".")[1] for key in run.params if key.startswith("preprocessing.") and key.count(".") >= 2}
    for step in steps:
        short = str(step["class"]).rsplit(".", 1)[-1]
        name, n = short, 1
        while name in taken:
            n += 1
            name = f"{short}_{n}"
        taken.add(name)
        log_new_params(run, {f"preprocessing.{name}.{k}": v for k, v in dict(step.get("params") or {}).items()})
        summary.append({"name": name, **{k: v for k, v in step.items() if k != "params"}})
    run.add_context({"preprocessing": list(summary)})


def log_new_params(run: Training, params: Mapping[str, Any]) -> None:
    """Log the params ``run`` does not have yet: what a user or an enclosing block recorded first wins."""
    fresh = {k: v for k, v in params.items() if k not in run.params}
    skipped = sorted(set(params) - set(fresh))
    if skipped:
        log.debug("training %s already has params %s; keeping its values", run.id, skipped)
    if fresh:
        run.log_params(fresh)


@contextlib.contextmanager
def running(run: Training | None, where: str) -> Iterator[None]:
    """Make ``run`` the active training for the block, then end it with the block.

    The block's exception fails the training and propagates unchanged; modeltrail's own failures warn once.
    """
    if run is None:
        yield
        return
    with guarded(f"{where}: start training"):
        run.__enter__()  # modeltrail.active_training() for nested fits and adapters
    try:
        yield
    except BaseException as e:
        with guarded(f"{where}: record failure"):
            run.__exit__(type(e), e, e.__traceback__)
        raise
    with guarded(f"{where}: finish training"):
        run.__exit__(None, None, None)


@contextlib.contextmanager
def stage_block(run: Training | None, name: str, where: str) -> Iterator[None]:
    """Record the block as stage ``name`` of ``run`` (nothing when None); the stage fails with the block's error."""
    stage = None
    if run is not None:
        with guarded(f"{where}: {name} stage"):
            stage = run.begin_stage(name)
    try:
        yield
    except BaseException as e:
        if stage is not None:
            with guarded(f"{where}: {name} stage"):
                stage.end(e)
        raise
    if stage is not None:
        with guarded(f"{where}: {name} stage"):
            stage.end()


# ----------------------------------------------- what a training call shows
def describe_arguments(signature: inspect.Signature, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Bound arguments as params: data by type and shape, everything else by value."""
    bound = signature.bind_partial(*args, **kwargs)
    bound.apply_defaults()
    params: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            params.update({f"{name}.{i}": describe(v) for i, v in enumerate(value)})
        elif kind is inspect.Parameter.VAR_KEYWORD:
            params.update({str(k): describe(v) for k, v in value.items()})
        else:
            params[name] = describe(value)
    return params


def describe(value: Any) -> Any:
    """Data becomes "type(shape=..., dtype=...)"; configuration values stay as they are."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, type):
        try:
            dims = "x".join(str(int(n)) for n in tuple(shape))
        except (TypeError, ValueError):
            dims = "?"
        dtype = getattr(value, "dtype", None)
        suffix = f", dtype={dtype}" if dtype is not None else ""
        return f"{qualified_name(type(value))}(shape={dims}{suffix})"
    if isinstance(value, (list, tuple)) and len(value) > 16:
        return f"{type(value).__name__}(len={len(value)})"
    if (
        hasattr(value, "__len__")
        and hasattr(value, "__getitem__")
        and not isinstance(value, (str, bytes, dict, list, tuple))
    ):
        # datasets, dataloaders and the like: by type and length, never iterated
        try:
            return f"{qualified_name(type(value))}(len={len(value)})"
        except TypeError:
            return qualified_name(type(value))
    return value


def numbers_in(result: Any, prefix: str = "") -> dict[str, float]:
    """The numeric entries of a returned mapping (nested mappings as dotted keys)."""
    out: dict[str, float] = {}
    if not isinstance(result, Mapping):
        return out
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numbers_in(value, f"{name}."))
        elif isinstance(value, (bool, str, bytes)):
            continue
        else:
            try:
                out[name] = float(value)
            except (TypeError, ValueError, OverflowError):
                continue
    return out


# ------------------------------------------------------------ model types
#: The one ``model_type`` vocabulary of every adapter. ``transformer`` is scikit-learn's sense: a fitted data
#: transformation (a scaler, an encoder, PCA), not the neural architecture.
MODEL_TYPES = (
    "classifier",
    "regressor",
    "clusterer",
    "transformer",
    "outlier-detector",
    "density-estimator",
    "ranker",
    "language-model",
    "object-detector",
    "segmenter",
)

#: Words (after splitting ``CamelCase``, ``snake_case`` and ``a:b``) that tell a kind; a phrase is several words
#: in a row. Scikit-learn's estimator types, Keras losses and activations, XGBoost / LightGBM objectives, Hugging
#: Face architectures and pipeline tasks all speak in these words.
_TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "classifier": (
        "classifier", "classification", "classify", "binary", "multiclass", "multiclassova", "softmax",
        "softprob", "crossentropy", "cross entropy", "logloss", "hinge", "squared hinge", "categorical",
        "multilabel", "logistic", "focal", "bce", "nll",
    ),
    "regressor": (
        "regressor", "regression", "reg", "squarederror", "squared error", "absolute error", "absoluteerror",
        "squaredlogerror", "pseudohubererror", "mse", "mae", "rmse", "mape", "msle", "huber", "poisson",
        "tweedie", "gamma", "quantile", "log cosh", "logcosh", "l 1", "l 2",
    ),
    "clusterer": ("clusterer", "clustering", "cluster"),
    "outlier-detector": ("outlier", "outlier detector", "anomaly", "novelty"),
    "density-estimator": ("density", "density estimator"),
    "ranker": ("ranker", "ranking", "rank", "lambdarank", "ndcg", "pairwise", "xendcg"),
    "language-model": (
        "lm", "causal lm", "masked lm", "language model", "text generation", "fill mask",
        "conditional generation", "text2text generation",
    ),
    "object-detector": ("object detection", "object detector"),
    "segmenter": ("segmentation", "semantic segmentation", "image segmentation", "segmenter"),
}  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def _words(hint: str) -> str:
    """``"BertForSequenceClassification"``, ``"binary:logistic"`` -> ``" bert for sequence classification "``."""
    return " " + " ".join(w.lower() for w in _WORD.findall(hint)) + " "


def infer_model_type(*hints: object) -> str | None:
    """The first hint that names exactly one kind of :data:`MODEL_TYPES`, or None when none does.

    Hints are what a framework tells, most specific first: a scikit-learn ``estimator_type``, a loss or an
    objective (``"sparse_categorical_crossentropy"``, ``"reg:squarederror"``), an architecture
    (``"GPT2LMHeadModel"``), a task (``"text-classification"``). A hint that matches two kinds
    (``"reg:logistic"``) or none (``"Net"``, ``"sigmoid"``) says nothing, and the next one is read. A vocabulary
    word itself (``"outlier_detector"``) counts only as a whole hint for ``transformer``, which in a class name
    (``"VisionTransformer"``) is an architecture, not a kind.
    """
    for hint in hints:
        if not isinstance(hint, str) or not hint.strip():
            continue
        normal = hint.strip().lower().replace("_", "-")
        if normal in MODEL_TYPES:
            return normal
        words = _words(hint)
        kinds = {kind for kind, phrases in _TYPE_WORDS.items() if any(f" {p} " in words for p in phrases)}
        if len(kinds) == 1:
            return kinds.pop()
    return None


def class_of(obj: Any) -> str:
    """The qualified class name of a model object or class: ``sklearn.ensemble._forest.RandomForestClassifier``
    (a string is taken as that name already)."""
    if isinstance(obj, str):
        return obj
    return qualified_name(obj if isinstance(obj, type) else type(obj))


# ---------------------------------------------------------------- file names
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, *, default: str = "model", strip: str = "._", limit: int | None = None) -> str:
    """``text`` as one file or directory name: letters, digits, ``.``, ``_`` and ``-`` only, never empty."""
    safe = _UNSAFE.sub("_", str(text)).strip(strip)[:limit]
    return safe or default


def artifact_path(run: Training, directory: str | os.PathLike[str] | None, filename: str) -> Path:
    """Where an adapter saves the trained model: ``directory`` or ``./artifacts/<model>/`` (made on demand)."""
    folder = Path(directory) if directory is not None else Path("artifacts") / safe_name(run.model_name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename


# ---------------------------------------------------------- the call stack
def find_in_callers(test: Callable[[FrameType], Any], *, depth: int | None = None) -> Any:
    """The first truthy ``test(frame)`` among the callers of the function calling this, or None.

    Why a stack walk at all: some frameworks never hand an adapter what it must record. A Keras callback is
    given ``params`` (epochs, steps) but none of ``fit``'s other arguments (batch size, validation split...);
    a Lightning logger is given its Trainer only in ``log_graph``, after ``log_hyperparams`` already ran and
    never with ``enable_autolog_hparams=False``; scikit-learn does not tell a fit that cross-validation
    called it. Those callers hold the answer in their locals, so the adapter looks there, up to ``depth``
    frames (all when None), and records less when it is not found.
    """
    frame: FrameType | None = sys._getframe(2)
    try:
        seen = 0
        while frame is not None and (depth is None or seen < depth):
            found = test(frame)
            if found:
                return found
            frame = frame.f_back
            seen += 1
        return None
    finally:
        del frame


# ----------------------------------------- trainings whose fit never returned
_open: dict[int, tuple[Training, str]] = {}
_open_lock = threading.Lock()
_exit_hook = False


def watch(owner: object, run: Training, error: str, *, label: str, thread: str) -> weakref.finalize[Any, Any]:
    """Make sure ``run`` ends failed with ``error`` if its fit never returns: when ``owner`` is collected, or at exit.

    For frameworks that call no hook when a fit raises (Keras). At exit the error names the uncaught
    exception that ended the process.
    """
    global _exit_hook
    finalizer = weakref.finalize(owner, _discarded, run, f"{error}; the {label} was discarded", thread)
    finalizer.atexit = False  # exit is handled by _at_exit, which can name the exception
    run.abandon_at_exit = False  # this watchdog ends it at exit, naming the exception that ended the process
    with _open_lock:
        _open[id(run)] = (run, error)
        if not _exit_hook:
            atexit.register(_at_exit)  # after the Tracker's writer registered: runs before it closes
            _exit_hook = True
    return finalizer


def unwatch(finalizer: weakref.finalize[Any, Any] | None, run: Training) -> None:
    """The fit ended one way or another: the watchdog has nothing left to do for ``run``."""
    if finalizer is not None:
        finalizer.detach()
    with _open_lock:
        _open.pop(id(run), None)


def _fail(run: Training, error: str) -> None:
    with guarded("recording an interrupted fit"):
        if run.status == "running":
            run.finish("failed", error=error)


def _discarded(run: Training, error: str, thread: str) -> None:
    with _open_lock:
        if _open.pop(id(run), None) is None:
            return
    # A finalizer may run inside any allocation of any thread; do the database work on a thread of its own.
    # It is not a daemon, so interpreter exit waits for it.
    threading.Thread(target=_fail, args=(run, error), name=thread).start()


def _at_exit() -> None:
    with _open_lock:
        runs = list(_open.values())
        _open.clear()
    last = getattr(sys, "last_value", None)
    why = f"; the process exited after {type(last).__name__}: {last}" if last is not None else "; the process exited"
    for run, error in runs:
        _fail(run, error + why)
