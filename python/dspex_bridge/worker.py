"""The dspex Python worker: ``dspex-worker`` (or ``python -m dspex_bridge.worker``).

It serves ``ModuleService`` (``proto/dspex/v1/bridge.proto``) on loopback: it creates real DSPy
modules (the variable-aware ``Predict``, ``ChainOfThought``, ``ReAct``, ``ProgramOfThought``,
or any ``dspy.Module`` class given by dotted path), binds their parameters to variables of its
session, runs them, and reports with each result the LM settings the call really used (read
from the LMs' own history).

Started by the Rust worker supervisor with its environment:

- ``DSPEX_STORE_ADDR``, ``DSPEX_SESSION_ID``, ``DSPEX_SESSION_TOKEN``: the session store and
  the session whose variables the modules are bound to; every ModuleService call must carry
  the same token in ``x-dspex-token``;
- ``DSPEX_LM``: the LM configuration (JSON, see :class:`~dspex_bridge.lm.LmConfig`; default:
  the offline scripted LM);
- ``DSPEX_WORKER_LISTEN``: where to listen (default ``127.0.0.1:0``, a free port).

Once it serves, it prints one line ``DSPEX_WORKER_READY {"port": ..., "pid": ..., "dspy": ...}``
on stdout; logs go to stderr. It exits on ``Shutdown``, on SIGTERM/SIGINT, and when its stdin
closes (the parent process is gone), so it never outlives its supervisor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence

# Only the standard library at import time: a missing dependency (grpc, dspy) is reported by
# `main` as one clear line naming the interpreter, not as a traceback.

log = logging.getLogger("dspex_bridge.worker")

#: The prefix of the readiness line on stdout.
READY_PREFIX = "DSPEX_WORKER_READY "
#: The environment variable with the LM configuration.
ENV_LM = "DSPEX_LM"
#: The environment variable with the listen address.
ENV_LISTEN = "DSPEX_WORKER_LISTEN"
#: Seconds in-flight calls get to finish on shutdown.
SHUTDOWN_GRACE = 2.0
#: Seconds after the parent is gone before the worker exits even if a call is stuck.
ORPHAN_EXIT_AFTER = 5.0
#: The GIL switch interval of the worker, in seconds.
SWITCH_INTERVAL = 0.0002


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
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
    loop.call_soon_threadsafe(stop.set)
    time.sleep(ORPHAN_EXIT_AFTER)
    # Still here: a call is stuck. Take whatever it started along (the supervisor makes the
    # worker lead its own process group; never signal a group the worker does not lead).
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(0)


async def serve(env: Mapping[str, str]) -> None:
    """Serves until shutdown; prints the readiness line once listening."""
    import dspy
    import grpc.aio

    from ._proto.dspex.v1 import bridge_pb2_grpc as pb_grpc
    from .errors import BridgeError
    from .lm import LmConfig, LmFactory
    from .module_service import MAX_MESSAGE_BYTES, ModuleServicer
    from .session import ENV_SESSION_TOKEN, SessionContext

    # Module calls run in a thread while the event loop serves gRPC; a shorter GIL switch
    # interval than the default 5 ms cuts the hand-over latency between the two (measured here:
    # a trivial python step from Rust went from 2.9 ms to 1.8 ms).
    sys.setswitchinterval(SWITCH_INTERVAL)
    lm_factory = LmFactory(LmConfig.from_json(env.get(ENV_LM)))
    session = SessionContext.from_env(env)
    stop = asyncio.Event()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    pb_grpc.add_ModuleServiceServicer_to_server(
        ModuleServicer(session, env[ENV_SESSION_TOKEN], lm_factory, stop), server
    )
    listen = env.get(ENV_LISTEN) or "127.0.0.1:0"
    port = server.add_insecure_port(listen)
    if port == 0:
        raise BridgeError(f"cannot listen on {listen}")
    await server.start()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    threading.Thread(target=_watch_stdin, args=(loop, stop), name="stdin-watch", daemon=True).start()

    ready = {"port": port, "pid": os.getpid(), "dspy": dspy.__version__}
    print(READY_PREFIX + json.dumps(ready), flush=True)
    log.info("serving ModuleService on port %d for session %s", port, session.session_id)
    await stop.wait()
    await server.stop(SHUTDOWN_GRACE)
    await session.close()
    log.info("stopped")


def _parse_args(argv: Sequence[str] | None) -> None:
    """``--help`` (the worker takes no arguments: its environment configures it)."""
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
        asyncio.run(serve(os.environ))
    except KeyError as e:
        print(f"dspex worker: missing environment: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"dspex worker: {sys.executable} could not import {e.name or e}: {e}", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001
        print(f"dspex worker: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
