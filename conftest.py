"""Repository-wide test configuration.

Under CI (``CI`` set) hypothesis runs derandomised: the same inputs on every
run, so a red build is reproducible. Locally it explores new inputs each run.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
