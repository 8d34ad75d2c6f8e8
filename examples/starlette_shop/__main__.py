"""``python -m examples.starlette_shop [--host H] [--port P]`` (served by uvicorn)."""

from examples.starlette_shop.app import main

raise SystemExit(main())
