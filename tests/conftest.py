"""Test setup, before JAX is imported anywhere: 8 fake CPU devices, XLA CPU codegen at
optimization level 0, one persistent compilation cache."""

import os

# XLA's CPU backend at optimization level 0: the suite is compile-bound (every test compiles its
# own small programs) and level 0 compiles them much faster, while the programs, and so every
# assertion, stay the same (the benchmarks measure the default level). The experiment
# subprocesses get the same flags (with one device). LSGAN_JAX_TEST_XLA_FLAGS="" tests XLA's
# default code generation.
_codegen = os.environ.setdefault("LSGAN_JAX_TEST_XLA_FLAGS", "--xla_backend_optimization_level=0")
os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
if _codegen and _codegen not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + _codegen
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
# One persistent XLA compilation cache for the whole suite, its xdist workers and the experiment
# subprocesses it starts (they inherit the environment): the smoke programs are compiled once,
# not once per test. Keys hash the program, the options and the JAX version, so a code change
# compiles afresh. Set LSGAN_JAX_TEST_XLA_CACHE="" to compile everything every time.
_xla_cache = os.environ.get(
    "LSGAN_JAX_TEST_XLA_CACHE",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_xla_cache"),
)
if _xla_cache:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _xla_cache)
    # Every program, however small: the eager ops and orbax's per-replica slices of a
    # checkpoint save would be compiled again in each test otherwise.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402

jax.config.update("jax_threefry_partitionable", True)
