"""Lifetime and error handling added to TorchRL's process and Ray collectors.

``make_collector`` builds the collector through ``torchrl.collectors.Collector``'s own
backend dispatch and then switches the instance to a direct subclass of its class
(``instance.__class__ = ...``; ``isinstance`` checks against TorchRL's class still hold):
it adds ``close()`` / ``with`` / ``atexit`` handling and the re-raising of worker errors.
"""

from __future__ import annotations

import atexit
import json
import shutil
import weakref
from pathlib import Path
from typing import Any

from torchrl.collectors import MultiAsyncCollector, MultiSyncCollector

__all__ = ["CollectorWorkerError", "manage"]

_LIVE: weakref.WeakSet = weakref.WeakSet()


class CollectorWorkerError(RuntimeError):
    """An exception raised in a collector worker (by the env or the policy), re-raised here.

    Attributes:
        worker (int | None): the worker's index (``None`` when unknown).
        type_name (str): the original exception's class name, e.g. ``"KeyError"``.
        message (str): the original exception's message (``str(err)``).
        remote_traceback (str): the worker-side traceback, when one came back.

    Examples:
        >>> err = CollectorWorkerError(1, "KeyError", "'obs'")
        >>> err.type_name, str(err)
        ('KeyError', "KeyError: 'obs' (raised in collector worker 1)")
    """

    def __init__(
        self, worker: int | None, type_name: str, message: str, remote_traceback: str = ""
    ) -> None:
        self.worker, self.type_name, self.message = worker, type_name, message
        self.remote_traceback = remote_traceback
        where = "a collector worker" if worker is None else f"collector worker {worker}"
        text = f"{type_name}: {message} (raised in {where})"
        if remote_traceback:
            text += f"\n\nWorker traceback:\n{remote_traceback}"
        super().__init__(text)

    def __reduce__(self):
        # pickle and deepcopy rebuild an exception from ``args`` (here the one message
        # string) by default, which this constructor does not take.
        args = (self.worker, self.type_name, self.message, self.remote_traceback)
        return type(self), args, self.__dict__


def _ray_error(err: BaseException) -> CollectorWorkerError | None:
    try:
        from ray.exceptions import RayActorError, RayTaskError
    except ImportError:
        return None
    if isinstance(err, RayTaskError):
        cause = err.cause
        return CollectorWorkerError(
            None,
            type(cause).__name__ if cause is not None else err.function_name,
            str(cause) if cause is not None else str(err),
            getattr(err, "traceback_str", None) or str(err),
        )
    if isinstance(err, RayActorError):
        return CollectorWorkerError(None, type(err).__name__, str(err))
    return None


def _managed_subclass(base: type) -> type:
    """``base`` (a TorchRL collector class) plus ``close()``, ``with``, ``atexit``, errors.

    A direct subclass: CPython refuses the ``__class__`` switch to a class with a mixin
    base ("object layout differs").
    """

    class Managed(base):
        def _grl_init(self, *, error_dir: Path | None, ray_session: Any = None) -> None:
            self._grl = dict(error_dir=error_dir, ray_session=ray_session, closed=False)
            _LIVE.add(self)

        def _worker_error(self, err: BaseException) -> CollectorWorkerError | None:
            error_dir = self._grl.get("error_dir")
            if error_dir is not None and error_dir.is_dir():
                for path in sorted(error_dir.glob("worker-*.json")):
                    record = json.loads(path.read_text())
                    return CollectorWorkerError(
                        int(path.stem.split("-")[1]),
                        record["type"],
                        record["message"],
                        record["traceback"],
                    )
            return _ray_error(err)

        def _check_open(self, err: BaseException | None = None) -> None:
            if self._grl["closed"]:
                # else TorchRL reports the stopped workers as failed ("exit code 0")
                raise RuntimeError(
                    f"This collector ({type(self).__name__}) is closed: it yields no more "
                    "batches; make a new one with make_collector."
                ) from err

        def iterator(self):
            self._check_open()
            try:
                yield from super().iterator()
            except Exception as err:
                self._check_open(err)
                worker_error = self._worker_error(err)
                if worker_error is None:
                    raise
                self.shutdown()
                raise worker_error from err

        def __bool__(self) -> bool:
            # An endless collector's ``__len__`` is a float (``total_frames=inf``), which
            # made ``bool(collector)`` raise ``TypeError``.
            return True

        def shutdown(self, *args: Any, **kwargs: Any) -> None:
            grl = self.__dict__.get("_grl")
            if grl is None or grl["closed"]:
                return super().shutdown(*args, **kwargs)
            grl["closed"] = True
            try:
                super().shutdown(*args, **kwargs)
            finally:
                # TorchRL's MultiCollector.shutdown leaves its weight-sync schemes to their
                # ``__del__``, which at interpreter exit puts a "stop" on a multiprocessing
                # queue: that starts the queue's feeder thread during finalization and the
                # exit hangs forever. Shutting them down here (idempotent) avoids it.
                for scheme in (getattr(self, "_weight_sync_schemes", None) or {}).values():
                    try:
                        scheme.shutdown()
                    except Exception:
                        pass
                if grl["error_dir"] is not None:
                    shutil.rmtree(grl["error_dir"], ignore_errors=True)
                if grl["ray_session"] is not None:
                    grl["ray_session"].close()
                _LIVE.discard(self)

        def close(self) -> None:
            """Stops the workers and frees what the collector holds (idempotent)."""
            self.shutdown()

        def __enter__(self):
            return self

        def __exit__(self, *exc: Any) -> None:
            self.close()

    Managed.__name__ = Managed.__qualname__ = f"Managed{base.__name__}"
    Managed.__module__ = __name__
    Managed.__doc__ = f"TorchRL's ``{base.__name__}`` with ``close()``, ``with`` and worker errors."
    return Managed


_MANAGED: dict[type, type] = {}


def _managed_class(cls: type) -> type:
    managed = _MANAGED.get(cls)
    if managed is None:
        # imported on first use: ``torchrl.collectors.distributed`` imports Ray
        from torchrl.collectors.distributed import RayCollector

        if cls not in (MultiSyncCollector, MultiAsyncCollector, RayCollector):
            raise TypeError(f"No managed collector class for {cls.__name__}.")
        managed = _MANAGED[cls] = _managed_subclass(cls)
    return managed


def manage(collector: Any, **state: Any) -> Any:
    """Switches a TorchRL collector built by ``Collector(...)`` to its managed subclass."""
    collector.__class__ = _managed_class(type(collector))
    collector._grl_init(**state)
    return collector


@atexit.register
def _close_live_collectors() -> None:
    # Runs before the interpreter's finalization, while threads can still be joined.
    for collector in list(_LIVE):
        try:
            collector.close()
        except Exception:
            pass
