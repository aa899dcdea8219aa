"""``python -m rtt``: the ``rtt`` command (SPEC.md 16)."""

from .cli import main

raise SystemExit(main())
