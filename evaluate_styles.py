"""Evaluate the GIGA-Piano base and style models; the same command as `python -m gigapiano.evaluation`.

    python evaluate_styles.py --maestro_dir ../shared/maestro/maestro-v3.0.0 --models_dir models \
        --output docs/evaluation.md

Writes the report (only its generated block), a JSON of every number and a piano-roll gallery, and prints
their paths.
Run with `--help` for every flag; the method is described in docs/evaluation.md.
"""

from __future__ import annotations

import sys

from gigapiano.evaluation.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
