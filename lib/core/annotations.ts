/**
 * The two pod annotations this program reads and writes, defined once.
 *
 * @module
 */

/** `k8s.v1.cni.cncf.io/networks`: the attachments a pod asks for. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";

/** `k8s.v1.cni.cncf.io/network-status`: the attachments a pod has. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
