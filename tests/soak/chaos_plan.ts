/**
 * The chaos soak's script: a pure function of the seed. It keeps a model of what the run
 * has asked for (the live pods and their networks annotations, whether the late NAD exists)
 * and deals, round after round, the workload's steps and the faults, each at an instant
 * within the round. Nothing here depends on what the node did, so a seed always gives the
 * same run.
 *
 * @module
 */
import { SeededRandom, ShuffleBag } from "./seeded_random.ts";

/** The faults the picker injects. */
export const FAULT_KINDS = [
  "agent-kill",
  "multus-restart",
  "runtime-restart",
  "kubelet-restart",
  "apiserver-restart",
  "sandbox-kill",
  "plugin-fault",
] as const;
/** One of {@linkcode FAULT_KINDS}. */
export type FaultKind = typeof FAULT_KINDS[number];

/**
 * The soak's networks: `blue` (macvlan, host-local), `green` (bridge, host-local), `red`
 * (macvlan, static IPAM: every element asks for its `ips`, some for a `mac`), `amber` (macvlan
 * behind the plugin the `plugin-fault` makes slow or failing), `late` (macvlan, host-local;
 * its NAD is created and deleted as the run goes).
 */
export const NETWORKS = ["blue", "green", "red", "amber", "late"] as const;
/** One of {@linkcode NETWORKS}. */
export type NetworkName = typeof NETWORKS[number];

/** One element of a networks annotation, as the soak writes it. */
export interface Element {
  name: NetworkName;
  interface?: string;
  ips?: string[];
  mac?: string;
}

/** A pod the run has created and not deleted. */
export interface PodModel {
  name: string;
  /** Its containers take a few seconds to exit after SIGTERM. */
  slowExit: boolean;
  /** The annotation the run wrote last. */
  elements: Element[];
}

/** How an edit changes the annotation. */
export type EditKind = "replace" | "swap" | "readdress" | "nameless" | "clear";

/** One workload step. */
export type Step =
  | { kind: "create"; pod: string; slowExit: boolean; elements: Element[] }
  | { kind: "delete"; pod: string; force: boolean }
  | { kind: "edit"; pod: string; edit: EditKind; elements: Element[]; overwrite?: Element[] }
  | { kind: "late-nad"; present: boolean };

/** One injected fault. */
export interface PlannedFault {
  kind: FaultKind;
  /** For `sandbox-kill`: the pod. */
  pod?: string;
  /** For `plugin-fault`: slow (each call sleeps) or failing (each ADD fails). */
  mode?: "slow" | "fail";
  /** For `plugin-fault`: how long it lasts, in ms. */
  holdMs?: number;
  /** For `agent-kill`: how long the agent stays down, in ms (the DaemonSet's restart). */
  downMs?: number;
}

/** Something that happens `atMs` after the round starts. */
export type Timed<T> = T & { atMs: number };

/** One round: steps and faults, at instants within its window. */
export interface RoundPlan {
  index: number;
  steps: Timed<Step>[];
  faults: Timed<PlannedFault>[];
}

/** Knobs of {@linkcode ChaosPlanner}. */
export interface PlannerOptions {
  /** Pods the run keeps alive (it drifts within two of it). */
  pods: number;
  /** Faults per round (distinct kinds). */
  faultsPerRound: number;
  /** The window in which a round's steps and faults start, in ms. */
  windowMs: number;
}

const SLOTS = ["net1", "net2", "net3", "net4"];
const COLD_NETWORKS: readonly NetworkName[] = ["blue"];

/** Grace period of a pod whose containers are slow to exit (they take 4 to 5 s). */
export const SLOW_EXIT_GRACE_SECONDS = 10;
/** Grace period of the other pods. */
export const GRACE_SECONDS = 5;

/** Deals a seeded run: {@linkcode ChaosPlanner.initial} once, then {@linkcode ChaosPlanner.round}. */
export class ChaosPlanner {
  readonly #random: SeededRandom;
  readonly #faults: ShuffleBag<FaultKind>;
  readonly #options: PlannerOptions;
  /** The live pods, in creation order. */
  readonly pods = new Map<string, PodModel>();
  /** Whether the late NAD exists (once the steps so far are done). */
  lateNad = false;
  #podSerial = 0;
  #addressSerial = 0;
  #round = 0;

  /** A planner for `seed`. */
  constructor(seed: number, options: PlannerOptions) {
    if (options.faultsPerRound > FAULT_KINDS.length) {
      throw new Error(`at most ${FAULT_KINDS.length} faults a round (one of each kind)`);
    }
    this.#random = new SeededRandom(seed);
    this.#faults = new ShuffleBag(FAULT_KINDS, this.#random);
    this.#options = options;
  }

  /** The pods the run starts with. */
  initial(): Step[] {
    const steps: Step[] = [];
    for (let i = 0; i < this.#options.pods; i++) steps.push(this.#create());
    return steps;
  }

  /** The next round. */
  round(): RoundPlan {
    const r = this.#random;
    const window = this.#options.windowMs;
    const at = () => r.int(window);
    const steps: Timed<Step>[] = [];
    const touched = new Set<string>();
    const before = [...this.pods.keys()];

    if (this.pods.size > this.#options.pods - 2 && r.chance(0.5)) {
      const name = r.pick([...this.pods.keys()]);
      touched.add(name);
      this.pods.delete(name);
      steps.push({ kind: "delete", pod: name, force: r.chance(0.2), atMs: at() });
    }
    if (this.pods.size < this.#options.pods + 2 && r.chance(0.5)) {
      const step = this.#create();
      touched.add(step.pod);
      steps.push({ ...step, atMs: at() });
    }
    if (r.chance(this.lateNad ? 0.15 : 0.3)) {
      this.lateNad = !this.lateNad;
      steps.push({ kind: "late-nad", present: this.lateNad, atMs: at() });
    }
    const editable = r.shuffle([...this.pods.keys()].filter((p) => !touched.has(p)));
    for (const name of editable.slice(0, r.between(3, 6))) {
      const pod = this.pods.get(name)!;
      const edit = r.pick<EditKind>([
        "replace",
        "replace",
        "swap",
        "readdress",
        "nameless",
        "clear",
      ]);
      pod.elements = this.#edited(pod.elements, edit);
      const step: Timed<Step> = {
        kind: "edit",
        pod: name,
        edit,
        elements: pod.elements,
        atMs: at(),
      };
      if (r.chance(0.2)) {
        pod.elements = this.#edited(pod.elements, "replace");
        step.overwrite = pod.elements;
      }
      touched.add(name);
      steps.push(step);
    }

    const faults: Timed<PlannedFault>[] = [];
    for (const kind of this.#faults.deal(this.#options.faultsPerRound)) {
      const fault: Timed<PlannedFault> = { kind, atMs: at() };
      if (kind === "sandbox-kill") {
        // A pod the round's steps leave alone, whose new sandbox multus can plug: no element
        // on the late network, whose NAD may be missing.
        const candidates = before.filter((p) =>
          this.pods.has(p) && !touched.has(p) &&
          !this.pods.get(p)!.elements.some((e) => e.name === "late")
        );
        if (candidates.length === 0) continue;
        fault.pod = r.pick(candidates);
      } else if (kind === "plugin-fault") {
        fault.mode = r.chance(0.5) ? "slow" : "fail";
        fault.holdMs = r.between(1_000, 5_000);
      } else if (kind === "agent-kill") {
        fault.downMs = r.between(0, 1_500);
      }
      faults.push(fault);
    }
    steps.sort((a, b) => a.atMs - b.atMs);
    faults.sort((a, b) => a.atMs - b.atMs);
    return { index: this.#round++, steps, faults };
  }

  #create(): Extract<Step, { kind: "create" }> {
    const r = this.#random;
    const name = `chaos-${this.#podSerial++}`;
    const elements: Element[] = r.chance(0.5)
      ? [{ name: r.pick(COLD_NETWORKS), interface: "net1" }]
      : [];
    const slowExit = r.chance(0.3);
    this.pods.set(name, { name, slowExit, elements });
    return { kind: "create", pod: name, slowExit, elements };
  }

  #address(): { ip: string; mac: string } {
    const n = ++this.#addressSerial;
    const hi = (n >> 8) & 0xff;
    const lo = n & 0xff;
    const hex = (v: number) => v.toString(16).padStart(2, "0");
    return {
      ip: `10.84.${hi}.${lo === 0 ? 254 : lo}/16`,
      mac: `02:84:00:${hex((n >> 16) & 0xff)}:${hex(hi)}:${hex(lo)}`,
    };
  }

  #element(name: NetworkName, iface: string | undefined): Element {
    const element: Element = { name, ...(iface ? { interface: iface } : {}) };
    if (name === "red") {
      const { ip, mac } = this.#address();
      element.ips = [ip];
      if (this.#random.chance(0.5)) element.mac = mac;
    }
    return element;
  }

  #fresh(): Element[] {
    const r = this.#random;
    const count = r.between(0, 3);
    const slots = r.shuffle(SLOTS);
    const out: Element[] = [];
    for (let i = 0; i < count; i++) {
      out.push(this.#element(r.pick(NETWORKS), r.chance(0.8) ? slots[i] : undefined));
    }
    return out;
  }

  #edited(current: readonly Element[], edit: EditKind): Element[] {
    return multusNameable(this.#change(current, edit));
  }

  #change(current: readonly Element[], edit: EditKind): Element[] {
    const r = this.#random;
    switch (edit) {
      case "clear":
        return [];
      case "replace":
        return this.#fresh();
      case "swap": {
        // Two named elements exchange their interface names (each name moves to the other
        // network), or, with fewer than two, a fresh list.
        const named = current.map((e, i) => ({ e, i })).filter(({ e }) => e.interface);
        if (named.length < 2) return this.#fresh();
        const [a, b] = r.shuffle(named);
        const out = current.map((e) => ({ ...e }));
        out[a!.i]!.interface = b!.e.interface;
        out[b!.i]!.interface = a!.e.interface;
        return out;
      }
      case "readdress": {
        // A red element gets a new address (and MAC, when it has one); without one, one is added.
        const reds = current.map((e, i) => ({ e, i })).filter(({ e }) => e.name === "red");
        if (reds.length === 0) {
          const used = new Set(current.map((e) => e.interface));
          const free = SLOTS.find((s) => !used.has(s));
          return [...current, this.#element("red", free)];
        }
        const { i } = r.pick(reds);
        const out = current.map((e) => ({ ...e }));
        const { ip, mac } = this.#address();
        out[i]!.ips = [ip];
        if (out[i]!.mac !== undefined || r.chance(0.3)) out[i]!.mac = mac;
        return out;
      }
      case "nameless": {
        const network = r.pick(NETWORKS.filter((n) => n !== "late"));
        return [...current, this.#element(network, undefined)].slice(-4);
      }
    }
  }
}

/**
 * `elements` as multus can plug them into a new sandbox (after the kubelet replaces a dead
 * one): multus names an element without an interface name `net<position>` (1-based), and
 * fails the whole sandbox when another element names that interface. A named element in the
 * way moves to the first free `netN`, so that the run never writes an annotation no sandbox
 * of the pod could be made with.
 */
export function multusNameable(elements: readonly Element[]): Element[] {
  const out = elements.map((e) => ({ ...e }));
  const positional = new Set(
    out.flatMap((e, i) => e.interface === undefined ? [`net${i + 1}`] : []),
  );
  const used = new Set(out.flatMap((e) => e.interface ? [e.interface] : []));
  for (const element of out) {
    if (element.interface === undefined || !positional.has(element.interface)) continue;
    let n = 1;
    while (used.has(`net${n}`) || positional.has(`net${n}`)) n++;
    used.delete(element.interface);
    element.interface = `net${n}`;
    used.add(element.interface);
  }
  return out;
}
