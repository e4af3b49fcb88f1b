"""Keep Locust from monkey-patching the test process.

Importing `locust` runs gevent's `monkey.patch_all()` unless LOCUST_SKIP_MONKEY_PATCH is set.
A patched pytest process would change sockets, threads and asyncio for every later test.
These tests only use Locust's statistics classes, which need no patching.
"""

import os

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
