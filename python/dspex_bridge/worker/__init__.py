"""The worker: the process a Rust program starts to run DSPy modules (``dspex-worker``, or
``python -m dspex_bridge.worker``).

- :mod:`~dspex_bridge.worker.server`: the process itself: its configuration on stdin, the gRPC
  server, the readiness line, shutdown;
- :mod:`~dspex_bridge.worker.module_service`: ``ModuleService``, which creates modules and runs
  their calls, each with the values its caller sends;
- :mod:`~dspex_bridge.worker.lm`: the worker's LMs (the offline scripted LM and ``dspy.LM``);
- :mod:`~dspex_bridge.worker.fields`: typed input and output fields on the wire;
- :mod:`~dspex_bridge.worker.module_config`: a step's ``with`` configuration as constructor
  arguments;
- :mod:`~dspex_bridge.worker.tools`: an agent's tools, Python callables and Rust callbacks;
- :mod:`~dspex_bridge.worker.optimize`: compiling a module with a DSPy optimizer.

Importing this package imports nothing (its modules load on use), so that the worker can report
a missing dependency as one clear line. Nothing here imports :mod:`dspex_bridge.client`.
"""
