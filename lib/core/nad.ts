/**
 * NetworkAttachmentDefinition → the CNI configuration sent to multus' `/delegate`.
 *
 * Like the original controller: `spec.config` is parsed as JSON; when its top-level `name` is
 * missing or `""`, the NAD's `metadata.name` is injected and the object re-serialized as Go does
 * (sorted keys, compact); otherwise the original bytes are sent unchanged.
 *
 * @module
 */
import { goMarshal } from "../base/go_json.ts";
import { isPlainObject, jsonType } from "../base/json.ts";
import { objectKey } from "./names.ts";

/** The parts of a NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`) the agent uses. */
export interface NetworkAttachmentDefinition {
  /** `metadata.namespace`. */
  namespace: string;
  /** `metadata.name`. */
  name: string;
  /** `spec.config`: the CNI configuration (a single plugin or a conflist) as JSON text. */
  config: string;
  /** `metadata.resourceVersion`, when known. */
  resourceVersion?: string;
}

/** The key of a NAD: `"<namespace>/<name>"`, as caches and network-status entries name it. */
export function nadKey(nad: { namespace: string; name: string }): string {
  return objectKey(nad.namespace, nad.name);
}

/** A NAD whose `spec.config` cannot be delegated; the message names the NAD and the fix. */
export class NadConfigError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NadConfigError";
  }
}

const encoder = new TextEncoder();

/**
 * Returns the delegate CNI configuration bytes of `nad`.
 *
 * @throws {NadConfigError} when `spec.config` is empty, not JSON, or not a JSON object.
 */
export function delegateConfig(nad: NetworkAttachmentDefinition): Uint8Array {
  const id = `NetworkAttachmentDefinition ${nadKey(nad)}`;
  if (nad.config.trim() === "") {
    throw new NadConfigError(
      `${id} has an empty spec.config; the delegate API needs the CNI configuration inline ` +
        "(put the plugin's JSON configuration in spec.config)",
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(nad.config);
  } catch (e) {
    throw new NadConfigError(
      `${id} has a spec.config that is not valid JSON (${(e as Error).message}); fix spec.config`,
      { cause: e },
    );
  }
  if (!isPlainObject(parsed)) {
    const kind = Array.isArray(parsed) ? "an array" : jsonType(parsed);
    throw new NadConfigError(
      `${id} has a spec.config that is ${kind}, not a JSON object; ` +
        "spec.config must be a CNI configuration object",
    );
  }
  const conf = parsed;
  if (conf["name"] === undefined || conf["name"] === "") {
    conf["name"] = nad.name;
    return encoder.encode(goMarshal(conf));
  }
  return encoder.encode(nad.config);
}
