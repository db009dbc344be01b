"""The ``graphcopy`` command line (Typer): a thin layer over the public functions of ``persist`` and
``migrate``. Nothing in ``persist`` or ``migrate`` imports ``cli``. Entry point: :func:`cli.main.main`.
"""
