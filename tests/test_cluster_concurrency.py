"""Sixteen trainer processes on one MariaDB server at once: the single-server half of the cluster's check.

The cluster's half is ``test_cluster.py::test_sixteen_trainers_through_three_nodes_get_gapless_versions``;
both use the same trainers and the same count of what arrived.
"""

from __future__ import annotations

import pytest
from tests import _cluster as cl

import modeltrail


@pytest.mark.slow
@pytest.mark.mysql
def test_sixteen_trainers_on_one_server_get_gapless_versions(mysql_url: str) -> None:
    """No deadlock reaches a trainer, versions 1..48 without a gap, every point once."""
    modeltrail.Tracker(mysql_url).close()
    reports = cl.run_trainers([mysql_url] * 16, "shared", trainings=3, points=200)
    assert reports == [("ok", i, 0) for i in range(16)]
    cl.assert_all_arrived(mysql_url, "shared", trainers=16, trainings=3, points=200)
    with modeltrail.Tracker(mysql_url) as tracker:
        assert [v.parent_number for v in tracker.versions("shared")] == [None, *range(1, 48)]
