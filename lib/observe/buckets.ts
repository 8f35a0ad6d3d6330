/**
 * The histogram buckets of the controller's metrics (`controller_metrics.ts`), in seconds:
 * client-go's and controller-runtime's where dashboards expect them, and the agent's own for
 * delegate calls, RPCs and hot-plug latency.
 *
 * @module
 */

/** client-go's work-queue buckets: 10 ns to 1000 s, ×10 each. */
export const WORKQUEUE_BUCKETS: readonly number[] = [
  1e-8,
  1e-7,
  1e-6,
  1e-5,
  1e-4,
  1e-3,
  1e-2,
  1e-1,
  1,
  10,
  100,
  1000,
];

/** controller-runtime's reconcile-time buckets, in seconds. */
export const RECONCILE_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.15,
  0.2,
  0.25,
  0.3,
  0.35,
  0.4,
  0.45,
  0.5,
  0.6,
  0.7,
  0.8,
  0.9,
  1,
  1.25,
  1.5,
  1.75,
  2,
  2.5,
  3,
  3.5,
  4,
  4.5,
  5,
  6,
  7,
  8,
  9,
  10,
  15,
  20,
  25,
  30,
  40,
  50,
  60,
];

/** Buckets of a CNI ADD/DEL through multus, in seconds. */
export const DELEGATE_BUCKETS: readonly number[] = [
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
];

/** Buckets of a CRI call or an API request, in seconds. */
export const RPC_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** Buckets of the hot-plug latency (annotation change → status written), in seconds. */
export const HOTPLUG_BUCKETS: readonly number[] = [
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2,
  5,
  10,
  30,
  60,
  120,
  300,
];
