"""Facts about the links that join machines of a platform for multi-node serving, as data.

A platform whose machines are cabled to each other directly (DGX Spark's ConnectX-7 port)
has a row here naming the interfaces NCCL, UCX and Open MPI must use; a platform without a
row leaves the choice to NCCL's own detection. `deploy --nic` overrides the row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterNetwork:
    interfaces: tuple[str, ...]  # netdev names of the fast link on each machine
    rdma_device: str | None  # device node that gives NCCL RDMA (RoCE) over that link
    source: str


CLUSTER_NETWORKS: dict[str, ClusterNetwork] = {
    # NVIDIA/dgx-spark-playbooks nvidia/trt-llm/README.md, "Run on two Sparks", step 4: both
    # CX-7 netdevs are listed (a UCX warning about the unused one is expected), and the
    # container gets /dev/infiniband. nvidia/connect-two-sparks/README.md: `ibdev2netdev`
    # shows which port is Up (enp1s0f1np1 / enP2p1s0f1np1 when the second port is cabled).
    "dgx-spark": ClusterNetwork(
        interfaces=("enp1s0f0np0", "enp1s0f1np1"),
        rdma_device="/dev/infiniband",
        source="NVIDIA dgx-spark-playbooks: nvidia/trt-llm (Run on two Sparks), nvidia/connect-two-sparks",
    ),
}


def link_env(interfaces: tuple[str, ...]) -> dict[str, str]:
    """Environment that pins NCCL, UCX and Open MPI's TCP transport to `interfaces` (empty: no pinning)."""
    if not interfaces:
        return {}
    joined = ",".join(interfaces)
    return {
        "NCCL_SOCKET_IFNAME": joined,
        "UCX_NET_DEVICES": joined,
        "OMPI_MCA_btl_tcp_if_include": joined,
    }


def cluster_interfaces(platform: str, override: tuple[str, ...]) -> tuple[str, ...]:
    if override:
        return override
    row = CLUSTER_NETWORKS.get(platform)
    return row.interfaces if row else ()


def rdma_device(platform: str) -> str | None:
    row = CLUSTER_NETWORKS.get(platform)
    return row.rdma_device if row else None
