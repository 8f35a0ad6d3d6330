/**
 * A small proto3 codec driven by a protobufjs JSON descriptor (see `lib/cri/descriptor.ts`).
 *
 * It knows exactly what our CRI subset uses: `string`, `bytes`, `bool`, `int32`, `uint32`,
 * `int64`, `uint64`, enums, nested messages, `repeated` fields and `map<string, …>`. Fields the
 * descriptor does not name are skipped, as proto3 requires, so a runtime may send anything more.
 *
 * Values use the proto field names (`pod_sandbox_id`). Decoding fills proto3 defaults (`""`, `0`,
 * `0n` for 64-bit integers, `false`, `[]`, `{}`); an absent message field stays `undefined`.
 * Encoding writes fields in field-number order, omits scalar defaults (implicit presence) and
 * writes every message field that is set, even when empty: that is how a present
 * `PodSandboxStateValue` selects `SANDBOX_READY` (the zero value).
 *
 * @module
 */
import type { FieldDescriptor, NamespaceDescriptor } from "./descriptor.ts";

/** A decoded (or to-be-encoded) message: proto field name → value. */
export type ProtoMessage = Record<string, unknown>;

/** Raised for bytes that are not a valid encoding of the expected message. */
export class ProtoDecodeError extends Error {
  /** Creates the error; `type` names the message being decoded. */
  constructor(type: string, detail: string) {
    super(`cannot decode protobuf message ${type}: ${detail}`);
    this.name = "ProtoDecodeError";
  }
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const VARINT_SCALARS = new Set(["bool", "int32", "uint32", "int64", "uint64", "sint32", "sint64"]);
const LONG_SCALARS = new Set(["int64", "uint64", "sint64"]);

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

class Writer {
  #chunks: number[] = [];

  varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v > 0x7fn) {
      this.#chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#chunks.push(Number(v));
  }

  tag(id: number, wire: number): void {
    this.varint(BigInt(id * 8 + wire));
  }

  bytes(data: Uint8Array): void {
    this.varint(BigInt(data.length));
    for (const b of data) this.#chunks.push(b);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.#chunks);
  }
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly type: string) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new ProtoDecodeError(this.type, "truncated varint");
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new ProtoDecodeError(this.type, "varint longer than 10 bytes");
  }

  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new ProtoDecodeError(this.type, `field of ${n} bytes runs past the end of the message`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  lengthDelimited(): Uint8Array {
    return this.take(Number(this.varint()));
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.take(8);
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_FIXED32:
        this.take(4);
        return;
      default:
        throw new ProtoDecodeError(this.type, `unsupported wire type ${wire}`);
    }
  }
}

/** Encodes and decodes the messages of one protobuf package described by a JSON descriptor. */
export class ProtoCodec {
  readonly #types: Record<string, NamespaceDescriptor>;
  readonly #byNumber = new Map<string, Map<number, [string, FieldDescriptor]>>();

  /**
   * A codec of the messages of package `packageName` in `root`.
   *
   * @param root descriptor root as printed by `protobuf.Root#toJSON()`
   * @param packageName dotted package name, e.g. `runtime.v1`
   */
  constructor(root: NamespaceDescriptor, packageName: string) {
    let ns: NamespaceDescriptor | undefined = root;
    for (const part of packageName.split(".")) ns = ns?.nested?.[part];
    if (ns?.nested === undefined) {
      throw new Error(`package ${packageName} is not in the descriptor; regenerate it`);
    }
    this.#types = ns.nested;
  }

  #message(type: string): Record<string, FieldDescriptor> {
    const fields = this.#types[type]?.fields;
    if (fields === undefined) throw new Error(`message type ${type} is not in the descriptor`);
    return fields;
  }

  #isEnum(type: string): boolean {
    return this.#types[type]?.values !== undefined;
  }

  #fieldsByNumber(type: string): Map<number, [string, FieldDescriptor]> {
    let map = this.#byNumber.get(type);
    if (map === undefined) {
      map = new Map(Object.entries(this.#message(type)).map(([n, f]) => [f.id, [n, f]]));
      this.#byNumber.set(type, map);
    }
    return map;
  }

  /** Serializes `value` as message `type` (e.g. `ListPodSandboxRequest`). */
  encode(type: string, value: ProtoMessage): Uint8Array {
    const w = new Writer();
    this.#encodeInto(w, type, value);
    return w.finish();
  }

  #encodeInto(w: Writer, type: string, value: ProtoMessage): void {
    const fields = Object.entries(this.#message(type)).sort(([, a], [, b]) => a.id - b.id);
    for (const [name, field] of fields) {
      const v = value[name];
      if (v === undefined || v === null) continue;
      if (field.keyType !== undefined) {
        for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
          const entry = new Writer();
          this.#encodeValue(entry, 1, field.keyType, k, true);
          this.#encodeValue(entry, 2, field.type, item, true);
          w.tag(field.id, WIRE_LEN);
          w.bytes(entry.finish());
        }
      } else if (field.rule === "repeated") {
        for (const item of v as unknown[]) this.#encodeValue(w, field.id, field.type, item, true);
      } else {
        this.#encodeValue(w, field.id, field.type, v, false);
      }
    }
  }

  #encodeValue(w: Writer, id: number, type: string, v: unknown, always: boolean): void {
    if (type === "string" || type === "bytes") {
      const data = typeof v === "string" ? utf8Encoder.encode(v) : (v as Uint8Array);
      if (data.length === 0 && !always) return;
      w.tag(id, WIRE_LEN);
      w.bytes(data);
    } else if (VARINT_SCALARS.has(type) || this.#isEnum(type)) {
      const n = typeof v === "boolean" ? (v ? 1n : 0n) : BigInt(v as number | bigint);
      if (n === 0n && !always) return;
      w.tag(id, WIRE_VARINT);
      w.varint(type.startsWith("sint") ? (n << 1n) ^ (n < 0n ? -1n : 0n) : n);
    } else {
      const inner = new Writer();
      this.#encodeInto(inner, type, v as ProtoMessage);
      w.tag(id, WIRE_LEN);
      w.bytes(inner.finish());
    }
  }

  /** Parses `bytes` as message `type`; unknown fields are skipped. */
  decode(type: string, bytes: Uint8Array): ProtoMessage {
    return this.#decodeFrom(new Reader(bytes, type), type);
  }

  #defaults(type: string): ProtoMessage {
    const out: ProtoMessage = {};
    for (const [name, f] of Object.entries(this.#message(type))) {
      if (f.keyType !== undefined) out[name] = {};
      else if (f.rule === "repeated") out[name] = [];
      else if (f.type === "string") out[name] = "";
      else if (f.type === "bytes") out[name] = new Uint8Array();
      else if (f.type === "bool") out[name] = false;
      else if (LONG_SCALARS.has(f.type)) out[name] = 0n;
      else if (VARINT_SCALARS.has(f.type) || this.#isEnum(f.type)) out[name] = 0;
    }
    return out;
  }

  #decodeFrom(r: Reader, type: string): ProtoMessage {
    const out = this.#defaults(type);
    const byNumber = this.#fieldsByNumber(type);
    while (!r.done) {
      const key = r.varint();
      const id = Number(key >> 3n);
      const wire = Number(key & 7n);
      const known = byNumber.get(id);
      if (known === undefined) {
        r.skip(wire);
        continue;
      }
      const [name, field] = known;
      if (field.keyType !== undefined) {
        this.#expectWire(r, name, wire, WIRE_LEN);
        const entry = new Reader(r.lengthDelimited(), type);
        let k: unknown = this.#decodeDefault(field.keyType);
        let v: unknown = this.#decodeDefault(field.type);
        while (!entry.done) {
          const ek = entry.varint();
          const eid = Number(ek >> 3n);
          const ewire = Number(ek & 7n);
          if (eid === 1) k = this.#decodeValue(entry, name, field.keyType, ewire);
          else if (eid === 2) v = this.#decodeValue(entry, name, field.type, ewire);
          else entry.skip(ewire);
        }
        // defineProperty: a "__proto__" key must stay an ordinary key.
        Object.defineProperty(out[name], String(k), {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else if (field.rule === "repeated") {
        const list = out[name] as unknown[];
        const numeric = VARINT_SCALARS.has(field.type) || this.#isEnum(field.type);
        if (numeric && wire === WIRE_LEN) {
          const packed = new Reader(r.lengthDelimited(), type);
          while (!packed.done) list.push(this.#decodeValue(packed, name, field.type, WIRE_VARINT));
        } else {
          list.push(this.#decodeValue(r, name, field.type, wire));
        }
      } else {
        out[name] = this.#decodeValue(r, name, field.type, wire);
      }
    }
    return out;
  }

  #decodeDefault(type: string): unknown {
    if (type === "string") return "";
    if (type === "bool") return false;
    if (LONG_SCALARS.has(type)) return 0n;
    if (VARINT_SCALARS.has(type) || this.#isEnum(type)) return 0;
    if (type === "bytes") return new Uint8Array();
    return undefined;
  }

  #expectWire(r: Reader, name: string, got: number, want: number): void {
    if (got !== want) {
      throw new ProtoDecodeError(r.type, `field ${name} has wire type ${got}, expected ${want}`);
    }
  }

  #decodeValue(r: Reader, name: string, type: string, wire: number): unknown {
    if (type === "string") {
      this.#expectWire(r, name, wire, WIRE_LEN);
      const data = r.lengthDelimited();
      try {
        return utf8Decoder.decode(data);
      } catch {
        throw new ProtoDecodeError(r.type, `field ${name} is not valid UTF-8`);
      }
    }
    if (type === "bytes") {
      this.#expectWire(r, name, wire, WIRE_LEN);
      return r.lengthDelimited().slice();
    }
    if (VARINT_SCALARS.has(type) || this.#isEnum(type)) {
      this.#expectWire(r, name, wire, WIRE_VARINT);
      const raw = r.varint();
      switch (type) {
        case "bool":
          return raw !== 0n;
        case "int64":
          return BigInt.asIntN(64, raw);
        case "uint64":
          return raw;
        case "sint64":
          return (raw >> 1n) ^ -(raw & 1n);
        case "sint32":
          return Number((raw >> 1n) ^ -(raw & 1n));
        case "uint32":
          return Number(BigInt.asUintN(32, raw));
        default: // int32 and enums
          return Number(BigInt.asIntN(32, raw));
      }
    }
    this.#expectWire(r, name, wire, WIRE_LEN);
    return this.#decodeFrom(new Reader(r.lengthDelimited(), type), type);
  }
}
