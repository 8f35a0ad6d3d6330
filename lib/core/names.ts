/**
 * Kubernetes names and keys: the RFC 1123 rules object names follow, and the
 * `"<namespace>/<name>"` key that identifies a pod or a NetworkAttachmentDefinition everywhere
 * (the work queue, the caches, network-status entry names, log fields).
 *
 * @module
 */

/** The RFC 1123 label shape: lowercase letters, digits and "-", a letter or digit at both ends. */
export const DNS_LABEL: RegExp = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** True for an RFC 1123 label of at most `maxLength` characters (63, as Kubernetes allows). */
export function isDnsLabel(text: string, maxLength = 63): boolean {
  return text.length <= maxLength && DNS_LABEL.test(text);
}

/**
 * True for an RFC 1123 subdomain: at most 253 characters of labels joined by ".", each label at
 * most `maxLabelLength` characters (Kubernetes object names set no limit of their own).
 */
export function isDnsSubdomain(text: string, maxLabelLength = Infinity): boolean {
  return text.length > 0 && text.length <= 253 &&
    text.split(".").every((label) => isDnsLabel(label, maxLabelLength));
}

/** True for a Kubernetes namespace name (an RFC 1123 label of at most 63 characters). */
export function isNamespaceName(text: string): boolean {
  return isDnsLabel(text);
}

/** True for a Kubernetes object name (an RFC 1123 subdomain of at most 253 characters). */
export function isObjectName(text: string): boolean {
  return isDnsSubdomain(text);
}

/** The key of a namespaced object: `"<namespace>/<name>"`. */
export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Splits an {@linkcode objectKey} into its parts; throws for any other text. */
export function splitObjectKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf("/");
  if (slash <= 0 || slash === key.length - 1 || key.indexOf("/", slash + 1) !== -1) {
    throw new Error(`work queue key "${key}" is not of the form namespace/name`);
  }
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
