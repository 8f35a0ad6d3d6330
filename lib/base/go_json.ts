/**
 * JSON text as Go's `encoding/json` `Marshal` writes it for maps and plain values: object keys
 * sorted (Go marshals maps in key order), no whitespace, and `<`, `>`, `&`, U+2028 and U+2029
 * escaped as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`. Numbers print as JavaScript prints
 * them, which matches Go's float64 formatting.
 *
 * Used where the agent must send the same bytes as the original controller: NAD configs after
 * name injection and the `cni-args` of a delegate request.
 *
 * @module
 */

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value === "object" && value !== null) {
    // A null prototype keeps a "__proto__" key an ordinary key.
    const out: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(value).sort(compareUtf8)) {
      out[key] = sortKeys((value as Record<string, unknown>)[key]);
    }
    return out;
  }
  return value;
}

const encoder = new TextEncoder();

/** Orders strings by their UTF-8 bytes, as Go's `sort.Strings` does. */
function compareUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const HTML_UNSAFE = /[<>&\u2028\u2029]/g;

/** Escapes what Go's encoder escapes; such characters can only occur inside JSON strings. */
export function goEscape(json: string): string {
  return json.replace(HTML_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Serializes `value` like Go's `json.Marshal` of the same `map[string]interface{}` tree. */
export function goMarshal(value: unknown): string {
  return goEscape(JSON.stringify(sortKeys(value)));
}
