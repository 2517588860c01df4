"""Multi-node jobs (spec.resources.workers > 1): what the operator gives every worker pod of the
Kubeflow PaddleJob and what the runner reads from it (docs/multinode.md).

Every worker runs the same `kslim run`. Worker 0 (the leader) runs the whole pipeline; the others
(followers) prepare the same data, then take part in each training session the leader hands them
over HTTP (the model's recipe, its starting weights, a checkpoint to resume), signed with the job's
token so that nothing else on the pod network can feed a follower or read the weights.
"""

from __future__ import annotations

#: Kubeflow training-operator's PaddleJob (the engine that runs multi-node jobs).
PADDLEJOB_GROUP = "kubeflow.org"
PADDLEJOB_VERSION = "v1"
PADDLEJOB_PLURAL = "paddlejobs"
PADDLEJOB_KIND = "PaddleJob"
#: The replica type kslim uses (collective mode: no Master replica, worker 0 is the rendezvous).
WORKER_REPLICA = "Worker"
#: The label training-operator puts on each pod: its index among the workers.
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
#: training-operator's container name and port name for a PaddleJob; it sets PADDLE_MASTER to
#: `<job>-worker-0:<this port>` (worker 0: its own pod IP) from the port named so.
PADDLE_CONTAINER_NAME = "paddle"
MASTER_PORT_NAME = "master"
MASTER_PORT = 36543
#: The leader's hand-over server (a second port, next to paddle's rendezvous store).
HANDOVER_PORT_NAME = "handover"
HANDOVER_PORT = 36544

#: Environment of a worker pod. PADDLE_MASTER and PADDLE_NNODES come from training-operator;
#: the KSLIM_ ones from the operator (the rank through the downward API from the index label).
PADDLE_MASTER_ENV = "PADDLE_MASTER"
NODES_ENV = "KSLIM_NODES"
NODE_RANK_ENV = "KSLIM_NODE_RANK"
HANDOVER_TOKEN_ENV = "KSLIM_HANDOVER_TOKEN"
#: The key of the per-job Secret (named by the operator) that holds the hand-over token.
HANDOVER_TOKEN_KEY = "handover-token"
#: Read by the runner alone, for tests that run a leader and its followers on one machine (in
#: parallel test sessions): the hand-over port (default HANDOVER_PORT) and the silence bound.
HANDOVER_PORT_ENV = "KSLIM_HANDOVER_PORT"
#: A follower whose leader has not answered for this long (and a leader whose follower has not) gives
#: up: exit 1 (EXIT_INTERNAL) on the follower, an internal error on the leader.
NODE_TIMEOUT_SECONDS = 600
NODE_TIMEOUT_ENV = "KSLIM_NODE_TIMEOUT_SECONDS"
#: training-operator's worker count (the runner checks it agrees with NODES_ENV when set).
PADDLE_NNODES_ENV = "PADDLE_NNODES"
#: The worker that runs the whole pipeline, hosts paddle's rendezvous store and the hand-over server.
LEADER_RANK = 0
