"""The attribution-rule tests of the embedded store, run on a Redis server and on a Redis Cluster.

The tests are imported unchanged; this folder's ``make_harness`` fixture gives
them Redis stores instead of embedded ones, once per backend.
"""

from tests.unit.ingestion.test_attribution_rules import *  # noqa: F401,F403
