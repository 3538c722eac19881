#!/usr/bin/env python
"""The standard benchmark suite: ``python scripts/suite.py [--seeds 3] [--steps 50000] [--add my_agent]``.

The same command as ``recsim-suite`` (see :mod:`recsim_causal.suite`).
"""

from recsim_causal.suite import main

if __name__ == "__main__":
    main()
