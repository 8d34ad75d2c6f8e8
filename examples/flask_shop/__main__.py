"""``python -m examples.flask_shop [--host H] [--port P]``."""

from examples.flask_shop.app import main

raise SystemExit(main())
