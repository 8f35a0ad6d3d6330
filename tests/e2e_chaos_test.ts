/**
 * A short seeded round of the chaos soak (`deno task soak --chaos`) on the rig: twenty-odd
 * pods churned while every fault kind is injected at random instants, the invariants checked
 * after every round, and nothing left once every pod is deleted. The long runs stay a task;
 * their figures are in the README.
 */
import assert from "node:assert/strict";
import { rigTest } from "./support/mod.ts";
import { type RigRuntime } from "./rig/mod.ts";
import { FAULT_KINDS } from "./soak/chaos_plan.ts";
import { runChaos } from "./soak/chaos.ts";

/** The seed of the round CI runs; any seed a run prints replays that run. */
const SEED = 20261207;

Deno.test({
  name:
    "chaos: three minutes of random faults under churn, every invariant holding after each round and nothing left at the end",
  ...rigTest,
  async fn() {
    const report = await runChaos({
      minutes: 3,
      runtime: (Deno.env.get("DNC_RIG_RUNTIME") as RigRuntime | undefined) ?? "containerd",
      seed: SEED,
      pods: 20,
      faultsPerRound: 6,
      quietTimeoutMs: 240_000,
    });
    assert.equal(
      report.violations,
      0,
      `seed ${SEED}: ${JSON.stringify(report.violationDetails, null, 2)}`,
    );
    assert.equal(report.drain, "nothing left");
    for (const kind of FAULT_KINDS) {
      assert.ok(
        (report.faults[kind] ?? 0) >= 1,
        `no ${kind} fault in ${JSON.stringify(report.faults)}`,
      );
    }
    assert.ok(report.podsCreated >= 20 && report.edits > 0, JSON.stringify(report.steps));
  },
});
