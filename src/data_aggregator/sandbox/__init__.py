"""A local stand-in for the AWS side of the pipeline: emulator, provisioning, uploader, ESM, demo.

Used by ``data-aggregator demo``, the e2e scenarios and the benchmarks. Never imported by the Lambda
function; the emulator itself (moto) is an optional dependency (the ``demo`` extra).
"""
