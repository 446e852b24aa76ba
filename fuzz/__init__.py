"""Coverage-guided fuzz targets for every parser of smtpcore (see docs/security.md).

Each ``fuzz_*`` module defines ``test_one_input(data: bytes) -> None`` (the
function atheris calls, importable and runnable without atheris) and
``main()`` (runs it under atheris). ``python -m fuzz.run`` runs them all.
"""
