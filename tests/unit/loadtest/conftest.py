"""Keep Locust from monkey-patching the test process.

Importing `locust` runs gevent's `monkey.patch_all()` unless LOCUST_SKIP_MONKEY_PATCH is set.
A patched pytest process would change sockets, threads and asyncio for every later test.
These tests only use Locust's statistics classes, which need no patching. The variable is set
only while Locust is imported here, so that Locust processes that later tests start still get
their usual patching.
"""

import os
import sys

if "locust" not in sys.modules:
    _previous = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    try:
        import locust  # noqa: F401
    finally:
        if _previous is None:
            del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
        else:
            os.environ["LOCUST_SKIP_MONKEY_PATCH"] = _previous
