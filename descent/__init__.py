"""What a Descent user imports and runs: the ``descent`` command (``descent.cli``)."""
