import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CONFIG_KEYS,
  type ConfigKey,
  ConfigSchema,
  CRI_SOCKET_CANDIDATES,
  DEFAULT_CONFIG_PATH,
  DEFAULT_CRI_SOCKET,
  DEFAULT_MULTUS_SOCKET,
  DEFAULTS,
  MULTUS_SOCKET_CANDIDATES,
} from "../lib/config/settings.ts";
import {
  detectSocket,
  loadConfig,
  type LoadedConfig,
  type LoadOptions,
} from "../lib/config/load.ts";
import { helpText, referenceMarkdown } from "../lib/config/help.ts";
import { ConfigError } from "../lib/config/load.ts";
import { UsageError } from "../lib/config/cli.ts";
import { runDeno } from "./support/mod.ts";

const MAIN_DIR = new URL("..", import.meta.url).pathname;

/** A file system of `files`; every other path does not exist. */
function fakeFiles(files: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = files[path];
    if (text === undefined) throw new Deno.errors.NotFound(`no such file: ${path}`);
    return text;
  };
}

interface Setup {
  args?: string[];
  env?: Record<string, string | undefined>;
  file?: Record<string, unknown> | string;
  path?: string;
  sockets?: string[];
}

function load(setup: Setup): LoadedConfig {
  const path = setup.path ?? DEFAULT_CONFIG_PATH;
  const files: Record<string, string> = {};
  if (setup.file !== undefined) {
    files[path] = typeof setup.file === "string" ? setup.file : JSON.stringify(setup.file);
  }
  const sockets = new Set(setup.sockets ?? []);
  const options: LoadOptions = {
    args: setup.args ?? [],
    env: setup.env ?? { NODE_NAME: "node-a" },
    readFile: fakeFiles(files),
    exists: (p) => sockets.has(p),
  };
  return loadConfig(options);
}

function problemsOf(fn: () => unknown): [string, ...string[]] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError && err.problems.length > 0) {
      return [err.problems[0]!, ...err.problems.slice(1)];
    }
    throw err;
  }
  assert.fail("expected a ConfigError");
}

// One valid value per source for every key: [file JSON value, env string, flag string,
// and the value each of those must produce]. Booleans take the flag as --x=<value>.
type Sample = {
  file: unknown;
  env: string;
  flag: string;
  expect: [unknown, unknown, unknown];
};
const SAMPLES: Record<ConfigKey, Sample> = {
  nodeName: {
    file: "from-file",
    env: "from-env",
    flag: "from-flag",
    expect: ["from-file", "from-env", "from-flag"],
  },
  kubeconfig: { file: "/f/kc", env: "/e/kc", flag: "/g/kc", expect: ["/f/kc", "/e/kc", "/g/kc"] },
  criSocketPath: {
    file: "/f/cri.sock",
    env: "/e/cri.sock",
    flag: "/g/cri.sock",
    expect: ["/f/cri.sock", "/e/cri.sock", "/g/cri.sock"],
  },
  multusSocketPath: {
    file: "/f/m.sock",
    env: "/e/m.sock",
    flag: "/g/m.sock",
    expect: ["/f/m.sock", "/e/m.sock", "/g/m.sock"],
  },
  stateDir: {
    file: "/f/state",
    env: "/e/state",
    flag: "/g/state",
    expect: ["/f/state", "/e/state", "/g/state"],
  },
  workers: { file: 3, env: "4", flag: "5", expect: [3, 4, 5] },
  criTimeoutMs: { file: 1000, env: "2000", flag: "3000", expect: [1000, 2000, 3000] },
  delegateTimeoutMs: { file: 10, env: "20", flag: "30", expect: [10, 20, 30] },
  resyncPeriodSeconds: { file: 0, env: "60", flag: "90", expect: [0, 60, 90] },
  driftCheckIntervalSeconds: { file: 0, env: "30", flag: "600", expect: [0, 30, 600] },
  driftRepair: { file: false, env: "true", flag: "false", expect: [false, true, false] },
  retryBaseDelayMs: { file: 1, env: "2", flag: "3", expect: [1, 2, 3] },
  retryMaxDelayMs: { file: 70000, env: "80000", flag: "90000", expect: [70000, 80000, 90000] },
  shutdownTimeoutSeconds: { file: 1, env: "2", flag: "3", expect: [1, 2, 3] },
  metricsAddress: {
    file: "127.0.0.1:1",
    env: "[::]:2",
    flag: "",
    expect: ["127.0.0.1:1", "[::]:2", ""],
  },
  logLevel: { file: "debug", env: "warn", flag: "error", expect: ["debug", "warn", "error"] },
  logFormat: { file: "text", env: "json", flag: "text", expect: ["text", "json", "text"] },
  namespaceIsolation: { file: true, env: "false", flag: "true", expect: [true, false, true] },
  allowedNadNamespaces: {
    file: ["a", "b"],
    env: "c, d",
    flag: "e",
    expect: [["a", "b"], ["c", "d"], ["e"]],
  },
  dryRun: { file: true, env: "0", flag: "true", expect: [true, false, true] },
  once: { file: false, env: "1", flag: "false", expect: [false, true, false] },
};

Deno.test("the samples cover every configuration key", () => {
  assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(ConfigSchema.shape).sort());
});

for (const spec of CONFIG_KEYS) {
  const s = SAMPLES[spec.key];
  Deno.test(`precedence for ${spec.key}: flag > environment > file > default`, () => {
    // nodeName is required, so the other keys get it from the file.
    const base = spec.key === "nodeName" ? {} : { nodeName: "base-node" };
    const file = { ...base, [spec.key]: s.file };
    const env = { [spec.env]: s.env };
    const flagArgs = [`--${spec.flag}=${s.flag}`];

    const fromFile = load({ file, env: {} });
    assert.deepEqual(fromFile.config[spec.key], s.expect[0]);
    assert.equal(fromFile.origins[spec.key].kind, "file");

    const fromEnv = load({ file, env });
    assert.deepEqual(fromEnv.config[spec.key], s.expect[1]);
    assert.equal(fromEnv.origins[spec.key].kind, "env");

    const fromFlag = load({ file, env, args: flagArgs });
    assert.deepEqual(fromFlag.config[spec.key], s.expect[2]);
    assert.equal(fromFlag.origins[spec.key].kind, "flag");

    // The flag also wins without a file, and in its two-argument form.
    if (spec.kind !== "boolean" && s.flag !== "") {
      const split = load({ file: base, env, args: [`--${spec.flag}`, s.flag] });
      assert.deepEqual(split.config[spec.key], s.expect[2]);
    }

    if (spec.key !== "nodeName") {
      const none = load({ file: base, env: {}, sockets: [] });
      assert.deepEqual(none.config[spec.key], DEFAULTS[spec.key]);
      assert.equal(none.origins[spec.key].kind, "default");
    }
  });
}

Deno.test("every default is what CONFIG_KEYS documents and passes the schema", () => {
  const { config } = load({});
  for (const spec of CONFIG_KEYS) {
    if (spec.default !== undefined) {
      assert.deepEqual(config[spec.key], spec.default, spec.key);
      assert.equal(
        spec.defaultText.includes(JSON.stringify(spec.default).replace(/"/g, "")) ||
          spec.defaultText.includes(String(spec.default)),
        true,
        spec.key,
      );
    }
  }
  assert.ok(ConfigSchema.safeParse(config).success);
});

Deno.test("a boolean switch without a value means true", () => {
  const { config } = load({ args: ["--once", "--dry-run", "--namespace-isolation"] });
  assert.equal(config.once, true);
  assert.equal(config.dryRun, true);
  assert.equal(config.namespaceIsolation, true);
});

Deno.test("an unknown file key is a warning naming the key, the closest key and every key", () => {
  const path = "/etc/x.json";
  const { warnings, config } = load({
    path,
    args: ["--config", path],
    file: { criSocket: "/x.sock", multusSocketPath: "/m.sock" },
  });
  const warning = warnings.find((w) => w.includes('"criSocket"'));
  assert.ok(warning, `no warning about criSocket in ${JSON.stringify(warnings)}`);
  assert.ok(warning.includes(path));
  assert.ok(warning.includes('did you mean "criSocketPath"?'), warning);
  for (const spec of CONFIG_KEYS) assert.ok(warning.includes(spec.key), spec.key);
  assert.equal(config.multusSocketPath, "/m.sock");
});

Deno.test("an unknown key far from every known key gets no guess", () => {
  const { warnings } = load({ file: { zzzzzzzzzzzzzz: 1 } });
  const warning = warnings.find((w) => w.includes("zzzzzzzzzzzzzz"));
  assert.ok(warning);
  assert.ok(!warning.includes("did you mean"), warning);
});

Deno.test("an unknown DNC_ variable is a warning with the closest variable", () => {
  const { warnings } = load({ env: { NODE_NAME: "n", DNC_WORKRES: "3" } });
  const warning = warnings.find((w) => w.includes("DNC_WORKRES"));
  assert.ok(warning);
  assert.ok(warning.includes("did you mean DNC_WORKERS?"), warning);
});

Deno.test("a wrong type in the file names the file, key, value, expected form and fix", () => {
  const path = "/etc/x.json";
  const [problem] = problemsOf(() =>
    load({ path, args: [`--config=${path}`], file: { workers: "many" } })
  );
  assert.equal(
    problem,
    `config ${path}: "workers": "many" is not an integer from 1 to 256; set a number such as 8`,
  );
});

Deno.test("a wrong value from the environment names the variable", () => {
  const problems = problemsOf(() => load({ env: { NODE_NAME: "n", DNC_LOG_LEVEL: "loud" } }));
  assert.equal(problems.length, 1);
  const p = problems[0];
  assert.ok(p.startsWith("environment DNC_LOG_LEVEL: "), p);
  assert.ok(p.includes('"loud"'), p);
  for (const level of ["error", "warn", "info", "debug"]) assert.ok(p.includes(level), p);
});

Deno.test("a wrong value from a flag names the flag", () => {
  const problems = problemsOf(() => load({ args: ["--workers=0"] }));
  assert.equal(problems.length, 1);
  assert.ok(problems[0].startsWith("flag --workers: 0 is not an integer"), problems[0]);
});

Deno.test("every bad value is reported at once, from every source", () => {
  const problems = problemsOf(() =>
    load({
      file: { workers: "many", metricsAddress: "nowhere", namespaceIsolation: "maybe" },
      env: { NODE_NAME: "n", DNC_CRI_SOCKET_PATH: "relative.sock" },
      args: ["--allowed-nad-namespaces", "Bad_NS"],
    })
  );
  const joined = problems.join("\n");
  for (
    const word of [
      "workers",
      "metricsAddress",
      "namespaceIsolation",
      "DNC_CRI_SOCKET_PATH",
      "--allowed-nad-namespaces",
    ]
  ) {
    assert.ok(joined.includes(word), `${word} missing from:\n${joined}`);
  }
  assert.equal(problems.length, 5);
});

Deno.test("a number or boolean quoted in the file gets a hint to drop the quotes", () => {
  const problems = problemsOf(() => load({ file: { workers: "8", once: "true" } }));
  assert.equal(problems.length, 2);
  assert.ok(problems.some((p) => p.includes('"workers": "8"') && p.includes("without quotes: 8")));
  assert.ok(
    problems.some((p) => p.includes('"once": "true"') && p.includes("without quotes: true")),
  );
});

Deno.test("invalid JSON names the file and the parser's complaint", () => {
  const text = '{"workers": 8,}';
  let parseMessage = "";
  try {
    JSON.parse(text);
  } catch (err) {
    parseMessage = (err as Error).message;
  }
  const path = "/tmp/broken.json";
  const [problem] = problemsOf(() => load({ path, args: ["--config", path], file: text }));
  assert.ok(problem!.includes(path), problem);
  assert.ok(problem!.includes("not valid JSON"), problem);
  assert.ok(problem!.includes(parseMessage), problem);
});

Deno.test("a file that holds no object is refused", () => {
  for (const text of ["[1]", "42", "null", '"x"']) {
    const [problem] = problemsOf(() => load({ file: text }));
    assert.ok(problem!.includes("not an object of settings"), problem);
  }
});

Deno.test("a missing file named by --config or DNC_CONFIG is an error", () => {
  const [byFlag] = problemsOf(() => load({ args: ["--config", "/nope/a.json"] }));
  assert.ok(byFlag!.includes("/nope/a.json") && byFlag!.includes("--config"), byFlag);
  const [byEnv] = problemsOf(() => load({ env: { NODE_NAME: "n", DNC_CONFIG: "/nope/b.json" } }));
  assert.ok(byEnv!.includes("/nope/b.json") && byEnv!.includes("DNC_CONFIG"), byEnv);
});

Deno.test("a missing file at the default path means defaults", () => {
  const loaded = load({});
  assert.equal(loaded.configRead, false);
  assert.equal(loaded.configPath, DEFAULT_CONFIG_PATH);
  assert.equal(loaded.config.workers, DEFAULTS.workers);
});

Deno.test("--config wins over DNC_CONFIG", () => {
  const files = fakeFiles({ "/a.json": '{"workers": 2}', "/b.json": '{"workers": 3}' });
  const loaded = loadConfig({
    args: ["--config", "/a.json"],
    env: { NODE_NAME: "n", DNC_CONFIG: "/b.json" },
    readFile: files,
    exists: () => false,
  });
  assert.equal(loaded.config.workers, 2);
  assert.equal(loaded.configPath, "/a.json");
});

Deno.test("a config file the process may not read says which grant is missing", () => {
  const [problem] = problemsOf(() =>
    loadConfig({
      args: [],
      env: { NODE_NAME: "n" },
      readFile: () => {
        throw new Deno.errors.NotCapable("Requires read access");
      },
    })
  );
  assert.ok(problem!.includes(`--allow-read=${DEFAULT_CONFIG_PATH}`), problem);
});

Deno.test("the node name is required and must be a DNS subdomain", () => {
  const [missing] = problemsOf(() => load({ env: {} }));
  assert.ok(missing!.includes("NODE_NAME") && missing!.includes("--node-name"), missing);
  const [bad] = problemsOf(() => load({ env: { NODE_NAME: "Node_A" } }));
  assert.ok(bad!.includes("NODE_NAME") && bad!.includes('"Node_A"'), bad);
});

Deno.test("retryMaxDelayMs below retryBaseDelayMs is refused, naming both sources", () => {
  const [problem] = problemsOf(() =>
    load({ file: { retryBaseDelayMs: 500 }, args: ["--retry-max-delay-ms=100"] })
  );
  assert.ok(problem!.includes("retryMaxDelayMs 100 (flag --retry-max-delay-ms)"), problem);
  assert.ok(problem!.includes("retryBaseDelayMs 500 (config "), problem);
});

Deno.test("KUBECONFIG with several files uses the first and warns", () => {
  const { config, warnings } = load({ env: { NODE_NAME: "n", KUBECONFIG: "/a/kc:/b/kc" } });
  assert.equal(config.kubeconfig, "/a/kc");
  assert.ok(warnings.some((w) => w.includes("/a/kc:/b/kc")));
});

Deno.test("empty values: sockets fall back, empty env vars are unset, empty metrics address is off", () => {
  const { config, origins } = load({
    file: { criSocketPath: "", multusSocketPath: "", metricsAddress: "" },
    env: { NODE_NAME: "n", DNC_WORKERS: "" },
    sockets: ["/run/crio/crio.sock"],
  });
  assert.equal(config.criSocketPath, "/run/crio/crio.sock");
  assert.equal(origins.criSocketPath.kind, "detected");
  assert.equal(config.multusSocketPath, DEFAULT_MULTUS_SOCKET);
  assert.equal(config.metricsAddress, "");
  assert.equal(config.workers, DEFAULTS.workers);
});

Deno.test("a usage error from the flags surfaces as UsageError with exit code 2", () => {
  assert.throws(() => load({ args: ["--wrkers", "3"] }), (err: unknown) => {
    assert.ok(err instanceof UsageError);
    assert.equal(err.exitCode, 2);
    assert.ok(err.message.includes("--workers"));
    return true;
  });
});

Deno.test("socket detection picks the first existing candidate, for any set of existing paths", () => {
  const all = [...CRI_SOCKET_CANDIDATES, ...MULTUS_SOCKET_CANDIDATES];
  fc.assert(
    fc.property(fc.subarray(all), (present) => {
      const { config, origins, warnings } = load({ sockets: present });
      const cri = CRI_SOCKET_CANDIDATES.find((c) => present.includes(c));
      const multus = MULTUS_SOCKET_CANDIDATES.find((c) => present.includes(c));
      assert.equal(config.criSocketPath, cri ?? DEFAULT_CRI_SOCKET);
      assert.equal(config.multusSocketPath, multus ?? DEFAULT_MULTUS_SOCKET);
      assert.equal(origins.criSocketPath.kind, cri ? "detected" : "default");
      assert.equal(origins.multusSocketPath.kind, multus ? "detected" : "default");
      assert.equal(warnings.length, (cri ? 0 : 1) + (multus ? 0 : 1));
    }),
  );
});

Deno.test("a configured socket is never probed", () => {
  const probed: string[] = [];
  loadConfig({
    args: ["--cri-socket", "/x/cri.sock"],
    env: { NODE_NAME: "n", DNC_MULTUS_SOCKET_PATH: "/x/m.sock" },
    readFile: fakeFiles({}),
    exists: (p) => {
      probed.push(p);
      return true;
    },
  });
  assert.deepEqual(probed, []);
});

Deno.test("detectSocket stops at the first hit", () => {
  const seen: string[] = [];
  const found = detectSocket(["/a", "/b", "/c"], (p) => {
    seen.push(p);
    return p === "/b";
  });
  assert.equal(found, "/b");
  assert.deepEqual(seen, ["/a", "/b"]);
});

Deno.test("grantedExists never touches a path without a read grant", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const granted = `${dir}/granted.sock`;
    const ungranted = `${dir}/ungranted.sock`;
    const missing = `${dir}/missing.sock`;
    await Deno.writeTextFile(granted, "");
    await Deno.writeTextFile(ungranted, "");
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `import { grantedExists } from ${JSON.stringify(`${MAIN_DIR}lib/config/load.ts`)};\n` +
        `console.log(JSON.stringify(Deno.args.map((p) => grantedExists(p))));\n`,
    );
    const out = await runDeno([
      "run",
      `--config=${MAIN_DIR}deno.json`,
      "--no-prompt",
      `--allow-read=${granted},${missing}`,
      probe,
      granted,
      ungranted,
      missing,
    ], { cwd: MAIN_DIR });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), [true, false, false]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("help lists every flag, config key, environment variable and default", () => {
  const help = helpText().replace(/\s+/g, " ");
  for (const key of Object.keys(ConfigSchema.shape)) {
    const spec = CONFIG_KEYS.find((s) => s.key === key);
    assert.ok(spec, `${key} has no CONFIG_KEYS entry`);
    assert.ok(help.includes(`config key: ${key}`), key);
    assert.ok(help.includes(`--${spec.flag}`), spec.flag);
    assert.ok(help.includes(`env: ${spec.env}`), spec.env);
    assert.ok(help.includes(`default: ${spec.defaultText.replace(/\s+/g, " ")}`), spec.defaultText);
  }
  for (const flag of ["--config", "--help", "--version"]) assert.ok(help.includes(flag), flag);
});

Deno.test("the Markdown reference has one row per key", () => {
  const table = referenceMarkdown();
  for (const spec of CONFIG_KEYS) {
    const row = table.split("\n").find((l) => l.includes(`\`${spec.key}\``));
    assert.ok(row, spec.key);
    assert.ok(row.includes(`\`${spec.env}\``) && row.includes(`--${spec.flag}`), row);
  }
});

Deno.test("flags, variables and keys are unique", () => {
  for (const field of ["key", "flag", "env"] as const) {
    const values = CONFIG_KEYS.map((s) => s[field]);
    assert.equal(new Set(values).size, values.length, field);
  }
});

Deno.test("the state directory must be an absolute path a permission list can name", () => {
  for (const bad of ["state", "/var/lib/a,b"]) {
    const problems = problemsOf(() => load({ args: [`--state-dir=${bad}`] }));
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.ok(problems[0].includes("--state-dir"), problems[0]);
    assert.ok(problems[0].includes(JSON.stringify(bad)), problems[0]);
    assert.ok(problems[0].includes("an absolute path without commas"), problems[0]);
  }
  assert.equal(load({ args: [] }).config.stateDir, "/var/lib/dynamic-networks-controller");
});
