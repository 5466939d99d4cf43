"""The client library: what Python code uses to read and write the variables of a dspex session
and to run DSPy modules that follow them.

- :mod:`~dspex_bridge.client.session`: :class:`SessionContext`, the async client of the Rust
  side's ``SessionService`` (with a watch-invalidated cache);
- :mod:`~dspex_bridge.client.sync`: :class:`SyncSessionContext`, its facade for synchronous code;
- :mod:`~dspex_bridge.client.dspy_integration`: DSPy modules whose parameters are bound to
  session variables.

The package's top level exports the session classes (``from dspex_bridge import
SessionContext``). Nothing here imports :mod:`dspex_bridge.worker`.
"""
