"""What ``modeltrail serve`` (and anyone watching it) asks of a :class:`~modeltrail.Tracker`.

A mixin of ``Tracker``, like ``_tracker_views``: the server sits on top with the CLI and the dashboard
and reaches the ledger only through these methods. Each is one short transaction; none is queued or
spooled, because a server must know at once whether the database heard it (it keeps serving either
way and tries again on its next heartbeat).
"""

from __future__ import annotations

from ._operations import serving as serving_ops
from ._read import serving as serving_reads
from ._records import DeploymentRecord, RecordList, ServingInstanceRecord
from ._store import Store


class ServingLedger:
    """Serving instances: started, beating, switched, ended, listed (mixed into ``Tracker``)."""

    @property
    def store(self) -> Store:
        raise NotImplementedError  # Tracker's own property

    def start_serving(
        self,
        model: str | int,
        environment: str,
        *,
        deployment_id: int,
        host: str,
        port: int,
        pid: int,
        heartbeat_s: float,
    ) -> ServingInstanceRecord:
        """Record a server that starts serving deployment ``deployment_id`` (audited as ``serving.start``)."""
        store = self.store
        instance_id = store.run(
            lambda s: serving_ops.start_instance(
                s, store, model, environment, deployment_id=deployment_id, host=host, port=port, pid=pid,
                heartbeat_s=heartbeat_s,
            )
        )  # fmt: skip
        return self.serving_instance(instance_id)

    def serving_heartbeat(self, instance_id: int) -> DeploymentRecord | None:
        """Mark the instance alive now; returns what serves its environment now (None: nothing does)."""
        return self.store.run(lambda s: serving_ops.heartbeat(s, instance_id))

    def record_serving_switch(
        self, instance_id: int, deployment_id: int, *, reason: str | None = None
    ) -> ServingInstanceRecord:
        """Record that the instance now serves ``deployment_id`` (audited as ``serving.switch``)."""
        store = self.store
        store.run(lambda s: serving_ops.switch_instance(s, store, instance_id, deployment_id, reason=reason))
        return self.serving_instance(instance_id)

    def end_serving(self, instance_id: int, *, state: str = "stopped", reason: str | None = None) -> None:
        """End the instance as ``stopped`` or ``failed`` (audited as ``serving.stop``); a second call does nothing."""
        store = self.store
        store.run(lambda s: serving_ops.end_instance(s, store, instance_id, state=state, reason=reason))

    def serving_instance(self, instance_id: int) -> ServingInstanceRecord:
        with self.store.transaction(read_only=True) as s:
            return serving_reads.instance(s, instance_id)

    def serving_instances(
        self,
        model: str | int | None = None,
        *,
        environment: str | None = None,
        state: str | None = None,
        limit: int | None = 100,
    ) -> RecordList[ServingInstanceRecord]:
        """Servers of ``model`` (or of every model), newest first, with their state.

        ``state`` is ``serving``, ``lost`` (no heartbeat for ``lost_after_s``, computed when read),
        ``stopped`` or ``failed``.
        """
        with self.store.transaction(read_only=True) as s:
            return serving_reads.instances(s, model, environment=environment, state=state, limit=limit)
