"""The dspex Python worker process: ``dspex-worker`` (or ``python -m dspex_bridge.worker``).

It serves ``ModuleService`` (``proto/dspex/v1/bridge.proto``) on loopback: it creates real DSPy
modules (``Predict``, ``ChainOfThought``, ``ReAct``, ``ProgramOfThought``, or any ``dspy.Module``
class given by dotted path) and runs calls of them, each with the values its caller sends (see
:mod:`dspex_bridge.worker.module_service`), reporting with each result the LM requests the call made.

Started by the Rust worker supervisor with:

- the environment ``DSPEX_STORE_ADDR``, ``DSPEX_SESSION_ID``, ``DSPEX_SESSION_TOKEN``: the
  session the worker serves; every ModuleService call must carry the same token in
  ``x-dspex-token``. The modules' Rust tools call back to the store's address with the same
  token (:mod:`dspex_bridge.worker.tools`). ``DSPEX_WORKER_LISTEN`` may say where to listen (default ``127.0.0.1:0``, a
  free port);
- on stdin, its ``WorkerConfig`` message (the LM, the number of calls it runs at once): a
  4-byte big-endian length, then the encoded message (:func:`encode_config` builds it).

Once it serves, it prints one line on stdout: the readiness prefix (``DSPEX_WORKER_READY``)
and its ``WorkerReady`` report (port, pid, versions, call limit), encoded, in lowercase hex.
Logs go to stderr. It exits on ``Shutdown``, on SIGTERM/SIGINT, and when its stdin closes (the
parent process is gone), so it never outlives its supervisor.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import struct
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

# Only the standard library and the package's own pure-Python modules at import time: a missing
# dependency (grpc, dspy) is reported by `main` as one clear line naming the interpreter, not as
# a traceback.
from ..contract import ENV_SESSION_ID, ENV_SESSION_TOKEN, ENV_STORE_ADDR, LIMITS, READY_PREFIX

log = logging.getLogger("dspex_bridge.worker")

#: The environment variable with the listen address.
ENV_LISTEN = "DSPEX_WORKER_LISTEN"
#: Seconds in-flight calls get to finish on shutdown.
SHUTDOWN_GRACE = 2.0
#: Seconds after the parent is gone before the worker exits even if a call is stuck.
ORPHAN_EXIT_AFTER = 5.0


def encode_config(config: Any) -> bytes:
    """A ``WorkerConfig`` message framed as the worker reads it from stdin."""
    data: bytes = config.SerializeToString()
    return struct.pack(">I", len(data)) + data


def _read_exactly(fd: int, size: int) -> bytes:
    from ..errors import WorkerConfigError

    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise WorkerConfigError("stdin closed before the whole WorkerConfig arrived")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_config(fd: int = 0) -> Any:
    """Reads the framed ``WorkerConfig`` from `fd` (stdin), within ``MAX_WORKER_CONFIG_BYTES``;
    :class:`~dspex_bridge.errors.WorkerConfigError` when it cannot."""
    from .._proto.dspex.v1 import bridge_pb2 as pb
    from ..errors import WorkerConfigError

    (size,) = struct.unpack(">I", _read_exactly(fd, 4))
    if size > LIMITS["MAX_WORKER_CONFIG_BYTES"]:
        raise WorkerConfigError(
            f"the WorkerConfig takes {size} bytes, over the limit of {LIMITS['MAX_WORKER_CONFIG_BYTES']} "
            "(MAX_WORKER_CONFIG_BYTES)"
        )
    config = pb.WorkerConfig.FromString(_read_exactly(fd, size))
    calls = config.max_concurrent_calls or LIMITS["DEFAULT_MAX_CONCURRENT_CALLS"]
    if calls > LIMITS["MAX_CONCURRENT_CALLS"]:
        raise WorkerConfigError(
            f"max_concurrent_calls {calls} is over the limit of {LIMITS['MAX_CONCURRENT_CALLS']} (MAX_CONCURRENT_CALLS)"
        )
    config.max_concurrent_calls = calls
    return config


def _watch_stdin(stop: threading.Event) -> None:
    """Stops the worker when stdin closes (the supervisor is gone), and exits hard if a stuck
    call keeps it from stopping."""
    # The raw descriptor, not sys.stdin: a daemon thread blocked inside a buffered reader
    # would make the interpreter abort at exit.
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    log.info("stdin closed: the supervisor is gone, exiting")
    stop.set()
    time.sleep(ORPHAN_EXIT_AFTER)
    # Still here: a call is stuck. Take whatever it started along (the supervisor makes the
    # worker lead its own process group; never signal a group the worker does not lead).
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(0)


def serve(env: Mapping[str, str], config: Any) -> None:
    """Serves until shutdown; prints the readiness line once listening."""
    from concurrent.futures import ThreadPoolExecutor

    import dspy
    import grpc

    from .._proto.dspex.v1 import bridge_pb2 as pb
    from .._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
    from ..errors import BridgeError
    from .lm import LmConfig, LmFactory, configure_cache
    from .module_service import CONTROL_THREADS, ModuleServicer
    from .tools import CallbackClient

    session_id = env[ENV_SESSION_ID]
    token = env[ENV_SESSION_TOKEN]
    lm_config = LmConfig.from_proto(config.lm)
    configure_cache(lm_config)
    lm_factory = LmFactory(lm_config)
    stop = threading.Event()
    message_bytes = LIMITS["MAX_MODULE_MESSAGE_BYTES"]
    calls = config.max_concurrent_calls
    # A thread per call, one per cancellation a caller may be waiting on (at most one per call),
    # and the control threads.
    pool = ThreadPoolExecutor(max_workers=2 * calls + CONTROL_THREADS, thread_name_prefix="dspex-call")
    server = grpc.server(
        pool,
        options=[
            ("grpc.max_receive_message_length", message_bytes),
            ("grpc.max_send_message_length", message_bytes),
        ],
    )
    store = env.get(ENV_STORE_ADDR)
    callbacks = CallbackClient(store, session_id, token) if store else None
    servicer = ModuleServicer(session_id, token, lm_factory, calls, stop, callbacks)
    pb_grpc.add_ModuleServiceServicer_to_server(servicer, server)
    listen = env.get(ENV_LISTEN) or "127.0.0.1:0"
    port = server.add_insecure_port(listen)
    if port == 0:
        raise BridgeError(f"cannot listen on {listen}")
    server.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=_watch_stdin, args=(stop,), name="stdin-watch", daemon=True).start()

    ready = pb.WorkerReady(
        port=port,
        pid=os.getpid(),
        dspy_version=dspy.__version__,
        python_version=platform.python_version(),
        max_concurrent_calls=calls,
    )
    print(READY_PREFIX + ready.SerializeToString().hex(), flush=True)
    log.info("serving ModuleService on port %d for session %s, up to %d calls at once", port, session_id, calls)
    stop.wait()
    server.stop(SHUTDOWN_GRACE).wait()
    pool.shutdown(wait=False, cancel_futures=True)
    log.info("stopped")


def _parse_args(argv: Sequence[str] | None) -> None:
    """``--help`` (the worker takes no arguments: its environment and its stdin configure it)."""
    import argparse

    summary, _, details = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="dspex-worker",
        description=summary,
        epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dspex-worker`` command and of ``python -m dspex_bridge.worker``."""
    _parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("DSPEX_WORKER_LOG", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        # Dependencies first: a missing one is reported before anything waits on stdin.
        import dspy  # noqa: F401
        import grpc  # noqa: F401
    except ImportError as e:
        print(f"dspex worker: {sys.executable} could not import {e.name or e}: {e}", file=sys.stderr)
        return 3
    from ..errors import WorkerConfigError

    try:
        for key in (ENV_SESSION_ID, ENV_SESSION_TOKEN):
            if not os.environ.get(key):
                raise KeyError(key)
        config = read_config()
        serve(os.environ, config)
    except KeyError as e:
        print(f"dspex worker: missing environment: {e}", file=sys.stderr)
        return 2
    except WorkerConfigError as e:
        print(f"dspex worker: bad WorkerConfig on stdin: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"dspex worker: {sys.executable} could not import {e.name or e}: {e}", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001
        print(f"dspex worker: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
