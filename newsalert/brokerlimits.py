"""What an external broker accepts, asked before the stream workers join their group: a
session timeout outside the broker's limits makes the join fail again and again, silently
(aiokafka logs it and retries; the service would never start), so it is said in one line."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

MIN_SESSION = "group.min.session.timeout.ms"
MAX_SESSION = "group.max.session.timeout.ms"


async def broker_configs(bootstrap_servers: str, names: list[str]) -> dict[str, str]:
    """The named configs of one broker of the cluster (empty when the broker tells none, as
    Tansu does, or refuses to: a managed Kafka may not allow DescribeConfigs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        node = str(cluster["brokers"][0]["node_id"])
        wanted = ConfigResource(ConfigResourceType.BROKER, node, dict.fromkeys(names))
        responses = await admin.describe_configs([wanted])
    finally:
        await admin.close()
    found: dict[str, str] = {}
    for response in responses:
        for error_code, _, _, _, entries in response.resources:
            if error_code == 0:
                found.update({entry[0]: entry[1] for entry in entries if entry[1] is not None})
    return found


def session_timeout_problem(session_timeout_seconds: float, configs: dict[str, str]) -> str | None:
    """Why the broker would refuse this session timeout, naming the setting and the limit."""
    low = int(configs.get(MIN_SESSION, 0)) / 1000
    high = int(configs.get(MAX_SESSION, 0)) / 1000 or float("inf")
    if low <= session_timeout_seconds <= high:
        return None
    limit = (
        f"{MIN_SESSION} = {low:g} s"
        if session_timeout_seconds < low
        else (f"{MAX_SESSION} = {high:g} s")
    )
    return (
        f"broker_session_timeout_seconds is {session_timeout_seconds:g} s, but the broker "
        f"accepts {low:g}-{high:g} s ({limit}); set broker_session_timeout_seconds "
        "(NEWSALERT_BROKER_SESSION_TIMEOUT_SECONDS) within that range"
    )
