/**
 * dynamic-networks-controller: hot-plugs secondary network interfaces into running pods.
 *
 * @module
 */
if (import.meta.main) {
  console.log("dynamic-networks-controller");
}
