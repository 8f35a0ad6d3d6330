/**
 * The names this program reads and writes on pods, defined once: the two annotations, and
 * its own finalizer.
 *
 * @module
 */

/** `k8s.v1.cni.cncf.io/networks`: the attachments a pod asks for. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";

/** `k8s.v1.cni.cncf.io/network-status`: the attachments a pod has. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";

/**
 * The agent's finalizer, on every pod that holds attachments the agent made (its journal's):
 * it keeps a deleted pod in the API server until the agent has released them, since multus
 * refuses any release for a pod it cannot look up.
 */
export const RELEASE_FINALIZER = "dynamic-networks-controller.io/release-attachments";
